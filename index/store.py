"""The index on disk: documents and chunks in SQLite, their vectors in FAISS, kept in step.

SQLite is the source of truth: every write is one transaction that also stores each chunk's
vector and bumps a generation counter, so a process killed mid-write leaves the previous
state (SQLite rolls the journal back on the next open). The FAISS file is a cache of those
vectors, written to a temporary file and renamed into place after each commit and tagged with
its generation; when the tags disagree (a crash between the commit and the rename) the FAISS
index is rebuilt from the stored vectors.
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from pydantic import BaseModel

from index.chunking import Chunk, ChunkingSettings
from index.documents import Document, PageStart
from index.errors import DocumentNotFound, IndexLocked, IndexModelMismatch

logger = logging.getLogger(__name__)

DATABASE_FILE = "citeqa.sqlite3"
VECTORS_FILE = "vectors.faiss"
VECTORS_TAG_FILE = "vectors.json"
LOCK_FILE = "write.lock"
FORMAT_VERSION = 1

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
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
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


class IndexStore:
    """Documents, chunks and vectors of one index folder. Open with `IndexStore.open`."""

    def __init__(self, directory: Path, connection: sqlite3.Connection, manifest: Manifest) -> None:
        self.directory = directory
        self.manifest = manifest
        self._db = connection
        self._lock = threading.RLock()
        self._vectors = self._new_vector_index()
        self._generation = -1
        self._load_vectors()

    @classmethod
    def open(cls, directory: Path, manifest: Manifest, *, rebuild: bool = False) -> IndexStore:
        """Open (or create) the index in `directory` for vectors described by `manifest`.

        An index built with another model or dimension is refused unless `rebuild` is set: the
        caller then re-embeds every stored document (`citeqa reindex`), which rewrites the manifest.
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
        return cls(directory, connection, manifest)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- reading ---------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return int(_read_meta(self._db, "generation") or 0)

    def counts(self) -> tuple[int, int]:
        """(documents, chunks) in the index."""
        with self._lock:
            documents = self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            chunks = self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return documents, chunks

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

    def search(
        self,
        vectors: np.ndarray,
        k: int,
        *,
        sections: Sequence[str] = (),
        doc_ids: Sequence[str] = (),
    ) -> list[list[ChunkHit]]:
        """The `k` nearest chunks (inner product) for each row of `vectors`, optionally filtered."""
        self.refresh()
        with self._lock:
            params = None
            if sections or doc_ids:
                allowed = self._chunk_ids_matching(sections, doc_ids)
                if allowed.size == 0:
                    return [[] for _ in range(len(vectors))]
                params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
            k = min(k, self._vectors.ntotal)
            if k == 0:
                return [[] for _ in range(len(vectors))]
            scores, ids = self._vectors.search(
                np.ascontiguousarray(vectors, dtype=np.float32), k, params=params
            )
            found = [int(i) for i in ids.ravel() if i >= 0]
            records = self._chunk_records(found)
        return [
            [
                _chunk_hit(records[int(i)], float(s))
                for s, i in zip(row_scores, row_ids, strict=True)
                if i >= 0
            ]
            for row_scores, row_ids in zip(scores, ids, strict=True)
        ]

    def chunk_vectors(self, doc_id: str) -> np.ndarray:
        """The stored vectors of one document's chunks, in chunk order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT vector FROM chunks WHERE doc_id = ? ORDER BY chunk_index", (doc_id,)
            ).fetchall()
        return _vectors_from_rows(rows, self.manifest.dimension)

    # -- writing ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def writer(self, timeout_s: float = 30.0) -> Iterator[None]:
        """Hold the index's write lock: one writer at a time, across threads and processes."""
        with self._lock, _file_lock(self.directory / LOCK_FILE, timeout_s):
            yield

    def upsert(
        self, document: Document, content_hash: str, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> None:
        """Add a document with its chunks and their vectors, replacing any document with its id."""
        self.upsert_many([(document, content_hash, chunks, vectors)])

    def upsert_many(self, items: Sequence[tuple[Document, str, Sequence[Chunk], np.ndarray]]) -> None:
        """Add or replace several documents in one transaction: all of them land, or none does."""
        self._check_vectors(items, self.manifest.dimension)
        with self.writer():
            self._transaction(lambda db: self._write_documents(db, items, self.manifest.dimension))

    def replace_all(
        self, manifest: Manifest, items: Sequence[tuple[Document, str, Sequence[Chunk], np.ndarray]]
    ) -> None:
        """Swap every chunk and vector for new ones (another model or chunking) in one transaction."""
        self._check_vectors(items, manifest.dimension)
        with self.writer():

            def write(db: sqlite3.Connection) -> None:
                _write_meta(db, "manifest", manifest.model_dump_json())
                db.execute("DELETE FROM chunks")
                self._write_documents(db, items, manifest.dimension)

            previous, self.manifest = self.manifest, manifest
            try:
                self._transaction(write)
            except BaseException:
                self.manifest = previous
                raise

    @staticmethod
    def _check_vectors(
        items: Sequence[tuple[Document, str, Sequence[Chunk], np.ndarray]], dimension: int
    ) -> None:
        for document, _, chunks, vectors in items:
            if len(chunks) != len(vectors):
                raise ValueError(f"{document.doc_id}: {len(chunks)} chunks but {len(vectors)} vectors.")
            if len(vectors) and vectors.shape[1] != dimension:
                raise ValueError(
                    f"{document.doc_id}: vectors have dimension {vectors.shape[1]}; "
                    f"the index holds {dimension}."
                )

    @staticmethod
    def _write_documents(
        db: sqlite3.Connection,
        items: Sequence[tuple[Document, str, Sequence[Chunk], np.ndarray]],
        dimension: int,
    ) -> _VectorChange:
        change = _VectorChange()
        next_position = db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM documents").fetchone()[0]
        for document, content_hash, chunks, vectors in items:
            old = db.execute("SELECT position FROM documents WHERE doc_id = ?", (document.doc_id,)).fetchone()
            position = old["position"] if old else next_position
            next_position += 0 if old else 1
            change.removed.extend(_chunk_ids_of(db, document.doc_id))
            db.execute("DELETE FROM chunks WHERE doc_id = ?", (document.doc_id,))
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
                    content_hash,
                    position,
                ),
            )
            db.executemany(
                "INSERT INTO chunks (doc_id, chunk_index, text, char_start, char_end, page, vector) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        chunk.doc_id,
                        chunk.chunk_index,
                        chunk.text,
                        chunk.char_start,
                        chunk.char_end,
                        chunk.page,
                        np.asarray(vector, dtype=np.float32).tobytes(),
                    )
                    for chunk, vector in zip(chunks, vectors, strict=True)
                ],
            )
            change.added_ids.extend(_chunk_ids_of(db, document.doc_id))
            change.added_vectors.append(np.asarray(vectors, dtype=np.float32).reshape(-1, dimension))
        return change

    def delete(self, doc_id: str) -> None:
        """Remove a document, its chunks and their vectors."""
        with self.writer():

            def write(db: sqlite3.Connection) -> _VectorChange:
                if db.execute("SELECT 1 FROM documents WHERE doc_id = ?", (doc_id,)).fetchone() is None:
                    raise DocumentNotFound(
                        f"No document with id {doc_id!r}. List the ids with GET /v1/documents."
                    )
                change = _VectorChange(removed=_chunk_ids_of(db, doc_id))
                db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
                db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
                return change

            self._transaction(write)

    def refresh(self) -> None:
        """Reload the vectors if another process wrote to the index since they were loaded."""
        if self.generation != self._generation:
            with self._lock:
                self._load_vectors()

    # -- internals -------------------------------------------------------------------------------

    def _transaction(self, write: Callable[[sqlite3.Connection], _VectorChange | None]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            change = write(db)
            previous = int(_read_meta(db, "generation") or 0)
            _write_meta(db, "generation", str(previous + 1))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if change is not None and previous == self._generation:
            # The vectors in memory were current: apply just this change instead of reloading all.
            if change.removed:
                self._vectors.remove_ids(np.array(change.removed, dtype=np.int64))
            if change.added_ids:
                self._vectors.add_with_ids(
                    np.concatenate(change.added_vectors), np.array(change.added_ids, dtype=np.int64)
                )
            self._generation = previous + 1
            self._save_vectors(self._generation)
        else:
            self._load_vectors()

    def _new_vector_index(self) -> faiss.IndexIDMap2:
        # Exact inner product: on normalised vectors it is cosine similarity, with no recall lost
        # to approximation at the sizes a report collection reaches.
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.manifest.dimension))

    def _load_vectors(self) -> None:
        generation = self.generation
        tag_path = self.directory / VECTORS_TAG_FILE
        vectors_path = self.directory / VECTORS_FILE
        try:
            tag = json.loads(tag_path.read_text())
        except (OSError, ValueError):
            tag = {}
        if tag.get("generation") == generation and vectors_path.exists():
            index = faiss.read_index(str(vectors_path))
            if index.d == self.manifest.dimension:
                self._vectors, self._generation = index, generation
                return
        self._rebuild_vectors(generation)

    def _rebuild_vectors(self, generation: int) -> None:
        rows = self._db.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall()
        index = self._new_vector_index()
        if rows:
            ids = np.array([row["id"] for row in rows], dtype=np.int64)
            index.add_with_ids(_vectors_from_rows(rows, self.manifest.dimension), ids)
        self._vectors, self._generation = index, generation
        self._save_vectors(generation)
        logger.debug("Rebuilt FAISS index with %d vectors (generation %d)", index.ntotal, generation)

    def _save_vectors(self, generation: int) -> None:
        vectors_tmp = self.directory / f".{VECTORS_FILE}.tmp"
        tag_tmp = self.directory / f".{VECTORS_TAG_FILE}.tmp"
        faiss.write_index(self._vectors, str(vectors_tmp))
        _fsync(vectors_tmp)
        os.replace(vectors_tmp, self.directory / VECTORS_FILE)
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
class _VectorChange:
    removed: list[int] = field(default_factory=list)
    added_ids: list[int] = field(default_factory=list)
    added_vectors: list[np.ndarray] = field(default_factory=list)


def _chunk_ids_of(db: sqlite3.Connection, doc_id: str) -> list[int]:
    return [row[0] for row in db.execute("SELECT id FROM chunks WHERE doc_id = ? ORDER BY id", (doc_id,))]


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
