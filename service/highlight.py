"""Show which words of a question a passage contains (for readers, not for ranking)."""

from __future__ import annotations

import re

import jieba
from rich.markup import escape
from rich.text import Text

from index.search import Passage, SearchResult

jieba.setLogLevel(60)

_STOPWORDS = frozenset(
    {
        *("的", "了", "是", "在", "和", "与", "及", "有", "多少", "什么", "哪些", "哪个", "如何", "怎么"),
        *("为什么", "吗", "呢", "是否", "the", "a", "an", "of", "in", "on", "to", "for", "and", "or"),
        *("is", "are", "was", "were", "what", "which", "who", "how", "many", "much", "did", "does", "do"),
    }
)


def question_terms(question: str) -> list[str]:
    """Words of the question worth marking: Chinese words of two or more characters, Latin words, numbers."""
    terms = {
        token.strip().lower()
        for token in jieba.cut(question)
        if len(token.strip()) >= 2 or token.strip().isdigit()
    }
    return sorted((t for t in terms if t not in _STOPWORDS and re.search(r"\w", t)), key=len, reverse=True)


def highlight_terms(passage: str, question: str, style: str = "bold yellow") -> Text:
    text = Text(passage)
    terms = question_terms(question)
    if terms:
        pattern = re.compile("|".join(re.escape(term) for term in terms), re.IGNORECASE)
        for match in pattern.finditer(passage):
            text.stylize(style, match.start(), match.end())
    return text


def render_passage(passage: Passage, question: str) -> Text:
    """A passage for the terminal: its best-matching sentence underlined, the question's words marked."""
    text = highlight_terms(passage.text, question)
    if passage.highlight is not None:
        text.stylize("underline", passage.highlight.char_start, passage.highlight.char_end)
    return text


def render_answer(result: SearchResult) -> str:
    """The answer line printed above the passages (rich markup)."""
    if not result.answerable or result.answer is None:
        return "[yellow]No passage in the index seems to answer this; the closest ones follow.[/]"
    citation = result.answer.citation
    page = f", p. {citation.page}" if citation.page is not None else ""
    return f"[bold green]Answer:[/] {escape(result.answer.text)}  [dim]《{escape(citation.title)}》{page}[/]"
