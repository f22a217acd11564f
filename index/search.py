"""Question -> ranked passages with citations."""

from __future__ import annotations

import time
from typing import Literal, get_args

from pydantic import BaseModel, Field

from index.store import ChunkHit, IndexStore
from index.vectors import TextEncoder

SearchMode = Literal["dense"]
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)
DEFAULT_MODE: SearchMode = "dense"


class SearchFilters(BaseModel):
    """Restricts a search to some sections and/or documents; empty lists mean no restriction."""

    sections: list[str] = Field(default_factory=list)
    doc_ids: list[str] = Field(default_factory=list)


class Citation(BaseModel):
    """Where a passage stands: `document.text[char_start:char_end] == passage.text`."""

    doc_id: str
    title: str
    section: str | None
    page: int | None
    source: str
    char_start: int
    char_end: int


class Passage(BaseModel):
    rank: int = Field(ge=1)
    score: float
    text: str
    citation: Citation


class SearchResult(BaseModel):
    question: str
    passages: list[Passage]
    took_ms: float


# Fetched beyond top_k so that collapsing repeated passages still leaves top_k distinct ones.
_OVERFETCH = 3


class Searcher:
    """Finds the passages of an index that answer a question."""

    def __init__(self, store: IndexStore, encoder: TextEncoder) -> None:
        self.store = store
        self.encoder = encoder

    def search(
        self,
        question: str,
        top_k: int = 5,
        filters: SearchFilters | None = None,
        mode: SearchMode = DEFAULT_MODE,
    ) -> SearchResult:
        started = time.perf_counter()
        filters = filters or SearchFilters()
        query = self.encoder.encode_queries([question])
        hits = self.store.search(
            query, top_k * _OVERFETCH + 5, sections=filters.sections, doc_ids=filters.doc_ids
        )[0]
        passages: list[Passage] = []
        seen: set[str] = set()
        for hit in hits:
            # The sample report repeats some sentences verbatim; one copy is enough in the top k.
            key = _normalised(hit.chunk.text)
            if key in seen:
                continue
            seen.add(key)
            passages.append(_passage(hit, rank=len(passages) + 1))
            if len(passages) == top_k:
                break
        took_ms = (time.perf_counter() - started) * 1000
        return SearchResult(question=question, passages=passages, took_ms=round(took_ms, 2))


def _normalised(text: str) -> str:
    return "".join(text.split())


def _passage(hit: ChunkHit, rank: int) -> Passage:
    return Passage(
        rank=rank,
        score=round(hit.score, 6),
        text=hit.chunk.text,
        citation=Citation(
            doc_id=hit.chunk.doc_id,
            title=hit.title,
            section=hit.section,
            page=hit.chunk.page,
            source=hit.source,
            char_start=hit.chunk.char_start,
            char_end=hit.chunk.char_end,
        ),
    )
