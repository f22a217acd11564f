// The CiteQA chat page: questions go to POST /v1/chat, cited articles come from GET /v1/documents/{id}.
// Native ES modules, no framework and no build step. This module holds what the user's actions do and
// wires them to the page's events.
import { getReady, postChat } from "./api.js";
import { closeArticle, onArticleKeydown, renderArticleMeta } from "./article.js";
import { announce, els } from "./dom.js";
import { applyStaticStrings, t, toggleLanguage } from "./i18n.js";
import {
  hideBanner,
  renderChips,
  renderConversation,
  renderIndexStatus,
  renderReply,
  renderTurn,
  showBanner,
} from "./render.js";
import { saveState, sentTurns, server, state } from "./state.js";

// ---------------------------------------------------------------- server status

async function checkServer() {
  const outcome = await getReady();
  if (outcome.kind === "unreachable") {
    server.ready = null;
    showBanner(t("unreachable"), true);
    renderIndexStatus();
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
  const ready = (server.ready = outcome.body);
  if (ready.documents === 0) showBanner(t("emptyIndex"), true);
  else hideBanner();
  // A section that disappeared from the index would silently filter everything out.
  state.sections = state.sections.filter((section) => ready.sections.includes(section));
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
  const turn = { id: `t${Date.now()}`, question, status: "pending" };
  const body = { messages: sentTurns(question), top_k: state.topK, filters: { sections: state.sections } };
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
    turn.response = outcome.response;
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
els.clear.addEventListener("click", clearConversation);
els.lang.addEventListener("click", () => {
  toggleLanguage();
  renderAll();
  els.lang.focus();
});
els.bannerRetry.addEventListener("click", checkServer);
els.articleClose.addEventListener("click", closeArticle);
document.addEventListener("keydown", onArticleKeydown);

renderAll();
// After a reload, show where the conversation left off.
if (els.conversation.lastElementChild) els.conversation.lastElementChild.scrollIntoView({ block: "start" });
checkServer();
