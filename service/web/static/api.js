// The server's HTTP API: readiness, chat and documents. Each call turns network failures and error
// responses into plain values the page can show; nothing here touches the DOM.
const JSON_ACCEPT = { Accept: "application/json" };

// The `message` of an error response (every CiteQA error body has one), else the status text.
export async function readError(response) {
  try {
    const body = await response.json();
    return body.message || response.statusText;
  } catch (error) {
    return response.statusText || String(response.status);
  }
}

// GET /readyz as one of {kind: "ready", body}, {kind: "loading"} (the model and index are still loading),
// {kind: "http", status, message} or {kind: "unreachable"}.
export async function getReady() {
  let response;
  try {
    response = await fetch("/readyz", { headers: JSON_ACCEPT });
  } catch (error) {
    return { kind: "unreachable" };
  }
  if (response.status === 503) return { kind: "loading" };
  if (!response.ok) return { kind: "http", status: response.status, message: await readError(response) };
  return { kind: "ready", body: await response.json() };
}

// POST /v1/chat as {response} or {error: {kind: "http", status, message} | {kind: "unreachable"}}.
export async function postChat(body) {
  try {
    const response = await fetch("/v1/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...JSON_ACCEPT },
      body: JSON.stringify(body),
    });
    if (response.ok) return { response: await response.json() };
    return { error: { kind: "http", status: response.status, message: await readError(response) } };
  } catch (error) {
    return { error: { kind: "unreachable" } };
  }
}

const documents = new Map(); // doc_id -> Promise of the document

// GET /v1/documents/{id}, fetched once per page; the promise rejects with the server's message.
export function fetchDocument(docId) {
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
