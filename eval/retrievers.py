"""The product's own search as an evaluation `Retriever`, one per search mode."""

from __future__ import annotations

from eval.runner import Retrieval
from index.search import DEFAULT_MODE, SEARCH_MODES, Searcher


class UnknownModeError(ValueError):
    """
    A search mode was asked for that the product's `Searcher` does not have.
    """


def check_mode(mode: str) -> str:
    """`mode` if the product's `Searcher` has it, else UnknownModeError naming the modes it has."""
    if mode not in SEARCH_MODES:
        raise UnknownModeError(f"Unknown search mode '{mode}'; choose one of {', '.join(SEARCH_MODES)}")
    return mode


class CiteQARetriever:
    """Runs `Searcher.search` in one mode for each question; the name labels the mode in reports."""

    def __init__(self, searcher: Searcher, name: str = "citeqa", mode: str = DEFAULT_MODE) -> None:
        self.searcher = searcher
        self.name = name
        self.mode = check_mode(mode)

    def retrieve(self, question: str, top_k: int) -> Retrieval:
        result = self.searcher.search(question, top_k=top_k, mode=self.mode)  # type: ignore[arg-type]
        return Retrieval(passages=result.passages, answerable=result.answerable)
