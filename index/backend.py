"""The backend seam: what searching, indexing and the service ask of a collection's index.

`Store` is exactly the surface `Searcher`, `Indexer`, `citeqa.collections`, `citeqa.wiring` and the routes
use. Two backends implement it: `index.store.IndexStore` (a local folder: SQLite, FAISS) and
`index.milvus.store.MilvusStore` (everything in Milvus). Ranking stays in `index.search` whichever it is:
a store answers each signal's candidates, never a ranking.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from index.documents import Document
from index.lexical import Keywords
from index.storage.documents import ChunkHit, DocumentSummary, IndexedDocument, StoredDocument
from index.storage.keywords import KeywordTop
from index.storage.vectors import IndexSpec
from index.store import ChunkSentences, Manifest


class Store(Protocol):
    """One collection's documents, chunks, sentences, vectors and keywords."""

    manifest: Manifest
    """What the stored vectors were built with (model, dimension, chunking)."""

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """Reads inside see one state of the index: a document written or deleted meanwhile is either
        wholly there or wholly gone."""
        ...

    def close(self) -> None: ...

    # -- listings --------------------------------------------------------------------------------------

    def counts(self) -> tuple[int, int]:
        """(documents, chunks)."""
        ...

    def sections(self) -> list[str]: ...

    def list_documents(self) -> list[DocumentSummary]: ...

    def get_document(self, doc_id: str) -> Document:
        """The document (DocumentNotFound if there is none)."""
        ...

    def find_document(self, doc_id: str) -> StoredDocument | None: ...

    def iter_documents(self) -> Iterator[Document]: ...

    def chunk_count(self, doc_id: str) -> int: ...

    def vector_specs(self) -> dict[str, IndexSpec]:
        """Each kind's vector index (chunks, sentences), as `GET /readyz` describes it."""
        ...

    # -- candidates: read inside one snapshot ----------------------------------------------------------

    def allowed_chunks(self, sections: Sequence[str] = (), doc_ids: Sequence[str] = ()) -> np.ndarray | None:
        """Ids of the chunks a search restricted to `sections` and `doc_ids` may return; None: every one."""
        ...

    def chunk_sample(self, size: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """Up to `size` chunk ids drawn uniformly from those in scope, ascending, and how many are in scope."""
        ...

    def nearest_chunks(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The (ids, cosines) of the `k` chunks closest to `query`, best first."""
        ...

    def nearest_sentences(
        self, query: np.ndarray, k: int, allowed_chunks: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The (sentence ids, their chunk ids, cosines) of the `k` sentences closest to `query`, best first."""
        ...

    def nearest_units(
        self, query: np.ndarray, chunks: int, sentences: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ids of the `chunks` chunks closest to `query` (best first), and the chunk ids of the
        `sentences` closest sentences (`nearest_chunks` and `nearest_sentences` in one call, which a backend
        may answer with both searches at once)."""
        ...

    def keyword_top(
        self,
        keywords: Keywords,
        limit: int,
        allowed: np.ndarray | None = None,
        also: np.ndarray | None = None,
    ) -> KeywordTop:
        """The `limit` chunks BM25 scores highest, the scores of the chunks in `also`, and BM25's mean and
        spread over the chunks in scope."""
        ...

    def chunk_vectors(self, chunk_ids: np.ndarray) -> np.ndarray:
        """The chunks' vectors, in the order given."""
        ...

    def chunk_sentences(self, chunk_ids: Sequence[int] | np.ndarray, *, spans: bool = True) -> ChunkSentences:
        """The sentences of some chunks, grouped by chunk, with their vectors (and spans)."""
        ...

    def chunk_hits(self, chunk_ids: Sequence[int], scores: Sequence[float]) -> list[ChunkHit]:
        """The chunks with what a citation needs, in the order given."""
        ...

    def sentence_spans(self, sentence_ids: Sequence[int]) -> dict[int, tuple[int, int, int | None]]:
        """(char_start, char_end, page) of some sentences in their documents, by id."""
        ...

    def keyword_matches(self, texts: Sequence[str], keywords: Keywords) -> np.ndarray:
        """How much of the keywords each text holds, with the index's idf."""
        ...

    def vocabulary_is_chinese(self) -> bool:
        """Whether most of the words indexed for keyword search are Chinese."""
        ...

    # -- writes ----------------------------------------------------------------------------------------

    def upsert(self, items: Sequence[IndexedDocument]) -> None:
        """Add or replace documents; a document is never searchable with only some of its chunks."""
        ...

    def replace_all(self, manifest: Manifest, items: Sequence[IndexedDocument]) -> None:
        """Swap every chunk and vector for new ones (another model, chunking or index kind)."""
        ...

    def delete(self, doc_id: str) -> None:
        """Remove a document (DocumentNotFound if there is none)."""
        ...
