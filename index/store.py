"""The index on disk: documents, chunks and sentences in SQLite, their vectors in FAISS, kept in step.

SQLite is the source of truth: every write is one transaction that also stores each chunk's and
sentence's vector and each chunk's keyword terms, and bumps a generation counter, so a process
killed mid-write leaves the previous state (SQLite rolls the journal back on the next open). The
FAISS files are a cache of those vectors, written to temporary files and renamed into place after
each commit, then tagged with the generation; when the tag disagrees (a crash between the commit
and the renames) the FAISS indexes are rebuilt from the stored vectors.

Reads that must agree with each other (a search) run inside `IndexStore.snapshot()`: the vectors in memory
and the SQLite rows then come from one generation, whatever other threads or processes write meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from pydantic import BaseModel

from citeqa.errors import DocumentNotFound, IndexLocked, IndexModelMismatch
from index.chunking import Chunk, ChunkingSettings, SentenceSpan
from index.documents import Document, PageStart
from index.lexical import Keywords, LexicalIndex

logger = logging.getLogger(__name__)

DATABASE_FILE = "citeqa.sqlite3"
VECTOR_FILES = {"chunks": "chunks.faiss", "sentences": "sentences.faiss"}
VECTORS_TAG_FILE = "vectors.json"
# Beyond this many nearest neighbours a unit's similarity is taken as the lowest one found: ranking
# needs every chunk's scores for normalisation, but not exact ones for the far tail.
MAX_SCORED = {"chunks": 4096, "sentences": 16384}
LOCK_FILE = "write.lock"
# How long a write waits for another process's write (e.g. a running `citeqa ingest`) before IndexLocked.
WRITE_LOCK_TIMEOUT_S = 30.0
FORMAT_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    section TEXT,
    date TEXT,
    source TEXT NOT NULL,
    url TEXT,
    text TEXT NOT NULL,
    page_map TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    chunk_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    page INTEGER,
    terms TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS sentences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    page INTEGER,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS sentences_chunk ON sentences(chunk_id);
"""


class Manifest(BaseModel):
    """What an index was built with; vectors from another model cannot be searched together."""

    format_version: int = FORMAT_VERSION
    model: str
    dimension: int
    chunking: ChunkingSettings


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    section: str | None
    page: int | None
    source: str
    chunks: int


class StoredDocument(BaseModel):
    document: Document
    content_hash: str


@dataclass(frozen=True)
class ChunkHit:
    """A chunk found by a vector search, with what a citation needs."""

    chunk_id: int
    score: float
    chunk: Chunk
    title: str
    section: str | None
    source: str


@dataclass(frozen=True)
class IndexedDocument:
    """A document ready to store: its chunks and sentences with their vectors, and each chunk's terms."""

    document: Document
    content_hash: str
    chunks: Sequence[Chunk]
    chunk_vectors: np.ndarray
    chunk_terms: Sequence[list[str]]
    sentences: Sequence[SentenceSpan]
    sentence_vectors: np.ndarray


@dataclass(frozen=True)
class ChunkSentences:
    """The sentences of one chunk, in document order: ids, (char_start, char_end) in the document, vectors."""

    ids: np.ndarray
    spans: list[tuple[int, int]]
    vectors: np.ndarray


@dataclass(frozen=True)
class ChunkScores:
    """Every candidate chunk's similarities to one question, aligned by position."""

    chunk_ids: np.ndarray
    dense: np.ndarray
    """Cosine of the question and the whole chunk."""
    sentence: np.ndarray
    """Cosine of the question and the chunk's closest sentence (the chunk's own cosine if it has none)."""
    best_sentence: np.ndarray
    """Id of that closest sentence, -1 if none."""
    lexical: np.ndarray
    """BM25 of the question's terms against the chunk's terms (with its article's title and section)."""


