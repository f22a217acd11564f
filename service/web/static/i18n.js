// Every string the page shows, in both languages, and the language the page shows them in.
// `{name}` marks a value filled in by `t(key, values)`.
import { saveState, state } from "./state.js";

export const STRINGS = {
  zh: {
    htmlLang: "zh-CN",
    skipToQuestion: "跳到提问框",
    tagline: "带引用的行业资讯问答",
    langToggle: "English",
    langToggleLabel: "Switch the interface to English",
    clear: "清空对话",
    cleared: "对话已清空",
    retry: "重试",
    chatRegion: "对话",
    filters: "筛选",
    sections: "栏目",
    allSections: "全部",
    topK: "段落数",
    conversation: "对话记录",
    welcome: "向报告提问，例如：",
    examples: ["小米第三季度智能手机销量是多少？", "近一个月工信部开展了多少次5G调研？", "How many 5G base stations has China built?"],
    questionLabel: "你的问题",
    placeholder: "输入问题（中文或英文）",
    send: "发送",
    hint: "Enter 发送 · Shift+Enter 换行 · Esc 关闭原文",
    you: "你",
    searching: "正在检索…",
    searchedAs: "结合上文检索：",
    answerLabel: "回答：",
    noAnswer: "以下段落与问题最相关：",
    notAnswerable: "文库中似乎没有能回答这个问题的内容。以下是最接近的段落：",
    sourcesLabel: "来源：",
    summary: "{n} 个段落 · {ms} 毫秒",
    page: "第 {n} 页",
    score: "相关度 {s}",
    noSection: "未分栏",
    openArticle: "查看原文",
    copyCitation: "复制引用",
    copied: "引用已复制",
    copyFailed: "无法复制，请手动选择文字复制",
    citeLabel: "引用 {n}：《{title}》",
    cardLabel: "第 {n} 名：《{title}》",
    noPassages: "没有找到相关段落。",
    emptyIndex: "索引中还没有文章。请先用 citeqa ingest 路径 添加文章，或用 citeqa serve --ingest-if-empty data/sample 启动。",
    unreachable: "无法连接到 CiteQA 服务器。请确认服务正在运行，然后重试。",
    loading: "服务器正在加载模型和索引，请稍候…",
    serverError: "服务器返回错误（{status}）：{message}",
    failed: "请求失败（{status}）：{message}",
    unreachableReply: "无法连接到服务器，问题未能发送。请检查服务后重新提问。",
    indexStatus: "{docs} 篇文章 · {chunks} 个段落",
    close: "关闭原文",
    articleText: "原文全文",
    articleLoading: "正在加载原文…",
    articleError: "无法加载原文：{message}",
    metaSection: "栏目",
    metaPage: "页码",
    metaSource: "来源",
    articleOpened: "已打开原文《{title}》，引用段落已高亮",
  },
  en: {
    htmlLang: "en",
    skipToQuestion: "Skip to the question box",
    tagline: "Answers with citations from industry reports",
    langToggle: "中文",
    langToggleLabel: "切换到中文界面",
    clear: "Clear conversation",
    cleared: "Conversation cleared",
    retry: "Retry",
    chatRegion: "Conversation",
    filters: "Filters",
    sections: "Sections",
    allSections: "All",
    topK: "Passages",
    conversation: "Conversation history",
    welcome: "Ask the reports a question, for example:",
    examples: ["How many 5G base stations has China built?", "小米第三季度智能手机销量是多少？", "What did the EU countries announce about semiconductors?"],
    questionLabel: "Your question",
    placeholder: "Ask a question (Chinese or English)",
    send: "Send",
    hint: "Enter to send · Shift+Enter for a new line · Esc closes the article",
    you: "You",
    searching: "Searching…",
    searchedAs: "Searched in context as:",
    answerLabel: "Answer: ",
    noAnswer: "These passages match the question best:",
    notAnswerable: "Nothing in the index seems to answer this. The closest passages:",
    sourcesLabel: "Sources: ",
    summary: "{n} passages · {ms} ms",
    page: "p. {n}",
    score: "score {s}",
    noSection: "no section",
    openArticle: "Open article",
    copyCitation: "Copy citation",
    copied: "Citation copied",
    copyFailed: "Could not copy; select the text and copy it by hand",
    citeLabel: "Citation {n}: {title}",
    cardLabel: "Rank {n}: {title}",
    noPassages: "No passages found.",
    emptyIndex: "The index holds no articles yet. Add some with citeqa ingest PATH, or start the server with citeqa serve --ingest-if-empty data/sample.",
    unreachable: "Cannot reach the CiteQA server. Check that it is running, then retry.",
    loading: "The server is loading the model and the index; one moment…",
    serverError: "The server answered with an error ({status}): {message}",
    failed: "The request failed ({status}): {message}",
    unreachableReply: "Cannot reach the server; the question was not sent. Check the server and ask again.",
    indexStatus: "{docs} articles · {chunks} passages",
    close: "Close the article",
    articleText: "Article text",
    articleLoading: "Loading the article…",
    articleError: "Could not load the article: {message}",
    metaSection: "Section",
    metaPage: "Page",
    metaSource: "Source",
    articleOpened: "Opened “{title}” with the cited passage highlighted",
  },
};

// The string `key` in the page's language, with `{name}` filled in from `values`. Non-strings (lists) as they are.
export function t(key, values) {
  const strings = STRINGS[state.lang] || STRINGS.en;
  const text = strings[key];
  if (typeof text !== "string") return text;
  return text.replace(/\{(\w+)\}/g, (_, name) => (values && name in values ? String(values[name]) : ""));
}

// The strings written in index.html, marked with data-i18n, data-i18n-aria-label and data-i18n-placeholder.
export function applyStaticStrings() {
  document.documentElement.lang = t("htmlLang");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-aria-label]")) {
    node.setAttribute("aria-label", t(node.dataset.i18nAriaLabel));
  }
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
    node.setAttribute("placeholder", t(node.dataset.i18nPlaceholder));
  }
}

// Switch between Chinese and English and remember the choice; the caller re-renders the page.
export function toggleLanguage() {
  state.lang = state.lang === "zh" ? "en" : "zh";
  saveState();
}
