// The chat page's fixed elements, from index.html.
const $ = (id) => document.getElementById(id);

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
  collectionField: $("collection-field"),
  collection: $("collection"),
  clear: $("clear"),
  lang: $("lang-toggle"),
  forgetKey: $("forget-key"),
  bannerRetry: $("banner-retry"),
  indexStatus: $("index-status"),
  article: $("article"),
  articleTitle: $("article-title"),
  articleMeta: $("article-meta"),
  articleBody: $("article-body"),
  articleClose: $("article-close"),
};