class IndexStore:
    """Documents, chunks, sentences and their vectors in one index folder. Open with `IndexStore.open`."""

    def __init__(
        self,
        directory: Path,
        connection: sqlite3.Connection,
        manifest: Manifest,
        *,
        lock_timeout_s: float = WRITE_LOCK_TIMEOUT_S,
    ) -> None:
        self.directory = directory
        self.manifest = manifest
        self.lock_timeout_s = lock_timeout_s
        """How long a write waits for another process's write lock before raising IndexLocked."""
        self._db = connection
        # Guards the connection and the in-memory indexes: held by every read and by a whole write.
        self._lock = threading.RLock()
        # Writers of this process queue here, without a timeout, before they take the file lock.
        self._writers = threading.Lock()
        self._snapshot_depth = 0
        self._vectors = {kind: self._new_vector_index() for kind in VECTOR_FILES}
        self._sentence_chunk: dict[int, int] = {}
        self._chunk_terms: dict[int, list[str]] = {}
        self._lexical: LexicalIndex | None = None
        self._sentence_table: tuple[np.ndarray, np.ndarray] | None = None
        self._generation = -1
        self.refresh()  # in a snapshot: the rows and the vectors loaded are of one generation

    @classmethod
    def open(
        cls,
        directory: Path,
        manifest: Manifest,
        *,
        rebuild: bool = False,
        lock_timeout_s: float = WRITE_LOCK_TIMEOUT_S,
    ) -> IndexStore:
        """Open (or create) the index in `directory` for vectors described by `manifest`.

        An index built with another model or dimension is refused unless `rebuild` is set: the
        caller then re-embeds every stored document (`citeqa reindex`), which rewrites the manifest.
        A write waits up to `lock_timeout_s` for another process's write, then raises IndexLocked.
        """
        directory.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(directory / DATABASE_FILE, check_same_thread=False, isolation_level=None)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA busy_timeout = 10000")
        connection.executescript(_SCHEMA)
        stored = _read_meta(connection, "manifest")
        if stored is None:
            _write_meta(connection, "manifest", manifest.model_dump_json())
            _write_meta(connection, "generation", "0")
        else:
            existing = Manifest.model_validate_json(stored)
            if (existing.model, existing.dimension) != (manifest.model, manifest.dimension) and not rebuild:
                connection.close()
                raise IndexModelMismatch(
                    f"The index in {directory} was built with model {existing.model!r} "
                    f"(dimension {existing.dimension}), but the configured model is {manifest.model!r} "
                    f"(dimension {manifest.dimension}). Run `citeqa reindex` to re-embed the stored documents"
                    " with the configured model, or set CITEQA_DATA_DIR to another folder, or set "
                    f"CITEQA_EMBEDDING_MODEL back to {existing.model!r}."
                )
            if existing.chunking != manifest.chunking and not rebuild:
                logger.warning(
                    "Index chunked with %s; settings now say %s. New documents use the new settings; "
                    "run `citeqa reindex` to re-chunk all of them.",
                    existing.chunking,
                    manifest.chunking,
                )
            # The vectors stay those of the stored manifest until `replace_all` swaps them.
            manifest = existing if rebuild else existing.model_copy(update={"chunking": manifest.chunking})
        return cls(directory, connection, manifest, lock_timeout_s=lock_timeout_s)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- reading ---------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        with self._lock:
            return int(_read_meta(self._db, "generation") or 0)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read one generation of the index: every read inside sees the same documents and vectors.

        Holds the store's lock, so writes of this process wait for the snapshot to end (and it for them),
        and a SQLite read transaction, so that writes committed by other processes meanwhile stay unseen;
        the vectors in memory are reloaded first if another process wrote since they were loaded. Keep
        slow work that needs no index (embedding a question) outside: writers wait for the snapshot.
        Raises IndexModelMismatch if another process re-embedded the index with another model. Nested
        snapshots (in the same thread) share the outer one.
        """
        with self._lock:
            if self._snapshot_depth:
                self._snapshot_depth += 1
                try:
                    yield
                finally:
                    self._snapshot_depth -= 1
                return
            # In WAL mode the read transaction's view is fixed by its first read, the generation below.
            self._db.execute("BEGIN")
            try:
                if int(_read_meta(self._db, "generation") or 0) != self._generation:
                    self._check_manifest(self._db, self.manifest, writing=False)
                    self._load_vectors()
                self._snapshot_depth = 1
                try:
                    yield
                finally:
                    self._snapshot_depth = 0
            finally:
                self._db.execute("COMMIT")

    def counts(self) -> tuple[int, int]:
        """(documents, chunks) in the index."""
        with self._lock:
            documents = self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            chunks = self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return documents, chunks

    def vector_counts(self) -> dict[str, int]:
        """Vectors held in memory by each FAISS index (chunks, sentences)."""
        with self._lock:
            return {kind: index.ntotal for kind, index in self._vectors.items()}

    def list_documents(self) -> list[DocumentSummary]:
        with self._lock:
            rows = self._db.execute(
                "SELECT d.doc_id, d.title, d.section, d.source, d.page_map, COUNT(c.id) AS chunks "
                "FROM documents d LEFT JOIN chunks c ON c.doc_id = d.doc_id "
                "GROUP BY d.doc_id ORDER BY d.position"
            ).fetchall()
        return [
            DocumentSummary(
                doc_id=row["doc_id"],
                title=row["title"],
                section=row["section"],
                page=_first_page(row["page_map"]),
                source=row["source"],
                chunks=row["chunks"],
            )
            for row in rows
        ]

    def sections(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT section FROM documents WHERE section IS NOT NULL "
                "GROUP BY section ORDER BY MIN(position)"
            ).fetchall()
        return [row["section"] for row in rows]

    def get_document(self, doc_id: str) -> Document:
        stored = self.find_document(doc_id)
        if stored is None:
            raise DocumentNotFound(f"No document with id {doc_id!r}. List the ids with GET /v1/documents.")
        return stored.document

    def find_document(self, doc_id: str) -> StoredDocument | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        return None if row is None else _stored_document(row)

    def iter_documents(self) -> Iterator[Document]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM documents ORDER BY position").fetchall()
        for row in rows:
            yield _stored_document(row).document

    def score(
        self,
        query_vector: np.ndarray,
        keywords: Keywords,
        *,
        sections: Sequence[str] = (),
        doc_ids: Sequence[str] = (),
    ) -> ChunkScores:
        """Similarities of every chunk (optionally only those of some sections or documents) to a question."""
        with self.snapshot():
            allowed = self._chunk_ids_matching(sections, doc_ids) if sections or doc_ids else None
            lexical_index = self._lexical_index()
            chunk_ids = lexical_index.chunk_ids if allowed is None else np.sort(allowed)
            if chunk_ids.size == 0:
                empty = np.zeros(0, dtype=np.float32)
                return ChunkScores(chunk_ids, empty, empty, np.zeros(0, dtype=np.int64), empty)
            query = np.ascontiguousarray(query_vector.reshape(1, -1), dtype=np.float32)

            found_ids, found_scores = self._nearest("chunks", query, allowed)
            dense = np.full(chunk_ids.size, found_scores.min(initial=0.0), dtype=np.float32)
            dense[np.searchsorted(chunk_ids, found_ids)] = found_scores

            sentence_ids, sentence_chunks = self._sentence_arrays()
            in_scope = np.isin(sentence_chunks, chunk_ids)
            found_ids, found_scores = self._nearest(
                "sentences", query, None if allowed is None else sentence_ids[in_scope]
            )
            # A chunk takes its closest sentence's cosine; one whose sentences all lie beyond the
            # neighbours fetched gets the lowest cosine seen, and one without sentences its own.
            sentence = np.where(
                np.isin(chunk_ids, sentence_chunks[in_scope]), found_scores.min(initial=0.0), dense
            ).astype(np.float32)
            best_sentence = np.full(chunk_ids.size, -1, dtype=np.int64)
            ascending = np.argsort(found_scores, kind="stable")
            found_ids, found_scores = found_ids[ascending], found_scores[ascending]
            positions = np.searchsorted(chunk_ids, sentence_chunks[np.searchsorted(sentence_ids, found_ids)])
            # Assigned in ascending order, so the highest score of each chunk is the one that stays.
            sentence[positions] = found_scores
            best_sentence[positions] = found_ids

            lexical = lexical_index.scores(keywords)[np.searchsorted(lexical_index.chunk_ids, chunk_ids)]
        return ChunkScores(chunk_ids, dense, sentence, best_sentence, lexical)

    def vocabulary_is_chinese(self) -> bool:
        """Whether most of the words indexed for keyword search are Chinese."""
        with self.snapshot():
            return self._lexical_index().chinese_share >= 0.5

    def chunk_hits(self, chunk_ids: Sequence[int], scores: Sequence[float]) -> list[ChunkHit]:
        """The chunks with what a citation needs, in the order given.

        The ids must come from the same snapshot (e.g. from `score` inside one `snapshot()`): a chunk
        deleted since is a KeyError."""
        with self.snapshot():
            records = self._chunk_records([int(c) for c in chunk_ids])
        return [_chunk_hit(records[int(c)], float(s)) for c, s in zip(chunk_ids, scores, strict=True)]

    def sentence_spans(self, sentence_ids: Sequence[int]) -> dict[int, tuple[int, int, int | None]]:
        """(char_start, char_end, page) of some sentences in their documents, by id."""
        ids = [int(i) for i in sentence_ids if i >= 0]
        if not ids:
            return {}
        with self.snapshot():
            rows = self._db.execute(
                f"SELECT id, char_start, char_end, page FROM sentences WHERE id IN ({','.join('?' * len(ids))})",
                ids,
            ).fetchall()
        return {row["id"]: (row["char_start"], row["char_end"], row["page"]) for row in rows}

    def chunk_sentences(self, chunk_ids: Sequence[int]) -> dict[int, ChunkSentences]:
        """The sentences of some chunks, with their vectors, by chunk id (chunks without any left out)."""
        ids = [int(chunk_id) for chunk_id in chunk_ids]
        if not ids:
            return {}
        with self.snapshot():
            rows = self._db.execute(
                "SELECT id, chunk_id, char_start, char_end FROM sentences "
                f"WHERE chunk_id IN ({','.join('?' * len(ids))}) ORDER BY id",
                ids,
            ).fetchall()
            by_chunk: dict[int, list[sqlite3.Row]] = {}
            for row in rows:
                by_chunk.setdefault(row["chunk_id"], []).append(row)
            vectors = self._vectors["sentences"]
            return {
                chunk_id: ChunkSentences(
                    ids=np.array([row["id"] for row in chunk_rows], dtype=np.int64),
                    spans=[(row["char_start"], row["char_end"]) for row in chunk_rows],
                    vectors=np.stack([vectors.reconstruct(row["id"]) for row in chunk_rows]),
                )
                for chunk_id, chunk_rows in by_chunk.items()
            }

    def keyword_matches(self, texts: Sequence[str], keywords: Keywords) -> np.ndarray:
        """How much of the keywords each text holds (index.lexical.LexicalIndex.match_scores)."""
        with self.snapshot():
            return self._lexical_index().match_scores(texts, keywords)

    def chunk_count(self, doc_id: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM chunks WHERE doc_id = ?", (doc_id,)).fetchone()[0]

    # -- writing ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def writer(self, timeout_s: float | None = None) -> Iterator[None]:
        """Hold the index's write lock: one writer at a time, across threads and processes.

        Waits up to `timeout_s` (default `lock_timeout_s`) for another process's write, then raises
        IndexLocked. Not reentrant: a nested `writer()` would wait for itself."""
        timeout_s = self.lock_timeout_s if timeout_s is None else timeout_s
        # The store's lock last: while a write waits for another process, searches of this one go on.
        with self._writers, _file_lock(self.directory / LOCK_FILE, timeout_s), self._lock:
            yield

    def upsert(self, items: Sequence[IndexedDocument]) -> None:
        """Add or replace documents in one transaction: all of them land, or none does."""
        self._check_vectors(items, self.manifest.dimension)
        with self.writer():
            self._transaction(lambda db: self._write_documents(db, items))

    def replace_all(self, manifest: Manifest, items: Sequence[IndexedDocument]) -> None:
        """Swap every chunk and vector for new ones (another model or chunking) in one transaction."""
        self._check_vectors(items, manifest.dimension)
        with self.writer():

            def write(db: sqlite3.Connection) -> None:
                _write_meta(db, "manifest", manifest.model_dump_json())
                db.execute("DELETE FROM chunks")
                self._write_documents(db, items)

            previous, self.manifest = self.manifest, manifest
            try:
                # What is on disk must still be what this store was opened on: the vectors it replaces.
                self._transaction(write, stored=previous)
            except BaseException:
                self.manifest = previous
                raise

    @staticmethod
    def _check_vectors(items: Sequence[IndexedDocument], dimension: int) -> None:
        for item in items:
            doc_id = item.document.doc_id
            if len(item.chunks) != len(item.chunk_vectors) or len(item.chunks) != len(item.chunk_terms):
                raise ValueError(
                    f"{doc_id}: {len(item.chunks)} chunks but {len(item.chunk_vectors)} vectors."
                )
            if len(item.sentences) != len(item.sentence_vectors):
                raise ValueError(
                    f"{doc_id}: {len(item.sentences)} sentences but {len(item.sentence_vectors)} vectors."
                )
            for vectors in (item.chunk_vectors, item.sentence_vectors):
                if len(vectors) and vectors.shape[1] != dimension:
                    raise ValueError(
                        f"{doc_id}: vectors have dimension {vectors.shape[1]}; the index holds {dimension}."
                    )

    @staticmethod
    def _write_documents(db: sqlite3.Connection, items: Sequence[IndexedDocument]) -> _Change:
        change = _Change()
        next_position = db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM documents").fetchone()[0]
        for item in items:
            document = item.document
            old = db.execute("SELECT position FROM documents WHERE doc_id = ?", (document.doc_id,)).fetchone()
            position = old["position"] if old else next_position
            next_position += 0 if old else 1
            change.remove_document(db, document.doc_id)
            db.execute("DELETE FROM documents WHERE doc_id = ?", (document.doc_id,))
            db.execute(
                "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    document.doc_id,
                    document.title,
                    document.section,
                    document.date,
                    document.source,
                    document.url,
                    document.text,
                    json.dumps([entry.model_dump() for entry in document.page_map]),
                    item.content_hash,
                    position,
                ),
            )
            chunk_ids = []
            for chunk, vector, words in zip(item.chunks, item.chunk_vectors, item.chunk_terms, strict=True):
                cursor = db.execute(
                    "INSERT INTO chunks (doc_id, chunk_index, text, char_start, char_end, page, terms, vector) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        chunk.doc_id,
                        chunk.chunk_index,
                        chunk.text,
                        chunk.char_start,
                        chunk.char_end,
                        chunk.page,
                        json.dumps(words, ensure_ascii=False),
                        np.asarray(vector, dtype=np.float32).tobytes(),
                    ),
                )
                chunk_ids.append(cursor.lastrowid)
                change.added_terms[cursor.lastrowid] = words
            change.add("chunks", chunk_ids, item.chunk_vectors)
            sentence_ids = []
            for span, vector in zip(item.sentences, item.sentence_vectors, strict=True):
                cursor = db.execute(
                    "INSERT INTO sentences (chunk_id, char_start, char_end, page, vector) VALUES (?, ?, ?, ?, ?)",
                    (
                        chunk_ids[span.chunk_index],
                        span.char_start,
                        span.char_end,
                        document.page_at(span.char_start),
                        np.asarray(vector, dtype=np.float32).tobytes(),
                    ),
                )
                sentence_ids.append(cursor.lastrowid)
                change.added_sentence_chunk[cursor.lastrowid] = chunk_ids[span.chunk_index]
            change.add("sentences", sentence_ids, item.sentence_vectors)
        return change

    def delete(self, doc_id: str) -> None:
        """Remove a document, its chunks and their vectors."""
        with self.writer():

            def write(db: sqlite3.Connection) -> _Change:
                if db.execute("SELECT 1 FROM documents WHERE doc_id = ?", (doc_id,)).fetchone() is None:
                    raise DocumentNotFound(
                        f"No document with id {doc_id!r}. List the ids with GET /v1/documents."
                    )
                change = _Change()
                change.remove_document(db, doc_id)
                db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
                return change

            self._transaction(write)

    def refresh(self) -> None:
        """Reload the vectors if another process wrote to the index since they were loaded
        (IndexModelMismatch if it re-embedded them with another model)."""
        with self.snapshot():
            pass

    # -- internals -------------------------------------------------------------------------------

    def _transaction(
        self, write: Callable[[sqlite3.Connection], _Change | None], *, stored: Manifest | None = None
    ) -> None:
        """Run `write` in one SQLite transaction and bring the in-memory indexes to its result.

        Refused with IndexModelMismatch, before anything is written, when the index on disk no longer
        holds vectors of `stored` (default: this store's manifest), i.e. another process re-embedded it
        with another model: vectors of two models must never be stored or searched together."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            self._check_manifest(db, stored or self.manifest, writing=True)
            change = write(db)
            previous = int(_read_meta(db, "generation") or 0)
            _write_meta(db, "generation", str(previous + 1))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if change is not None and previous == self._generation:
            # What is in memory was current: apply just this change instead of reloading everything.
            self._apply(change)
            self._generation = previous + 1
            self._save_vectors(self._generation)
        else:
            self._load_vectors()

    def _check_manifest(self, db: sqlite3.Connection, expected: Manifest, *, writing: bool) -> None:
        """IndexModelMismatch if the stored manifest names another model or dimension than `expected`."""
        found = Manifest.model_validate_json(_read_meta(db, "manifest") or expected.model_dump_json())
        if (found.model, found.dimension) == (expected.model, expected.dimension):
            return
        action = "No document was written or deleted" if writing else "Nothing was searched"
        raise IndexModelMismatch(
            f"The index in {self.directory} was re-embedded by another process with model {found.model!r} "
            f"(dimension {found.dimension}) while this one runs with {expected.model!r} (dimension "
            f"{expected.dimension}). {action}, so that vectors of two models are never mixed. Restart "
            f"CiteQA with CITEQA_EMBEDDING_MODEL={found.model!r} to use the index as it is now, or run "
            f"`citeqa reindex` with {expected.model!r} to re-embed it back."
        )

    def _apply(self, change: _Change) -> None:
        for kind, index in self._vectors.items():
            if change.removed[kind]:
                index.remove_ids(np.array(change.removed[kind], dtype=np.int64))
            if change.added_ids[kind]:
                index.add_with_ids(
                    np.concatenate(change.added_vectors[kind]).astype(np.float32),
                    np.array(change.added_ids[kind], dtype=np.int64),
                )
        for chunk_id in change.removed["chunks"]:
            self._chunk_terms.pop(chunk_id, None)
        for sentence_id in change.removed["sentences"]:
            self._sentence_chunk.pop(sentence_id, None)
        self._chunk_terms.update(change.added_terms)
        self._sentence_chunk.update(change.added_sentence_chunk)
        self._lexical = None
        self._sentence_table = None

    def _sentence_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Sentence ids (sorted) and the chunk each belongs to, as aligned arrays."""
        if self._sentence_table is None:
            ids = np.array(sorted(self._sentence_chunk), dtype=np.int64)
            chunks = np.array([self._sentence_chunk[int(i)] for i in ids], dtype=np.int64)
            self._sentence_table = (ids, chunks)
        return self._sentence_table

    def _lexical_index(self) -> LexicalIndex:
        if self._lexical is None:
            ids = sorted(self._chunk_terms)
            self._lexical = LexicalIndex(np.array(ids, dtype=np.int64), [self._chunk_terms[i] for i in ids])
        return self._lexical

    def _nearest(
        self, kind: str, query: np.ndarray, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        index = self._vectors[kind]
        k = min(index.ntotal, MAX_SCORED[kind], index.ntotal if allowed is None else len(allowed))
        if k == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        params = None if allowed is None else faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
        scores, ids = index.search(query, k, params=params)
        found = ids[0] >= 0
        return ids[0][found], scores[0][found]

    def _new_vector_index(self) -> faiss.IndexIDMap2:
        # Exact inner product: on normalised vectors it is cosine similarity, with no recall lost
        # to approximation at the sizes a report collection reaches.
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.manifest.dimension))

    def _load_vectors(self) -> None:
        """Bring the in-memory indexes to what SQLite holds now (within a snapshot: to its generation)."""
        generation = int(_read_meta(self._db, "generation") or 0)
        self._chunk_terms = {
            row["id"]: json.loads(row["terms"]) for row in self._db.execute("SELECT id, terms FROM chunks")
        }
        self._sentence_chunk = {
            row["id"]: row["chunk_id"] for row in self._db.execute("SELECT id, chunk_id FROM sentences")
        }
        self._lexical = None
        self._sentence_table = None
        try:
            tag = json.loads((self.directory / VECTORS_TAG_FILE).read_text())
        except (OSError, ValueError):
            tag = {}
        if tag.get("generation") == generation and all(
            (self.directory / name).exists() for name in VECTOR_FILES.values()
        ):
            loaded = {
                kind: faiss.read_index(str(self.directory / name)) for kind, name in VECTOR_FILES.items()
            }
            # The tag is only a hint: another process may be replacing the files while they are read, or
            # a reader's rebuild may have interleaved with a writer's save. The files are used only if
            # they hold exactly the ids of the rows read (ids are never reused: same ids, same vectors).
            expected = {"chunks": self._chunk_terms, "sentences": self._sentence_chunk}
            if all(
                index.d == self.manifest.dimension and _holds_exactly(index, expected[kind])
                for kind, index in loaded.items()
            ):
                self._vectors, self._generation = loaded, generation
                return
        self._rebuild_vectors(generation)

    def _rebuild_vectors(self, generation: int) -> None:
        for kind in VECTOR_FILES:
            rows = self._db.execute(f"SELECT id, vector FROM {kind} ORDER BY id").fetchall()
            index = self._new_vector_index()
            if rows:
                ids = np.array([row["id"] for row in rows], dtype=np.int64)
                index.add_with_ids(_vectors_from_rows(rows, self.manifest.dimension), ids)
            self._vectors[kind] = index
        self._generation = generation
        self._save_vectors(generation)
        logger.debug(
            "Rebuilt FAISS indexes: %d chunks, %d sentences (generation %d)",
            self._vectors["chunks"].ntotal,
            self._vectors["sentences"].ntotal,
            generation,
        )

    def _save_vectors(self, generation: int) -> None:
        # Temporary names of their own: a reader rebuilding the files may save while a writer does.
        unique = f"{os.getpid()}.{threading.get_ident()}"
        for kind, name in VECTOR_FILES.items():
            temporary = self.directory / f".{name}.{unique}.tmp"
            faiss.write_index(self._vectors[kind], str(temporary))
            _fsync(temporary)
            os.replace(temporary, self.directory / name)
        tag_tmp = self.directory / f".{VECTORS_TAG_FILE}.{unique}.tmp"
        tag_tmp.write_text(json.dumps({"generation": generation}))
        _fsync(tag_tmp)
        os.replace(tag_tmp, self.directory / VECTORS_TAG_FILE)

    def _chunk_ids_matching(self, sections: Sequence[str], doc_ids: Sequence[str]) -> np.ndarray:
        clauses, params = [], []
        if sections:
            clauses.append(f"d.section IN ({','.join('?' * len(sections))})")
            params.extend(sections)
        if doc_ids:
            clauses.append(f"d.doc_id IN ({','.join('?' * len(doc_ids))})")
            params.extend(doc_ids)
        rows = self._db.execute(
            "SELECT c.id FROM chunks c JOIN documents d ON d.doc_id = c.doc_id WHERE "
            + " AND ".join(clauses),
            params,
        ).fetchall()
        return np.array([row["id"] for row in rows], dtype=np.int64)

    def _chunk_records(self, chunk_ids: list[int]) -> dict[int, sqlite3.Row]:
        if not chunk_ids:
            return {}
        rows = self._db.execute(
            "SELECT c.id, c.doc_id, c.chunk_index, c.text, c.char_start, c.char_end, c.page, "
            "d.title, d.section, d.source FROM chunks c JOIN documents d ON d.doc_id = c.doc_id "
            f"WHERE c.id IN ({','.join('?' * len(chunk_ids))})",
            chunk_ids,
        ).fetchall()
        return {row["id"]: row for row in rows}


@dataclass
class _Change:
    """What a transaction removed and added, to update the in-memory indexes without a reload."""

    removed: dict[str, list[int]] = field(default_factory=lambda: {kind: [] for kind in VECTOR_FILES})
    added_ids: dict[str, list[int]] = field(default_factory=lambda: {kind: [] for kind in VECTOR_FILES})
    added_vectors: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {kind: [] for kind in VECTOR_FILES}
    )
    added_terms: dict[int, list[str]] = field(default_factory=dict)
    added_sentence_chunk: dict[int, int] = field(default_factory=dict)

    def remove_document(self, db: sqlite3.Connection, doc_id: str) -> None:
        """Delete a document's chunks (their sentences cascade), noting the ids removed."""
        self.removed["chunks"].extend(
            row[0] for row in db.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))
        )
        self.removed["sentences"].extend(
            row[0]
            for row in db.execute(
                "SELECT s.id FROM sentences s JOIN chunks c ON c.id = s.chunk_id WHERE c.doc_id = ?",
                (doc_id,),
            )
        )
        db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))

    def add(self, kind: str, ids: list[int], vectors: np.ndarray) -> None:
        if ids:
            self.added_ids[kind].extend(ids)
            self.added_vectors[kind].append(np.asarray(vectors, dtype=np.float32))


