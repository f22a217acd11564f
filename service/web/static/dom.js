// Small DOM helpers shared by the pages. Text always goes in through textContent or text nodes, never
// innerHTML, because passages, titles and server messages are untrusted text.

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

// Every page has a #banner (with #banner-text and #banner-retry), a #status live region and a #toast.
export function showBanner(message, retry) {
  document.getElementById("banner-text").textContent = message;
  document.getElementById("banner-retry").hidden = !retry;
  document.getElementById("banner").hidden = false;
}

export function hideBanner() {
  document.getElementById("banner").hidden = true;
}

export function announce(message) {
  const status = document.getElementById("status");
  status.textContent = "";
  // A change of text is what screen readers announce; clearing first makes a repeated message heard.
  window.setTimeout(() => (status.textContent = message), 30);
}

let toastTimer = null;

export function showToast(message) {
  const toast = document.getElementById("toast");
  announce(message);
  toast.textContent = message;
  toast.classList.add("visible");
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => toast.classList.remove("visible"), 2200);
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
