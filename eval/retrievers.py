"""The product's own search as an evaluation `Retriever`, one per search mode."""

from __future__ import annotations

from eval.runner import Retrieval
from index.search import DEFAULT_MODE, Searcher, check_mode


class CiteQARetriever:
    """Runs `Searcher.search` in one mode for each question; the name labels the mode in reports."""

    def __init__(self, searcher: Searcher, name: str = "citeqa", mode: str = DEFAULT_MODE) -> None:
        self.searcher = searcher
        self.name = name
        self.mode = check_mode(mode)

    def retrieve(self, question: str, top_k: int) -> Retrieval:
        result = self.searcher.search(question, top_k=top_k, mode=self.mode)
        return Retrieval(passages=result.passages, answerable=result.answerable)
