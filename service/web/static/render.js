// Everything the chat page draws from the state: the index status, the section chips, the examples and the
// conversation (each reply's answer, citation markers and passage cards).
import { openArticle } from "./article.js";
import { els } from "./chat-els.js";
import { chosenCollection } from "./collections.js";
import { copyText, el, showToast } from "./dom.js";
import { markedText, markSpans } from "./highlight.js";
import { t } from "./i18n.js";
import { state } from "./state.js";

// ---------------------------------------------------------------- collection status

// The chosen collection's counts.
export function renderIndexStatus() {
  const collection = chosenCollection();
  els.indexStatus.textContent = collection
    ? t("indexStatus", { docs: collection.documents, chunks: collection.chunks })
    : "";
}

// ---------------------------------------------------------------- filters

// One "all" chip, then one chip per section of the chosen collection; the pressed ones filter the search.
export function renderChips() {
  const collection = chosenCollection();
  const sections = collection ? collection.sections : [];
  const chips = [
    el("button", {
      type: "button",
      class: "chip",
      "aria-pressed": String(state.sections.length === 0),
      text: t("allSections"),
    }),
  ];
  for (const section of sections) {
    chips.push(
      el("button", {
        type: "button",
        class: "chip",
        "aria-pressed": String(state.sections.includes(section)),
        "data-section": section,
        text: section,
      }),
    );
  }
  els.chips.replaceChildren(...chips);
}

// ---------------------------------------------------------------- conversation

export function renderConversation() {
  els.conversation.replaceChildren(...state.turns.map(renderTurn));
  els.welcome.hidden = state.turns.length > 0;
  renderExamples();
}

function renderExamples() {
  els.examples.replaceChildren(
    ...t("examples").map((example) =>
      el("li", {}, [el("button", { type: "button", class: "example", text: example })]),
    ),
  );
}

export function renderTurn(turn) {
  return el("li", { class: "turn", "data-turn": turn.id }, [
    el("div", { class: "question" }, [
      el("span", { class: "who", text: t("you") }),
      el("p", { class: "question-text", text: turn.question }),
    ]),
    renderReply(turn),
  ]);
}

export function renderReply(turn) {
  const reply = el("div", { class: "reply", "aria-busy": turn.status === "pending" ? "true" : "false" });
  if (turn.status === "pending") {
    reply.append(el("p", { class: "pending", text: t("searching") }));
    return reply;
  }
  if (turn.status === "error") {
    reply.append(el("p", { class: "error", text: errorMessage(turn.error) }));
    return reply;
  }
  const { query, rewritten, terms, result } = turn.response;
  const passages = result.passages || [];
  // Citations point into the collection the question was asked of (replies saved before collections: default).
  const collection = turn.collection || "default";
  if (rewritten) {
    reply.append(el("p", { class: "rewritten" }, [t("searchedAs"), " ", el("q", { text: query })]));
  }
  if (passages.length === 0) {
    reply.append(el("p", { class: "empty", text: t("noPassages") }));
    const chosen = chosenCollection();
    if (chosen && chosen.name === collection && chosen.documents === 0) {
      reply.append(el("p", { class: "empty", text: t("emptyIndex") }));
    }
    return reply;
  }
  reply.append(renderAnswer(result, passages, collection));
  reply.append(
    el("p", { class: "summary", text: t("summary", { n: passages.length, ms: Math.round(result.took_ms) }) }),
  );
  reply.append(
    el(
      "ol",
      { class: "cards" },
      passages.map((passage, index) => renderCard(passage, index, terms, collection)),
    ),
  );
  return reply;
}

function errorMessage(error) {
  if (!error || error.kind === "unreachable") return t("unreachableReply");
  return t("failed", { status: error.status, message: error.message });
}

