// The collections the pages work on: GET /v1/collections, the one chosen (kept in the saved state), and the
// <select> that picks it. The chat page and the library page share the choice.
import { listCollections } from "./api.js";
import { el } from "./dom.js";
import { saveState, server, state } from "./state.js";

// Fetch the collections (those the API key reaches); on success make sure the chosen one is among them.
// Resolves to callApi's {error} on failure, else {}.
export async function loadCollections() {
  const outcome = await listCollections();
  if (outcome.error) return outcome;
  server.collections = outcome.data.collections;
  const names = server.collections.map((collection) => collection.name);
  // A saved choice that was deleted, or that the key does not reach, falls back to default (or the first).
  if (!names.includes(state.collection) && names.length > 0) {
    chooseCollection(names.includes("default") ? "default" : names[0]);
  }
  return {};
}

// The chosen collection's {name, documents, chunks, sections}, or null before the list is known.
export function chosenCollection() {
  return server.collections.find((collection) => collection.name === state.collection) || null;
}

export function chooseCollection(name) {
  if (name === state.collection) return;
  state.collection = name;
  // Sections belong to a collection: another one's would filter everything out.
  state.sections = [];
  saveState();
}

// Fill `select` with the collections, the chosen one selected.
export function renderCollectionPicker(select) {
  select.replaceChildren(
    ...server.collections.map((collection) =>
      el("option", { value: collection.name, selected: collection.name === state.collection, text: collection.name }),
    ),
  );
  select.value = state.collection;
}
