// Which parts of a passage to mark, and the marked text as DOM nodes.
import { el } from "./dom.js";

// Spans [start, end) of `text` to mark: the passage's own highlight when the server sent one, else every
// occurrence of the query's terms (longest first, so "智能手机" wins over "手机").
export function markSpans(text, highlight, terms) {
  if (highlight && Number.isInteger(highlight.char_start) && highlight.char_end > highlight.char_start) {
    return [[Math.max(0, highlight.char_start), Math.min(text.length, highlight.char_end)]];
  }
  const spans = [];
  const lower = text.toLowerCase();
  const taken = new Uint8Array(text.length);
  for (const term of [...(terms || [])].sort((a, b) => b.length - a.length)) {
    const needle = term.toLowerCase();
    if (!needle) continue;
    for (let at = lower.indexOf(needle); at !== -1; at = lower.indexOf(needle, at + needle.length)) {
      if (taken.subarray(at, at + needle.length).some(Boolean)) continue;
      taken.fill(1, at, at + needle.length);
      spans.push([at, at + needle.length]);
    }
  }
  return spans.sort((a, b) => a[0] - b[0]);
}

// `text` with each span wrapped in <mark class=markClass>.
export function markedText(text, spans, markClass) {
  const fragment = document.createDocumentFragment();
  let position = 0;
  for (const [start, end] of spans) {
    if (start < position) continue;
    fragment.append(text.slice(position, start));
    fragment.append(el("mark", { class: markClass }, text.slice(start, end)));
    position = end;
  }
  fragment.append(text.slice(position));
  return fragment;
}
