// Small DOM helpers. Text always goes in through textContent or text nodes, never innerHTML, because
// passages and articles are untrusted text.
const $ = (id) => document.getElementById(id);

// The page's fixed elements from index.html.
export const els = {
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

// A new element: `props` are attributes, except `class`, `text` (its textContent) and `on…` (listeners).
export function el(tag, props, children) {
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

export function announce(message) {
  els.status.textContent = "";
  // A change of text is what screen readers announce; clearing first makes a repeated message heard.
  window.setTimeout(() => (els.status.textContent = message), 30);
}

let toastTimer = null;

export function showToast(message) {
  announce(message);
  els.toast.textContent = message;
  els.toast.classList.add("visible");
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => els.toast.classList.remove("visible"), 2200);
}

export async function copyText(text) {
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
