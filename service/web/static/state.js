// What the pages know: the conversation and the settings (language, collection, filters), kept in
// localStorage across reloads and shared by the chat and library pages, and what the server last said,
// which is not kept.
const STORAGE_KEY = "citeqa.chat.v1";
// The API accepts 50 messages; the follow-up rules only need the recent turns.
const MAX_SENT_TURNS = 20;
const MAX_KEPT_TURNS = 100;

export const state = loadState();

// `collections`: the last GET /v1/collections list.
export const server = { collections: [] };

function loadState() {
  const fallback = {
    lang: (navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en",
    topK: 5,
    collection: "default",
    sections: [],
    turns: [],
  };
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
    if (!saved || typeof saved !== "object") return fallback;
    return {
      lang: saved.lang === "zh" || saved.lang === "en" ? saved.lang : fallback.lang,
      topK: Number.isInteger(saved.topK) ? saved.topK : fallback.topK,
      collection: typeof saved.collection === "string" ? saved.collection : fallback.collection,
      sections: Array.isArray(saved.sections) ? saved.sections : [],
      // A reply that was still on its way when the page closed will never arrive.
      turns: Array.isArray(saved.turns) ? saved.turns.filter((turn) => turn.status !== "pending") : [],
    };
  } catch (error) {
    return fallback;
  }
}

export function saveState() {
  const kept = { ...state, turns: state.turns.filter((turn) => turn.status !== "pending").slice(-MAX_KEPT_TURNS) };
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(kept));
  } catch (error) {
    // Storage full or disabled (private mode): the conversation still works, it just won't survive a reload.
  }
}

// The messages sent with a new question: the recent answered questions, then the new one.
export function sentTurns(question) {
  const done = state.turns.filter((turn) => turn.status === "done").map((turn) => turn.question);
  return [...done.slice(-(MAX_SENT_TURNS - 1)), question].map((content) => ({ role: "user", content }));
}
