"""Hand-made passages and results for the evaluation tests (no model)."""

from __future__ import annotations

from typing import Any

from eval.results import QuestionResult
from index.search import Citation, Highlight, Passage


def make_passage(
    rank: int,
    text: str,
    title: str = "T",
    doc_id: str = "d",
    score: float = 0.5,
    highlight: tuple[int, int] | None = None,
) -> Passage:
    citation = Citation(
        doc_id=doc_id, title=title, section=None, page=None, source="s.txt", char_start=0, char_end=len(text)
    )
    marked = Highlight(char_start=highlight[0], char_end=highlight[1]) if highlight else None
    return Passage(rank=rank, score=score, text=text, citation=citation, highlight=marked)


def make_result(**fields: Any) -> QuestionResult:
    defaults: dict[str, Any] = {
        "id": "q",
        "lang": "zh",
        "type": None,
        "answerable": True,
        "n_gold_articles": 1,
        "n_snippets": 1,
        "answer_rank": None,
        "relevant_ranks": [],
        "article_rank": None,
        "article_full_rank": None,
        "top_score": None,
        "latency_ms": 1.0,
        "passage_chars": [],
        "flagged_answerable": None,
    }
    return QuestionResult(**(defaults | fields))
