// Uploads on the library page: files chosen with the button or dropped on the drop zone go to the chosen
// collection; each upload becomes a card that follows its job (GET /v1/jobs/{id}) until it ends, with a
// progress bar, then what became of each document and what could not be read.
import { getJob, uploadFiles } from "./api.js";
import { announce, el } from "./dom.js";
import { describeError, t } from "./i18n.js";
import { state } from "./state.js";

const POLL_MS = 500;
const uploads = []; // {collection, files, job, error, card}, newest first

// `done()` is called when a job ends, to refresh what the page lists.
export function setupUploads({ dropZone, button, input, list, done }) {
  button.addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    const files = [...input.files];
    input.value = ""; // choosing the same file again must fire `change` again
    upload(files, list, done);
  });
  for (const type of ["dragenter", "dragover"]) {
    dropZone.addEventListener(type, (event) => {
      if (!event.dataTransfer.types.includes("Files")) return;
      event.preventDefault(); // accepts the drop
      dropZone.classList.add("dragging");
    });
  }
  dropZone.addEventListener("dragleave", (event) => {
    if (!dropZone.contains(event.relatedTarget)) dropZone.classList.remove("dragging");
  });
  dropZone.addEventListener("drop", (event) => {
    dropZone.classList.remove("dragging");
    upload([...event.dataTransfer.files], list, done);
  });
  // A file dropped beside the zone would otherwise be opened by the browser in place of the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
}

// Draw every card again, in the page's language.
export function redrawUploads() {
  uploads.forEach(draw);
}

async function upload(files, list, done) {
  if (files.length === 0) return;
  const entry = { collection: state.collection, files: files.map((file) => file.name), job: null, error: null };
  entry.card = el("li", { class: "job" });
  uploads.unshift(entry);
  list.prepend(entry.card);
  draw(entry);
  const outcome = await uploadFiles(entry.collection, files);
  if (outcome.error) entry.error = outcome.error;
  else entry.job = outcome.data;
  draw(entry);
  if (entry.job) await follow(entry, done);
}

async function follow(entry, done) {
  while (entry.job.status === "queued" || entry.job.status === "running") {
    await new Promise((resolve) => window.setTimeout(resolve, POLL_MS));
    const outcome = await getJob(entry.job.id);
    if (outcome.error) {
      entry.error = outcome.error;
      draw(entry);
      return;
    }
    entry.job = outcome.data;
    draw(entry);
  }
  announce(statusText(entry));
  done();
}

function draw(entry) {
  const { job, error } = entry;
  entry.card.dataset.status = error ? "error" : job ? job.status : "sending";
  const problems = job ? job.problems : error ? error.details || [] : [];
  const parts = [
    el("p", { class: "job-files" }, [
      el("span", { class: "job-file-names", text: entry.files.join(", ") }),
      el("span", { class: "job-collection", text: `→ ${entry.collection}` }),
    ]),
    el("p", { class: error || (job && job.status === "failed") ? "job-status error" : "job-status", text: statusText(entry) }),
    job && !error && job.status !== "failed" ? progressBar(entry) : null,
    job && job.documents.length ? documentsList(job.documents) : null,
    problems.length ? problemsList(problems) : null,
  ];
  // replaceChildren would show a null as the text "null".
  entry.card.replaceChildren(...parts.filter(Boolean));
}

function statusText({ job, error }) {
  if (error && !job) {
    return error.kind === "unreachable" ? t("unreachableShort") : t("jobRefused", { status: error.status, message: error.message });
  }
  if (error) return t("jobLost", { message: describeError(error) });
  if (!job) return t("jobSending");
  if (job.status === "queued") return t("jobQueued");
  if (job.status === "failed") return t("jobFailed", { error: job.error || "" });
  if (job.status === "done") {
    const count = (status) => job.documents.filter((d) => d.status === status).length;
    return t("jobDone", { added: count("added"), updated: count("updated"), unchanged: count("unchanged") });
  }
  if (job.texts_total === null) return t("jobStarting");
  return t("jobRunning", { done: job.texts_embedded, total: job.texts_total });
}

// Texts embedded of the job's total, in percent (a job with nothing to embed is complete once done).
function progressBar(entry) {
  const { job } = entry;
  const bar = el("div", {
    class: "progress",
    role: "progressbar",
    "aria-label": t("progressLabel", { files: entry.files.join(", ") }),
    "aria-valuetext": statusText(entry),
  });
  const fill = el("span", { class: "progress-fill" });
  bar.append(fill);
  let percent = null; // unknown until the job starts: an indeterminate bar
  if (job.status === "done") percent = 100;
  else if (job.texts_total) percent = Math.min(100, Math.round((100 * job.texts_embedded) / job.texts_total));
  if (percent === null) {
    bar.classList.add("indeterminate");
    return bar;
  }
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  bar.setAttribute("aria-valuenow", String(percent));
  // Through the CSSOM, not a style attribute, which a Content-Security-Policy without 'unsafe-inline' forbids.
  fill.style.width = `${percent}%`;
  return bar;
}

function documentsList(documents) {
  return el(
    "ul",
    { class: "job-documents" },
    documents.map((d) =>
      el("li", { "data-doc": d.doc_id }, [
        el("span", { class: `doc-status ${d.status}`, text: t(d.status) }),
        el("span", { class: "job-doc-title", text: d.title }),
        d.section ? el("span", { class: "job-doc-section", text: d.section }) : null,
      ]),
    ),
  );
}

// The server's problems: {source, line, message} per unreadable file or line; a refused request's
// validation details are {field, problem}.
function problemsList(problems) {
  return el("div", { class: "job-problems" }, [
    el("p", { text: t("problemsLabel") }),
    el(
      "ul",
      {},
      problems.map((p) => {
        const values = { source: p.source || p.field || "", line: p.line, message: p.message || p.problem || "" };
        return el("li", { text: t(p.line ? "problemAt" : "problem", values) });
      }),
    ),
  ]);
}
