// The server's HTTP API. Every /v1 call goes through `callApi`, which sends the stored API key and, on a
// 401, has the page ask the user for one and tries again. Failures become plain values the page can show;
// nothing here touches the DOM, and the key is never logged.
const KEY_STORAGE = "citeqa.apiKey";

let apiKey = readStoredKey(); // also kept here, so that a browser refusing storage still sends it
let keyPrompt = { ask: async () => null, changed: () => {} };
let pendingAsk = null; // the prompt on screen, shared by every call that met a 401 meanwhile

function readStoredKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch (error) {
    return "";
  }
}

function setKey(key) {
  apiKey = key;
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch (error) {
    // Storage disabled (private mode): the key lasts until the page closes.
  }
  keyPrompt.changed();
}

// The page's part in key handling: `ask(message)` resolves to the key the user typed (null: cancelled),
// `changed()` hears that the stored key was set or forgotten.
export function useKeyPrompt(prompt) {
  keyPrompt = prompt;
}

export function hasKey() {
  return Boolean(apiKey);
}

export function forgetKey() {
  setKey("");
}

async function askForKey(message) {
  pendingAsk = pendingAsk || keyPrompt.ask(message).finally(() => (pendingAsk = null));
  const key = ((await pendingAsk) || "").trim();
  if (key) setKey(key);
  return Boolean(key);
}

// The `message` and `details` of an error response (every CiteQA error body has them), else the status text.
async function readError(response) {
  try {
    const body = await response.json();
    return { message: body.message || response.statusText, details: Array.isArray(body.details) ? body.details : [] };
  } catch (error) {
    return { message: response.statusText || String(response.status), details: [] };
  }
}

// One /v1 call, as {data} (the JSON body) or {error: {kind: "http", status, message, details} |
// {kind: "unreachable"}}. `json` is sent as a JSON body, `form` (FormData) as multipart.
export async function callApi(path, { method = "GET", json, form } = {}) {
  for (;;) {
    const headers = { Accept: "application/json" };
    if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
    if (json !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method, headers, body: json !== undefined ? JSON.stringify(json) : form });
      if (response.ok) return { data: await response.json() };
    } catch (error) {
      return { error: { kind: "unreachable" } };
    }
    const error = { kind: "http", status: response.status, ...(await readError(response)) };
    // A 401 means no key or a wrong one: ask for one and try again, until the user cancels.
    if (response.status !== 401 || !(await askForKey(error.message))) return { error };
  }
}

// GET /readyz (open, no key) as one of {kind: "ready"}, {kind: "loading"} (the model and index are still
// loading), {kind: "http", status, message} or {kind: "unreachable"}.
export async function getReady() {
  let response;
  try {
    response = await fetch("/readyz", { headers: { Accept: "application/json" } });
  } catch (error) {
    return { kind: "unreachable" };
  }
  if (response.status === 503) return { kind: "loading" };
  if (!response.ok) return { kind: "http", status: response.status, message: (await readError(response)).message };
  return { kind: "ready" };
}

const documentsPath = (collection) => `/v1/collections/${encodeURIComponent(collection)}/documents`;

export const postChat = (body) => callApi("/v1/chat", { method: "POST", json: body });
export const listCollections = () => callApi("/v1/collections");
export const listDocuments = (collection) => callApi(documentsPath(collection));
export const getJob = (jobId) => callApi(`/v1/jobs/${encodeURIComponent(jobId)}`);

export function deleteDocument(collection, docId) {
  return callApi(`${documentsPath(collection)}/${encodeURIComponent(docId)}`, { method: "DELETE" });
}

// POST the files to the collection: the queued job (202), or the reason the upload was refused.
export function uploadFiles(collection, files) {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  return callApi(documentsPath(collection), { method: "POST", form });
}

const documents = new Map(); // "collection/doc_id" -> Promise of the document

// One document of a collection, fetched once per page; the promise rejects with callApi's error value.
export function fetchDocument(collection, docId) {
  const cacheKey = `${collection}/${docId}`;
  if (!documents.has(cacheKey)) {
    const request = callApi(`${documentsPath(collection)}/${encodeURIComponent(docId)}`).then((outcome) => {
      if (outcome.error) throw outcome.error;
      return outcome.data;
    });
    // A failed fetch is not kept, so that opening the article again retries it.
    request.catch(() => documents.delete(cacheKey));
    documents.set(cacheKey, request);
  }
  return documents.get(cacheKey);
}