def _chunk_hit(row: sqlite3.Row, score: float) -> ChunkHit:
    return ChunkHit(
        chunk_id=row["id"],
        score=score,
        chunk=Chunk(
            doc_id=row["doc_id"],
            chunk_index=row["chunk_index"],
            text=row["text"],
            char_start=row["char_start"],
            char_end=row["char_end"],
            page=row["page"],
        ),
        title=row["title"],
        section=row["section"],
        source=row["source"],
    )


def _stored_document(row: sqlite3.Row) -> StoredDocument:
    return StoredDocument(
        document=Document(
            doc_id=row["doc_id"],
            title=row["title"],
            text=row["text"],
            source=row["source"],
            section=row["section"],
            date=row["date"],
            url=row["url"],
            page_map=[PageStart(**entry) for entry in json.loads(row["page_map"])],
        ),
        content_hash=row["content_hash"],
    )


def _first_page(page_map_json: str) -> int | None:
    entries = json.loads(page_map_json)
    return entries[0]["page"] if entries else None


def _holds_exactly(index: faiss.IndexIDMap2, ids: Collection[int]) -> bool:
    """Whether a FAISS index holds the vectors of exactly these ids."""
    held = faiss.vector_to_array(index.id_map)
    return held.size == len(ids) and bool(
        np.array_equal(np.sort(held), np.array(sorted(ids), dtype=held.dtype))
    )


def _vectors_from_rows(rows: Sequence[sqlite3.Row], dimension: int) -> np.ndarray:
    if not rows:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.frombuffer(b"".join(row["vector"] for row in rows), dtype=np.float32).reshape(-1, dimension)


def _read_meta(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def _write_meta(db: sqlite3.Connection, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
        (key, value, value),
    )


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def _file_lock(path: Path, timeout_s: float) -> Iterator[None]:
    with open(path, "a") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexLocked(
                        f"Another process is writing to the index in {path.parent}. "
                        "Wait for it to finish (e.g. a running `citeqa ingest`) and try again."
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