// The answer sentence with its citation marker when the server sent one, else a lead-in; then one numbered
// marker per passage, each opening the article at that passage.
function renderAnswer(result, passages, collection) {
  const block = el("div", { class: "answer" });
  const answer = result.answer;
  if (answer && answer.text) {
    const cited = answer.citation || {};
    const index = passages.findIndex(
      (p) =>
        p.citation.doc_id === cited.doc_id &&
        cited.char_start >= p.citation.char_start &&
        cited.char_start < p.citation.char_end,
    );
    // The marker opens the passage that holds the answer, with the answer's own span marked inside it.
    const marker =
      index >= 0
        ? citeButton(
            {
              ...passages[index],
              highlight: {
                char_start: cited.char_start - passages[index].citation.char_start,
                char_end: cited.char_end - passages[index].citation.char_start,
              },
            },
            index,
            collection,
          )
        : citeButton({ citation: cited, text: answer.text }, passages.length, collection);
    block.append(el("p", { class: "answer-text" }, [el("strong", { text: t("answerLabel") }), answer.text, " ", marker]));
  } else if (result.answerable === false) {
    block.append(el("p", { class: "answer-lead not-answerable", text: t("notAnswerable") }));
  } else {
    block.append(el("p", { class: "answer-lead", text: t("noAnswer") }));
  }
  block.append(
    el("p", { class: "sources" }, [
      el("span", { class: "sources-label", text: t("sourcesLabel") }),
      ...passages.map((passage, index) => citeButton(passage, index, collection)),
    ]),
  );
  return block;
}

function citeButton(passage, index, collection) {
  return el("button", {
    type: "button",
    class: "cite",
    "data-cite": String(index + 1),
    "aria-label": t("citeLabel", { n: index + 1, title: passage.citation.title }),
    title: passage.citation.title,
    text: `[${index + 1}]`,
    onclick: (event) => openArticle(passage, collection, event.currentTarget),
  });
}

function renderCard(passage, index, terms, collection) {
  const c = passage.citation;
  const open = (event) =>
    openArticle(passage, collection, event.currentTarget.closest(".card").querySelector(".card-title"));
  const card = el("li", { class: "card", "data-rank": String(passage.rank) }, [
    el("div", { class: "card-head" }, [
      el("span", { class: "rank", "aria-hidden": "true", text: `[${index + 1}]` }),
      el("button", {
        type: "button",
        class: "card-title",
        "aria-label": t("cardLabel", { n: index + 1, title: c.title }),
        text: `《${c.title}》`,
        onclick: open,
      }),
    ]),
    el("p", { class: "card-meta" }, [
      el("span", { class: "badge", text: c.section || t("noSection") }),
      c.page !== null && c.page !== undefined ? el("span", { text: t("page", { n: c.page }) }) : null,
      el("span", { class: "score", text: t("score", { s: passage.score.toFixed(3) }) }),
    ]),
    el("p", { class: "passage" }, [markedText(passage.text, markSpans(passage.text, passage.highlight, terms), "hit")]),
    el("div", { class: "card-actions" }, [
      el("button", { type: "button", class: "ghost small", text: t("openArticle"), onclick: open }),
      el("button", {
        type: "button",
        class: "ghost small copy",
        text: t("copyCitation"),
        onclick: async () => showToast((await copyText(citationText(passage))) ? t("copied") : t("copyFailed")),
      }),
    ]),
  ]);
  // A click anywhere on the card opens the article too; buttons and selected text keep their own meaning.
  card.addEventListener("click", (event) => {
    if (event.target.closest("button") || String(window.getSelection())) return;
    openArticle(passage, collection, card.querySelector(".card-title"));
  });
  return card;
}

// What "copy citation" puts on the clipboard: 《title》, section, p. N, then the passage.
function citationText(passage) {
  const c = passage.citation;
  const parts = [`《${c.title}》`];
  if (c.section) parts.push(c.section);
  if (c.page !== null && c.page !== undefined) parts.push(`p. ${c.page}`);
  return `${parts.join(", ")}\n${passage.text}`;
}
