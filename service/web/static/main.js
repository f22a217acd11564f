// The CiteQA chat page: questions go to POST /v1/chat, cited articles come from the chosen collection's
// documents. Native ES modules, no framework and no build step. This module holds what the user's actions
// do and wires them to the page's events.
import { setupAccess } from "./access.js";
import { getReady, postChat } from "./api.js";
import { closeArticle, onArticleKeydown, renderArticleMeta } from "./article.js";
import { els } from "./chat-els.js";
import { chooseCollection, chosenCollection, loadCollections, renderCollectionPicker } from "./collections.js";
import { announce, hideBanner, showBanner } from "./dom.js";
import { applyStaticStrings, describeError, t, toggleLanguage } from "./i18n.js";
import { renderChips, renderConversation, renderIndexStatus, renderReply, renderTurn } from "./render.js";
import { saveState, sentTurns, server, state } from "./state.js";

// ---------------------------------------------------------------- server status

async function checkServer() {
  const outcome = await getReady();
  if (outcome.kind === "unreachable") {
    showBanner(t("unreachable"), true);
    return;
  }
  if (outcome.kind === "loading") {
    showBanner(t("loading"), false);
    window.setTimeout(checkServer, 2000);
    return;
  }
  if (outcome.kind === "http") {
    showBanner(t("serverError", { status: outcome.status, message: outcome.message }), true);
    return;
  }
  // Ready: the counts and sections come from the collections list (which needs the API key, if keys are in use).
  const listed = await loadCollections();
  if (listed.error) {
    showBanner(describeError(listed.error), true);
    return;
  }
  showCollection();
}

// The chosen collection's picker, sections and counts, and a banner when it holds nothing to search.
function showCollection() {
  const collection = chosenCollection();
  if (!collection) showBanner(t("noCollections"), true);
  else if (collection.documents === 0) showBanner(t("emptyIndex"), true);
  else hideBanner();
  // A section that disappeared from the index would silently filter everything out.
  const sections = collection ? collection.sections : [];
  state.sections = state.sections.filter((section) => sections.includes(section));
  renderCollectionPicker(els.collection);
  // One collection needs no picker.
  els.collectionField.hidden = server.collections.length < 2;
  renderChips();
  renderIndexStatus();
}

// ---------------------------------------------------------------- filters

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

// The "all" chip clears the filter; a section's chip adds or removes that section.
function onChipClick(event) {
  const chip = event.target.closest(".chip");
  if (!chip) return;
  const section = chip.dataset.section;
  if (section === undefined) setSections([]);
  else if (state.sections.includes(section)) setSections(state.sections.filter((s) => s !== section));
  else setSections([...state.sections, section]);
}

// ---------------------------------------------------------------- conversation

async function ask(question) {
  question = question.trim();
  if (!question || els.send.disabled) return;
  const turn = { id: `t${Date.now()}`, question, collection: state.collection, status: "pending" };
  const body = {
    messages: sentTurns(question),
    top_k: state.topK,
    filters: { sections: state.sections },
    collection: state.collection,
  };
  state.turns.push(turn);
  els.question.value = "";
  els.welcome.hidden = true;
  const node = renderTurn(turn);
  els.conversation.append(node);
  node.scrollIntoView({ block: "start" });
  setBusy(true);
  const outcome = await postChat(body);
  if (outcome.error) {
    turn.error = outcome.error;
    turn.status = "error";
    if (outcome.error.kind === "unreachable") checkServer();
  } else {
    turn.response = outcome.data;
    turn.status = "done";
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

// ---------------------------------------------------------------- wiring

function renderAll() {
  const scrolled = els.scroller.scrollTop;
  applyStaticStrings();
  els.topK.value = String(state.topK);
  renderCollectionPicker(els.collection);
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
els.examples.addEventListener("click", (event) => {
  const example = event.target.closest(".example");
  if (example) ask(example.textContent);
});
els.chips.addEventListener("click", onChipClick);
els.topK.addEventListener("change", () => {
  state.topK = Number(els.topK.value);
  saveState();
});
els.collection.addEventListener("change", () => {
  chooseCollection(els.collection.value);
  showCollection();
});
els.clear.addEventListener("click", clearConversation);
els.lang.addEventListener("click", () => {
  toggleLanguage();
  renderAll();
  els.lang.focus();
});
els.bannerRetry.addEventListener("click", checkServer);
setupAccess(els.forgetKey, els.lang);
els.articleClose.addEventListener("click", closeArticle);
document.addEventListener("keydown", onArticleKeydown);

renderAll();
// After a reload, show where the conversation left off.
if (els.conversation.lastElementChild) els.conversation.lastElementChild.scrollIntoView({ block: "start" });
checkServer();
