// The CiteQA chat page: questions go to POST /v1/chat, cited articles come from GET /v1/documents/{id}.
// Plain DOM code, no framework and no build step. All text nodes are created with textContent, never
// innerHTML, because passages and articles are untrusted text.
"use strict";

(function () {
  const STORAGE_KEY = "citeqa.chat.v1";
  // The API accepts 50 messages; the follow-up rules only need the recent turns.
  const MAX_SENT_TURNS = 20;
  const MAX_KEPT_TURNS = 100;
  const WIDE_QUERY = window.matchMedia("(min-width: 1000px)");

  const $ = (id) => document.getElementById(id);
  const els = {
    scroller: $("scroller"),
    conversation: $("conversation"),
    welcome: $("welcome"),
    examples: $("examples"),
    composer: $("composer"),
    question: $("question"),
    send: $("send"),
    chips: $("section-chips"),
    topK: $("top-k"),
    clear: $("clear"),
    lang: $("lang-toggle"),
    banner: $("banner"),
    bannerText: $("banner-text"),
    bannerRetry: $("banner-retry"),
    indexStatus: $("index-status"),
    article: $("article"),
    articleTitle: $("article-title"),
    articleMeta: $("article-meta"),
    articleBody: $("article-body"),
    articleClose: $("article-close"),
    status: $("status"),
    toast: $("toast"),
  };

  const state = loadState();
  let ready = null; // the /readyz body once known
  let articleTrigger = null; // the element to give focus back to when the article closes
  let openCitation = null; // the citation the article panel shows
  const documents = new Map(); // doc_id -> Promise of the document

  // ---------------------------------------------------------------- strings

  function t(key, values) {
    const strings = window.CITEQA_STRINGS[state.lang] || window.CITEQA_STRINGS.en;
    const text = strings[key];
    if (typeof text !== "string") return text;
    return text.replace(/\{(\w+)\}/g, (_, name) => (values && name in values ? String(values[name]) : ""));
  }

  function applyStaticStrings() {
    document.documentElement.lang = t("htmlLang");
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-aria-label]")) {
      el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
    }
    for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
      el.setAttribute("placeholder", t(el.dataset.i18nPlaceholder));
    }
  }

  // ---------------------------------------------------------------- state

  function loadState() {
    const fallback = {
      lang: (navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en",
      topK: 5,
      sections: [],
      turns: [],
    };
    try {
      const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
      if (!saved || typeof saved !== "object") return fallback;
      return {
        lang: saved.lang === "zh" || saved.lang === "en" ? saved.lang : fallback.lang,
        topK: Number.isInteger(saved.topK) ? saved.topK : fallback.topK,
        sections: Array.isArray(saved.sections) ? saved.sections : [],
        // A reply that was still on its way when the page closed will never arrive.
        turns: Array.isArray(saved.turns) ? saved.turns.filter((turn) => turn.status !== "pending") : [],
      };
    } catch (error) {
      return fallback;
    }
  }

  function saveState() {
    const kept = { ...state, turns: state.turns.filter((turn) => turn.status !== "pending").slice(-MAX_KEPT_TURNS) };
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(kept));
    } catch (error) {
      // Storage full or disabled (private mode): the conversation still works, it just won't survive a reload.
    }
  }

  // ---------------------------------------------------------------- helpers

  function el(tag, props, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of [].concat(children || [])) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  function announce(message) {
    els.status.textContent = "";
    // A change of text is what screen readers announce; clearing first makes a repeated message heard.
    window.setTimeout(() => (els.status.textContent = message), 30);
  }

  function showToast(message) {
    announce(message);
    els.toast.textContent = message;
    els.toast.classList.add("visible");
    window.clearTimeout(showToast.timer);
    showToast.timer = window.setTimeout(() => els.toast.classList.remove("visible"), 2200);
  }

  // Spans [start, end) of `text` to mark: the passage's own highlight when the server sent one, else every
  // occurrence of the query's terms (longest first, so "智能手机" wins over "手机").
  function markSpans(text, highlight, terms) {
    if (highlight && Number.isInteger(highlight.char_start) && highlight.char_end > highlight.char_start) {
      return [[Math.max(0, highlight.char_start), Math.min(text.length, highlight.char_end)]];
    }
    const spans = [];
    const lower = text.toLowerCase();
    const taken = new Uint8Array(text.length);
    for (const term of [...(terms || [])].sort((a, b) => b.length - a.length)) {
      const needle = term.toLowerCase();
      if (!needle) continue;
      for (let at = lower.indexOf(needle); at !== -1; at = lower.indexOf(needle, at + needle.length)) {
        if (taken.subarray(at, at + needle.length).some(Boolean)) continue;
        taken.fill(1, at, at + needle.length);
        spans.push([at, at + needle.length]);
      }
    }
    return spans.sort((a, b) => a[0] - b[0]);
  }

  function markedText(text, spans, markClass) {
    const fragment = document.createDocumentFragment();
    let position = 0;
    for (const [start, end] of spans) {
      if (start < position) continue;
      fragment.append(text.slice(position, start));
      fragment.append(el("mark", { class: markClass }, text.slice(start, end)));
      position = end;
    }
    fragment.append(text.slice(position));
    return fragment;
  }

  function citationText(passage) {
    const c = passage.citation;
    const parts = [`《${c.title}》`];
    if (c.section) parts.push(c.section);
    if (c.page !== null && c.page !== undefined) parts.push(`p. ${c.page}`);
    return `${parts.join(", ")}\n${passage.text}`;
  }

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch (error) {
        // Permission refused: fall through to the selection-based copy.
      }
    }
    const area = el("textarea", { class: "copy-buffer", readonly: true, "aria-hidden": "true" });
    area.value = text;
    document.body.append(area);
    area.select();
    let copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    area.remove();
    return copied;
  }

  async function readError(response) {
    try {
      const body = await response.json();
      return body.message || response.statusText;
    } catch (error) {
      return response.statusText || String(response.status);
    }
  }

  // ---------------------------------------------------------------- server status

  function showBanner(message, retry) {
    els.bannerText.textContent = message;
    els.bannerRetry.hidden = !retry;
    els.banner.hidden = false;
  }

  function hideBanner() {
    els.banner.hidden = true;
  }

  async function checkServer() {
    let response;
    try {
      response = await fetch("/readyz", { headers: { Accept: "application/json" } });
    } catch (error) {
      ready = null;
      showBanner(t("unreachable"), true);
      renderIndexStatus();
      return;
    }
    if (response.status === 503) {
      showBanner(t("loading"), false);
      window.setTimeout(checkServer, 2000);
      return;
    }
    if (!response.ok) {
      showBanner(t("serverError", { status: response.status, message: await readError(response) }), true);
      return;
    }
    ready = await response.json();
    if (ready.documents === 0) showBanner(t("emptyIndex"), true);
    else hideBanner();
    // A section that disappeared from the index would silently filter everything out.
    state.sections = state.sections.filter((section) => ready.sections.includes(section));
    renderChips();
    renderIndexStatus();
  }

  function renderIndexStatus() {
    els.indexStatus.textContent = ready ? t("indexStatus", { docs: ready.documents, chunks: ready.chunks }) : "";
  }

  // ---------------------------------------------------------------- filters

  function renderChips() {
    const sections = ready ? ready.sections : [];
    const chips = [
      el("button", {
        type: "button",
        class: "chip",
        "aria-pressed": String(state.sections.length === 0),
        text: t("allSections"),
        onclick: () => setSections([]),
      }),
    ];
    for (const section of sections) {
      const pressed = state.sections.includes(section);
      chips.push(
        el("button", {
          type: "button",
          class: "chip",
          "aria-pressed": String(pressed),
          "data-section": section,
          text: section,
          onclick: () =>
            setSections(pressed ? state.sections.filter((s) => s !== section) : [...state.sections, section]),
        }),
      );
    }
    els.chips.replaceChildren(...chips);
  }

  function setSections(sections) {
    const focusedSection = document.activeElement && document.activeElement.dataset.section;
    state.sections = sections;
    saveState();
    renderChips();
    // Re-rendering replaced the chip the user pressed; keep the keyboard focus on its replacement.
    const selector = focusedSection ? `[data-section="${CSS.escape(focusedSection)}"]` : ".chip";
    const again = els.chips.querySelector(selector);
    if (again) again.focus();
  }

  // ---------------------------------------------------------------- conversation

  function renderConversation() {
    els.conversation.replaceChildren(...state.turns.map(renderTurn));
    els.welcome.hidden = state.turns.length > 0;
    renderExamples();
  }

  function renderExamples() {
    els.examples.replaceChildren(
      ...t("examples").map((example) =>
        el("li", {}, [
          el("button", { type: "button", class: "example", text: example, onclick: () => ask(example) }),
        ]),
      ),
    );
  }

  function renderTurn(turn) {
    return el("li", { class: "turn", "data-turn": turn.id }, [
      el("div", { class: "question" }, [
        el("span", { class: "who", text: t("you") }),
        el("p", { class: "question-text", text: turn.question }),
      ]),
      renderReply(turn),
    ]);
  }

  function renderReply(turn) {
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
    if (rewritten) {
      reply.append(el("p", { class: "rewritten" }, [t("searchedAs"), " ", el("q", { text: query })]));
    }
    if (passages.length === 0) {
      reply.append(el("p", { class: "empty", text: t("noPassages") }));
      if (ready && ready.documents === 0) reply.append(el("p", { class: "empty", text: t("emptyIndex") }));
      return reply;
    }
    reply.append(renderAnswer(result, passages));
    reply.append(
      el("p", { class: "summary", text: t("summary", { n: passages.length, ms: Math.round(result.took_ms) }) }),
    );
    reply.append(
      el(
        "ol",
        { class: "cards" },
        passages.map((passage, index) => renderCard(passage, index, terms)),
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
  function renderAnswer(result, passages) {
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
            )
          : citeButton({ citation: cited, text: answer.text }, passages.length);
      block.append(el("p", { class: "answer-text" }, [el("strong", { text: t("answerLabel") }), answer.text, " ", marker]));
    } else if (result.answerable === false) {
      block.append(el("p", { class: "answer-lead not-answerable", text: t("notAnswerable") }));
    } else {
      block.append(el("p", { class: "answer-lead", text: t("noAnswer") }));
    }
    block.append(
      el("p", { class: "sources" }, [
        el("span", { class: "sources-label", text: t("sourcesLabel") }),
        ...passages.map((passage, index) => citeButton(passage, index)),
      ]),
    );
    return block;
  }

  function citeButton(passage, index) {
    return el("button", {
      type: "button",
      class: "cite",
      "data-cite": String(index + 1),
      "aria-label": t("citeLabel", { n: index + 1, title: passage.citation.title }),
      title: passage.citation.title,
      text: `[${index + 1}]`,
      onclick: (event) => openArticle(passage, event.currentTarget),
    });
  }

  function renderCard(passage, index, terms) {
    const c = passage.citation;
    const open = (event) => openArticle(passage, event.currentTarget.closest(".card").querySelector(".card-title"));
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
      openArticle(passage, card.querySelector(".card-title"));
    });
    return card;
  }

  function sentTurns(question) {
    const done = state.turns.filter((turn) => turn.status === "done").map((turn) => turn.question);
    return [...done.slice(-(MAX_SENT_TURNS - 1)), question].map((content) => ({ role: "user", content }));
  }

  async function ask(question) {
    question = question.trim();
    if (!question || els.send.disabled) return;
    const turn = { id: `t${Date.now()}`, question, status: "pending" };
    const body = { messages: sentTurns(question), top_k: state.topK, filters: { sections: state.sections } };
    state.turns.push(turn);
    els.question.value = "";
    els.welcome.hidden = true;
    const node = renderTurn(turn);
    els.conversation.append(node);
    node.scrollIntoView({ block: "start" });
    setBusy(true);
    try {
      const response = await fetch("/v1/chat", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
      if (response.ok) {
        turn.response = await response.json();
        turn.status = "done";
      } else {
        turn.error = { kind: "http", status: response.status, message: await readError(response) };
        turn.status = "error";
      }
    } catch (error) {
      turn.error = { kind: "unreachable" };
      turn.status = "error";
      checkServer();
    }
    setBusy(false);
    saveState();
    node.querySelector(".reply").replaceWith(renderReply(turn));
    node.scrollIntoView({ block: "start" });
  }

  function setBusy(busy) {
    els.send.disabled = busy;
    els.composer.setAttribute("aria-busy", String(busy));
  }

  function clearConversation() {
    state.turns = [];
    saveState();
    closeArticle();
    renderConversation();
    announce(t("cleared"));
    els.question.focus();
  }

  // ---------------------------------------------------------------- article panel

  function fetchDocument(docId) {
    if (!documents.has(docId)) {
      const request = fetch(`/v1/documents/${encodeURIComponent(docId)}`).then(async (response) => {
        if (!response.ok) throw new Error(await readError(response));
        return response.json();
      });
      // A failed fetch is not kept, so that opening the article again retries it.
      request.catch(() => documents.delete(docId));
      documents.set(docId, request);
    }
    return documents.get(docId);
  }

  async function openArticle(passage, trigger) {
    const c = passage.citation;
    articleTrigger = trigger || null;
    els.article.hidden = false;
    document.body.classList.add("article-open");
    els.article.setAttribute("role", WIDE_QUERY.matches ? "complementary" : "dialog");
    els.article.setAttribute("aria-modal", WIDE_QUERY.matches ? "false" : "true");
    openCitation = c;
    els.articleTitle.textContent = c.title;
    renderArticleMeta();
    els.articleBody.replaceChildren(el("p", { class: "pending", text: t("articleLoading") }));
    els.articleTitle.focus({ preventScroll: true });
    let documentBody;
    try {
      documentBody = await fetchDocument(c.doc_id);
    } catch (error) {
      els.articleBody.replaceChildren(el("p", { class: "error", text: t("articleError", { message: error.message }) }));
      return;
    }
    const text = documentBody.text;
    const start = Math.max(0, Math.min(c.char_start, text.length));
    const end = Math.max(start, Math.min(c.char_end, text.length));
    const cited = el("mark", { class: "cited", id: "cited-passage" });
    const inner = text.slice(start, end);
    cited.append(markedText(inner, passage.highlight ? markSpans(inner, passage.highlight, []) : [], "hit"));
    els.articleBody.replaceChildren(text.slice(0, start), cited, text.slice(end));
    cited.scrollIntoView({ block: "center" });
    announce(t("articleOpened", { title: c.title }));
  }

  function renderArticleMeta() {
    if (!openCitation) return;
    const c = openCitation;
    els.articleMeta.replaceChildren(
      ...metaRow(t("metaSection"), c.section || t("noSection")),
      ...metaRow(t("metaPage"), c.page !== null && c.page !== undefined ? t("page", { n: c.page }) : "—"),
      ...metaRow(t("metaSource"), c.source || ""),
    );
  }

  function metaRow(label, value) {
    return [el("dt", { text: label }), el("dd", { text: value })];
  }

  function closeArticle() {
    if (els.article.hidden) return;
    els.article.hidden = true;
    openCitation = null;
    document.body.classList.remove("article-open");
    if (articleTrigger && document.contains(articleTrigger)) articleTrigger.focus();
    else els.question.focus();
    articleTrigger = null;
  }

  // ---------------------------------------------------------------- wiring

  function renderAll() {
    const scrolled = els.scroller.scrollTop;
    applyStaticStrings();
    els.topK.value = String(state.topK);
    renderChips();
    renderIndexStatus();
    renderConversation();
    renderArticleMeta();
    els.scroller.scrollTop = scrolled;
  }

  els.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    ask(els.question.value);
  });
  els.question.addEventListener("keydown", (event) => {
    // Enter while an input method is composing (pinyin) confirms the candidate; it must not send.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      ask(els.question.value);
    }
  });
  els.topK.addEventListener("change", () => {
    state.topK = Number(els.topK.value);
    saveState();
  });
  els.clear.addEventListener("click", clearConversation);
  els.lang.addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    saveState();
    renderAll();
    els.lang.focus();
  });
  els.bannerRetry.addEventListener("click", checkServer);
  els.articleClose.addEventListener("click", closeArticle);
  document.addEventListener("keydown", (event) => {
    if (els.article.hidden) return;
    if (event.key === "Escape") {
      event.preventDefault();
      closeArticle();
    } else if (event.key === "Tab" && !WIDE_QUERY.matches) {
      // On a narrow screen the article covers the chat: keep the keyboard inside it, as in any dialog.
      const stops = [els.articleClose, els.articleBody];
      const at = stops.indexOf(document.activeElement);
      event.preventDefault();
      stops[(at + (event.shiftKey ? stops.length - 1 : 1)) % stops.length].focus();
    }
  });

  renderAll();
  // After a reload, show where the conversation left off.
  if (els.conversation.lastElementChild) els.conversation.lastElementChild.scrollIntoView({ block: "start" });
  checkServer();
})();
