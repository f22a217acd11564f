"""Show which words of a question a passage contains (for readers, not for ranking)."""

from __future__ import annotations

import re

import jieba
from rich.text import Text

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
