// The CiteQA library page: the chosen collection's documents, with a filter and a delete that asks first,
// and uploads (upload.js). Shares the API, the strings, the key prompt and the chosen collection with the
// chat page.
import { setupAccess } from "./access.js";
import { deleteDocument, listDocuments } from "./api.js";
import { chooseCollection, chosenCollection, loadCollections, renderCollectionPicker } from "./collections.js";
import { openDialog } from "./dialog.js";
import { el, hideBanner, showBanner, showToast } from "./dom.js";
import { applyStaticStrings, describeError, t, toggleLanguage } from "./i18n.js";
import { state } from "./state.js";
import { redrawUploads, setupUploads } from "./upload.js";

const $ = (id) => document.getElementById(id);
const els = {
  lang: $("lang-toggle"),
  forgetKey: $("forget-key"),
  bannerRetry: $("banner-retry"),
  indexStatus: $("index-status"),
  collection: $("collection"),
  filter: $("filter"),
  heading: $("documents-heading"),
  shownCount: $("shown-count"),
  table: $("documents-table"),
  rows: $("documents"),
  empty: $("documents-empty"),
};

let documents = null; // the documents of `documentsOf`; null until they arrive
let documentsOf = null;

// ---------------------------------------------------------------- loading

// The collections (for the picker and the counts), then the chosen one's documents.
async function refresh() {
  const listed = await loadCollections();
  if (listed.error) {
    showBanner(describeError(listed.error), true);
    return;
  }
  hideBanner();
  renderCollectionPicker(els.collection);
  renderIndexStatus();
  await loadDocuments();
}

async function loadDocuments() {
  const collection = chosenCollection();
  // Another collection's list gives way at once; the same one's stays until the new list replaces it.
  if (!collection || collection.name !== documentsOf) {
    documentsOf = collection && collection.name;
    documents = collection ? null : [];
    renderDocuments();
  }
  if (!collection) return;
  const outcome = await listDocuments(collection.name);
  // Another collection chosen meanwhile: its own request draws the list.
  if (collection.name !== state.collection) return;
  if (outcome.error) {
    showBanner(describeError(outcome.error), true);
    return;
  }
  documents = outcome.data.documents;
  renderDocuments();
}

// ---------------------------------------------------------------- drawing

function renderIndexStatus() {
  const collection = chosenCollection();
  els.indexStatus.textContent = collection
    ? t("indexStatus", { docs: collection.documents, chunks: collection.chunks })
    : "";
}

// The documents whose title or section holds the filter's text.
function renderDocuments() {
  const query = els.filter.value.trim().toLowerCase();
  const matches = (d) => d.title.toLowerCase().includes(query) || (d.section || "").toLowerCase().includes(query);
  const shown = (documents || []).filter(matches);
  els.rows.replaceChildren(...shown.map(documentRow));
  els.table.hidden = shown.length === 0;
  els.shownCount.textContent = documents ? t("shownCount", { shown: shown.length, total: documents.length }) : "";
  let empty = "";
  if (documents === null) empty = t("listLoading");
  else if (!chosenCollection()) empty = t("noCollections");
  else if (documents.length === 0) empty = t("noDocuments");
  else if (shown.length === 0) empty = t("noMatches");
  els.empty.textContent = empty;
  els.empty.hidden = !empty;
}

// One row; on a phone each cell shows its column's name (data-label) as the table becomes a list of cards.
function documentRow(d) {
  const cell = (label, text, className) => el("td", { class: className, "data-label": t(label), text });
  return el("tr", { "data-doc": d.doc_id }, [
    el("th", { scope: "row", class: "doc-title", text: d.title }),
    cell("colSection", d.section || t("noSection")),
    cell("colSource", d.source, "doc-source"),
    cell("colPage", d.page === null ? "—" : String(d.page), "number"),
    cell("colChunks", String(d.chunks), "number"),
    el("td", { class: "doc-actions" }, [
      el("button", {
        type: "button",
        class: "ghost small danger",
        "aria-label": t("deleteLabel", { title: d.title }),
        text: t("deleteButton"),
        onclick: () => confirmDelete(d),
      }),
    ]),
  ]);
}

// ---------------------------------------------------------------- actions

async function confirmDelete(d) {
  const collection = state.collection;
  const confirmed = await openDialog({
    kind: "confirm-dialog",
    title: t("deleteTitle"),
    message: t("deleteMessage", { title: d.title, collection }),
    submit: t("deleteButton"),
    cancel: t("cancel"),
    focus: "cancel",
  });
  if (!confirmed) return;
  const outcome = await deleteDocument(collection, d.doc_id);
  if (outcome.error) {
    showBanner(describeError(outcome.error), false);
    return;
  }
  // The row and its button are gone: the keyboard carries on from the list's heading.
  els.heading.focus();
  showToast(t("deleted", { title: d.title }));
  await refresh();
}

function renderAll() {
  applyStaticStrings();
  renderIndexStatus();
  renderDocuments();
  redrawUploads();
}

els.collection.addEventListener("change", () => {
  chooseCollection(els.collection.value);
  renderIndexStatus();
  loadDocuments();
});
els.filter.addEventListener("input", renderDocuments);
els.lang.addEventListener("click", () => {
  toggleLanguage();
  renderAll();
  els.lang.focus();
});
els.bannerRetry.addEventListener("click", refresh);
setupAccess(els.forgetKey, els.lang);
setupUploads({
  dropZone: $("drop-zone"),
  button: $("choose-files"),
  input: $("file-input"),
  list: $("jobs"),
  done: refresh,
});

renderAll();
refresh();
