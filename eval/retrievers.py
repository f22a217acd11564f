"""The product's own search as an evaluation `Retriever`."""

from __future__ import annotations

from index.search import Passage, Searcher


class CiteQARetriever:
    """Runs `Searcher.search` for each question; the name labels the mode in reports."""

    def __init__(self, searcher: Searcher, name: str = "citeqa") -> None:
        self.searcher = searcher
        self.name = name

    def retrieve(self, question: str, top_k: int) -> list[Passage]:
        return self.searcher.search(question, top_k=top_k).passages
