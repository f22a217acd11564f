"""Search results for the terminal: the answer line, and passages with the question's words marked."""

from __future__ import annotations

import re

from rich.markup import escape
from rich.text import Text

from index.search import Passage, SearchResult
from index.text import question_terms


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
