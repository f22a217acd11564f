// The article panel: the whole cited article, scrolled to the cited passage and highlighted. Beside the
// chat on a wide screen; over it, as a dialog, on a narrow one.
import { fetchDocument } from "./api.js";
import { els } from "./chat-els.js";
import { announce, el } from "./dom.js";
import { markedText, markSpans } from "./highlight.js";
import { t } from "./i18n.js";

const WIDE_QUERY = window.matchMedia("(min-width: 1000px)");

let articleTrigger = null; // the element to give focus back to when the article closes
let openCitation = null; // the citation the article panel shows

// Open the article `passage` cites, from `collection`; `trigger` gets the focus back when it closes.
export async function openArticle(passage, collection, trigger) {
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
    documentBody = await fetchDocument(collection, c.doc_id);
  } catch (error) {
    const message = error.kind === "unreachable" ? t("unreachableShort") : error.message;
    els.articleBody.replaceChildren(el("p", { class: "error", text: t("articleError", { message }) }));
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

// The section, page and source of the open article, in the page's language.
export function renderArticleMeta() {
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

export function closeArticle() {
  if (els.article.hidden) return;
  els.article.hidden = true;
  openCitation = null;
  document.body.classList.remove("article-open");
  if (articleTrigger && document.contains(articleTrigger)) articleTrigger.focus();
  else els.question.focus();
  articleTrigger = null;
}

// Keys while the article is open: Escape closes it; on a narrow screen Tab stays inside it.
export function onArticleKeydown(event) {
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
}
