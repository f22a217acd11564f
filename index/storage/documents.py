"""The document store of a local index: documents, chunks and sentences in SQLite, the source of truth.

Everything else of an index is derived from these rows and may lag behind them: each chunk's and
sentence's vector is stored here too (in tables of their own, `chunk_vectors` and `sentence_vectors`, so
that reading a chunk's sentences does not read their 1.5 kB vectors), and the vector indexes
(`index.storage.vectors`) can always be rebuilt or caught up from here. The keyword index (`index.storage.keywords`) keeps its tables in the same
database and is written in the same transactions.

A write is one transaction (`writing()`) that bumps a generation counter and logs which chunk and
sentence ids it removed (`vector_log`); ids are never reused (AUTOINCREMENT), so a process holding
vectors of an older generation in memory catches up from the log and the rows with higher ids
(`removed_since`, `vectors_after`) instead of reloading everything. A process killed mid-write leaves
the previous generation: SQLite rolls the journal back on the next open.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from citeqa.errors import DocumentNotFound, IndexLocked
from index.chunking import Chunk, SentenceSpan, chunk_terms
from index.documents import Document, PageStart
from index.storage import keywords

DATABASE_FILE = "citeqa.sqlite3"
LOCK_FILE = "write.lock"
UNIT_KINDS = ("chunks", "sentences")
"""The rows that carry a vector: each kind has a vector index of its own."""
# Rows read per statement when vectors are loaded in bulk: bounds the memory of a rebuild's reads.
_READ_BATCH = 65_536
# Values per `IN (...)` list: well under SQLite's limit on bound parameters.
_IN_BATCH = 500

SCHEMA = """
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
-- A write appends after the last position: looked up, not scanned, however many documents there are.
CREATE INDEX IF NOT EXISTS documents_position ON documents(position);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    chunk_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    page INTEGER,
    -- A chunk's sentences have consecutive ids (`put` inserts them chunk by chunk): their range, so that
    -- the sentences of many chunks are found from the chunk rows alone.
    first_sentence INTEGER NOT NULL DEFAULT 0,
    sentences INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS sentences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    page INTEGER
);
CREATE INDEX IF NOT EXISTS sentences_chunk ON sentences(chunk_id);
CREATE TABLE IF NOT EXISTS chunk_vectors (
    id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
    vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sentence_vectors (
    id INTEGER PRIMARY KEY REFERENCES sentences(id) ON DELETE CASCADE,
    vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS vector_log (
    generation INTEGER PRIMARY KEY,
    reset INTEGER NOT NULL,
    removed_chunks BLOB NOT NULL,
    removed_sentences BLOB NOT NULL
);
"""


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
    """A chunk found by a search, with what a citation needs."""

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
class SentenceRows:
    """Sentences as aligned arrays: ids (ascending), their chunks, (char_start, char_end) in the document."""

    ids: np.ndarray
    chunk_ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


@dataclass
class Write:
    """What one write transaction changed: the store applies it to the indexes it keeps in memory."""

    generation: int
    """The generation the write makes (the previous one plus one)."""
    added_ids: dict[str, list[np.ndarray]] = field(default_factory=lambda: {kind: [] for kind in UNIT_KINDS})
    added_vectors: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {kind: [] for kind in UNIT_KINDS}
    )
    removed: dict[str, list[int]] = field(default_factory=lambda: {kind: [] for kind in UNIT_KINDS})
    reset: bool = False
    """Every chunk was removed first (a reindex): the log holds no ids, readers reload everything."""

    def added(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """The ids and vectors this write added, of one kind."""
        if not self.added_ids[kind]:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(self.added_ids[kind]), np.concatenate(self.added_vectors[kind])


class DocumentStore:
    """The SQLite database of one index folder. Not thread-safe: the index store serialises its calls."""

    def __init__(self, directory: Path, connection: sqlite3.Connection) -> None:
        self.directory = directory
        self.connection = connection
        """Autocommit mode; also the keyword index's connection."""

    @classmethod
    def open(cls, directory: Path) -> DocumentStore:
        """Open (or create) the database in `directory`, with every table of the index."""
        directory.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(directory / DATABASE_FILE, check_same_thread=False, isolation_level=None)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA busy_timeout = 10000")
        connection.executescript(SCHEMA)
        connection.executescript(keywords.SCHEMA)
        return cls(directory, connection)

    def close(self) -> None:
        self.connection.close()

    # -- transactions ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """A read transaction: every read inside sees one commit (in WAL mode, fixed by its first read).
        Joins the transaction already open, if any."""
        db = self.connection
        if db.in_transaction:
            yield
            return
        db.execute("BEGIN")
        try:
            yield
        finally:
            db.execute("COMMIT")

    @contextlib.contextmanager
    def writing(self) -> Iterator[Write]:
        """A write transaction: all of it lands, with the next generation and its log entry, or nothing."""
        db = self.connection
        db.execute("BEGIN IMMEDIATE")
        try:
            write = Write(generation=self.generation() + 1)
            yield write
            db.execute(
                "INSERT INTO vector_log VALUES (?, ?, ?, ?)",
                (
                    write.generation,
                    int(write.reset),
                    np.asarray(write.removed["chunks"], dtype="<i8").tobytes(),
                    np.asarray(write.removed["sentences"], dtype="<i8").tobytes(),
                ),
            )
            self.write_meta("generation", str(write.generation))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def file_lock(self, timeout_s: float) -> Iterator[None]:
        """The folder's write lock, across processes: IndexLocked after `timeout_s` (0: try once)."""
        path = self.directory / LOCK_FILE
        with open(path, "a") as handle:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise IndexLocked(
                            f"Another process is writing to the index in {self.directory}. "
                            "Wait for it to finish (e.g. a running `citeqa ingest`) and try again."
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- meta --------------------------------------------------------------------------------------

    def read_meta(self, key: str) -> str | None:
        row = self.connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def write_meta(self, key: str, value: str) -> None:
        self.connection.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
            (key, value, value),
        )

    def generation(self) -> int:
        """How many writes the index has had: what a reader compares to know whether it is current."""
        return int(self.read_meta("generation") or 0)

    # -- documents ---------------------------------------------------------------------------------

    def counts(self) -> tuple[int, int]:
        """(documents, chunks)."""
        documents = self.connection.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        return documents, self.count("chunks")

    def count(self, kind: str) -> int:
        """Rows of one kind (chunks or sentences)."""
        return self.connection.execute(f"SELECT COUNT(*) FROM {_table(kind)}").fetchone()[0]

    def list_documents(self) -> list[DocumentSummary]:
        rows = self.connection.execute(
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
        rows = self.connection.execute(
            "SELECT section FROM documents WHERE section IS NOT NULL GROUP BY section ORDER BY MIN(position)"
        ).fetchall()
        return [row["section"] for row in rows]

    def find_document(self, doc_id: str) -> StoredDocument | None:
        row = self.connection.execute("SELECT * FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        return None if row is None else _stored_document(row)

    def documents(self) -> list[StoredDocument]:
        """Every document, in the order they were first added."""
        rows = self.connection.execute("SELECT * FROM documents ORDER BY position").fetchall()
        return [_stored_document(row) for row in rows]

    def chunk_count(self, doc_id: str) -> int:
        return self.connection.execute("SELECT COUNT(*) FROM chunks WHERE doc_id = ?", (doc_id,)).fetchone()[
            0
        ]

    # -- chunks and sentences ------------------------------------------------------------------------

    def chunk_ids_matching(self, sections: Sequence[str], doc_ids: Sequence[str]) -> np.ndarray:
        """Ids (ascending) of the chunks of documents in any of `sections` and any of `doc_ids` (an empty
        list: no restriction by it)."""
        clauses, params = [], []
        # One JSON parameter per list: SQLite caps bound parameters (32,766), not the length of a value.
        if sections:
            clauses.append("d.section IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(sections)))
        if doc_ids:
            clauses.append("d.doc_id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(doc_ids)))
        rows = self.connection.execute(
            "SELECT c.id FROM chunks c JOIN documents d ON d.doc_id = c.doc_id"
            + (" WHERE " + " AND ".join(clauses) if clauses else "")
            + " ORDER BY c.id",
            params,
        ).fetchall()
        return np.array([row[0] for row in rows], dtype=np.int64)

    def chunk_hits(self, chunk_ids: Sequence[int], scores: Sequence[float]) -> list[ChunkHit]:
        """The chunks with what a citation needs, in the order given (KeyError for an id not stored)."""
        wanted = [int(chunk_id) for chunk_id in chunk_ids]
        rows = {
            row["id"]: row
            for row in self._rows_in(
                "SELECT c.id, c.doc_id, c.chunk_index, c.text, c.char_start, c.char_end, c.page, "
                "d.title, d.section, d.source FROM chunks c JOIN documents d ON d.doc_id = c.doc_id "
                "WHERE c.id IN ({})",
                wanted,
            )
        }
        return [
            chunk_hit(rows[chunk_id], float(score)) for chunk_id, score in zip(wanted, scores, strict=True)
        ]

    def indexed_document(self, stored: StoredDocument) -> IndexedDocument:
        """A stored document as it was written (its chunks and sentences with their vectors), so that it can be
        copied to another backend without being embedded again."""
        document = stored.document
        rows = self.connection.execute(
            "SELECT id, chunk_index, text, char_start, char_end, page FROM chunks WHERE doc_id = ? ORDER BY id",
            (document.doc_id,),
        ).fetchall()
        chunks = [
            Chunk(
                doc_id=document.doc_id,
                chunk_index=row["chunk_index"],
                text=row["text"],
                char_start=row["char_start"],
                char_end=row["char_end"],
                page=row["page"],
            )
            for row in rows
        ]
        chunk_ids = [row["id"] for row in rows]
        index_of = {row["id"]: row["chunk_index"] for row in rows}
        sentences = self.sentences_of_chunks(chunk_ids)
        order = np.argsort(sentences.ids)
        # Both read in ascending id order, so vectors line up with their rows.
        _, chunk_vectors = self.vectors_of("chunks", chunk_ids)
        _, sentence_vectors = self.vectors_of("sentences", sentences.ids[order].tolist())
        return IndexedDocument(
            document=document,
            content_hash=stored.content_hash,
            chunks=chunks,
            chunk_vectors=chunk_vectors,
            chunk_terms=[chunk_terms(document, chunk) for chunk in chunks],
            sentences=[
                SentenceSpan(chunk_index=index_of[int(chunk_id)], char_start=int(start), char_end=int(end))
                for chunk_id, start, end in zip(
                    sentences.chunk_ids[order], sentences.starts[order], sentences.ends[order], strict=True
                )
            ],
            sentence_vectors=sentence_vectors,
        )

    def sentence_ids_of_chunks(self, chunk_ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids ascending, their chunk ids) of the sentences of some chunks, from each chunk's range of
        sentence ids: one row per chunk read, not one per sentence."""
        table = np.array(
            self._rows_in(
                "SELECT id, first_sentence, sentences FROM chunks WHERE id IN ({})",
                [int(chunk_id) for chunk_id in chunk_ids],
                plain=True,
            ),
            dtype=np.int64,
        ).reshape(-1, 3)
        counts = table[:, 2]
        offsets = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        ids = np.repeat(table[:, 1], counts) + offsets
        chunks = np.repeat(table[:, 0], counts)
        order = np.argsort(ids, kind="stable")
        return ids[order], chunks[order]

    def sentences_of_chunks(self, chunk_ids: Sequence[int]) -> SentenceRows:
        """The sentences of some chunks, with their spans."""
        return _sentence_rows(
            self._rows_in(
                "SELECT id, chunk_id, char_start, char_end FROM sentences WHERE chunk_id IN ({})",
                [int(chunk_id) for chunk_id in chunk_ids],
                plain=True,
            )
        )

    def sentences(self, sentence_ids: Sequence[int]) -> SentenceRows:
        """Some sentences by id (ids not stored are left out)."""
        return _sentence_rows(
            self._rows_in(
                "SELECT id, chunk_id, char_start, char_end FROM sentences WHERE id IN ({})",
                [int(sentence_id) for sentence_id in sentence_ids],
                plain=True,
            )
        )

    def sentence_spans(self, sentence_ids: Sequence[int]) -> dict[int, tuple[int, int, int | None]]:
        """(char_start, char_end, page) of some sentences in their documents, by id."""
        rows = self._rows_in(
            "SELECT id, char_start, char_end, page FROM sentences WHERE id IN ({})",
            [int(sentence_id) for sentence_id in sentence_ids],
        )
        return {row["id"]: (row["char_start"], row["char_end"], row["page"]) for row in rows}

    def ids(self, kind: str) -> np.ndarray:
        """Every id of one kind, ascending."""
        rows = self.connection.execute(f"SELECT id FROM {_table(kind)} ORDER BY id")
        return np.fromiter((row[0] for row in rows), dtype=np.int64)

    def vectors_after(self, kind: str, after_id: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The (ids, vectors) of the rows of one kind with ids above `after_id`, in batches, ascending."""
        while True:
            rows = self.connection.execute(
                f"SELECT id, vector FROM {_vector_table(kind)} WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, _READ_BATCH),
            ).fetchall()
            if not rows:
                return
            yield _ids_and_vectors(rows)
            after_id = rows[-1][0]

    def vectors_of(self, kind: str, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The (ids, vectors) of some rows of one kind, ascending (ids not stored are left out)."""
        rows = self._rows_in(
            f"SELECT id, vector FROM {_vector_table(kind)} WHERE id IN ({{}})", [int(i) for i in ids]
        )
        rows.sort(key=lambda row: row[0])
        return _ids_and_vectors(rows)

    def removed_since(self, generation: int) -> dict[str, np.ndarray] | None:
        """The ids of each kind removed by the writes after `generation`, or None when the log cannot
        tell: it was pruned past that generation, or a write since removed everything (a reindex)."""
        current = self.generation()
        rows = self.connection.execute(
            "SELECT reset, removed_chunks, removed_sentences FROM vector_log WHERE generation > ?",
            (generation,),
        ).fetchall()
        if len(rows) != current - generation or any(row["reset"] for row in rows):
            return None
        return {
            kind: np.concatenate(
                [np.zeros(0, dtype=np.int64)] + [np.frombuffer(row[column], dtype="<i8") for row in rows]
            )
            for kind, column in (("chunks", "removed_chunks"), ("sentences", "removed_sentences"))
        }

    # -- writing: inside `writing()` -----------------------------------------------------------------

    def put(self, write: Write, items: Sequence[IndexedDocument]) -> list[list[int]]:
        """Add or replace documents with their chunks and sentences; returns each item's new chunk ids."""
        db = self.connection
        next_position = db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM documents").fetchone()[0]
        added_chunks = []
        for item in items:
            document = item.document
            old = db.execute("SELECT position FROM documents WHERE doc_id = ?", (document.doc_id,)).fetchone()
            position = old["position"] if old else next_position
            next_position += 0 if old else 1
            self._remove_chunks(write, document.doc_id)
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
            chunk_ids = [
                db.execute(
                    "INSERT INTO chunks (doc_id, chunk_index, text, char_start, char_end, page) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        chunk.doc_id,
                        chunk.chunk_index,
                        chunk.text,
                        chunk.char_start,
                        chunk.char_end,
                        chunk.page,
                    ),
                ).lastrowid
                for chunk in item.chunks
            ]
            # Chunk by chunk, so that each chunk's sentences get consecutive ids (its range, below).
            order = sorted(range(len(item.sentences)), key=lambda i: item.sentences[i].chunk_index)
            inserted: dict[int, int] = {}
            ranges: dict[int, list[int]] = {}
            for i in order:
                span = item.sentences[i]
                inserted[i] = db.execute(
                    "INSERT INTO sentences (chunk_id, char_start, char_end, page) VALUES (?, ?, ?, ?)",
                    (
                        chunk_ids[span.chunk_index],
                        span.char_start,
                        span.char_end,
                        document.page_at(span.char_start),
                    ),
                ).lastrowid
                ranges.setdefault(chunk_ids[span.chunk_index], []).append(inserted[i])
            sentence_ids = [inserted[i] for i in range(len(item.sentences))]
            db.executemany(
                "UPDATE chunks SET first_sentence = ?, sentences = ? WHERE id = ?",
                [(ids[0], len(ids), chunk_id) for chunk_id, ids in ranges.items()],
            )
            for kind, ids, vectors in (
                ("chunks", chunk_ids, item.chunk_vectors),
                ("sentences", sentence_ids, item.sentence_vectors),
            ):
                db.executemany(
                    f"INSERT INTO {_vector_table(kind)} (id, vector) VALUES (?, ?)",
                    [
                        (row_id, np.asarray(vector, dtype=np.float32).tobytes())
                        for row_id, vector in zip(ids, vectors, strict=True)
                    ],
                )
                if ids:
                    write.added_ids[kind].append(np.array(ids, dtype=np.int64))
                    write.added_vectors[kind].append(np.asarray(vectors, dtype=np.float32))
            added_chunks.append(chunk_ids)
        return added_chunks

    def remove(self, write: Write, doc_id: str) -> list[int]:
        """Remove a document with its chunks and sentences (DocumentNotFound if there is none); returns
        the ids of the chunks removed."""
        if self.connection.execute("SELECT 1 FROM documents WHERE doc_id = ?", (doc_id,)).fetchone() is None:
            raise missing_document(doc_id)
        removed = self._remove_chunks(write, doc_id)
        self.connection.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
        return removed

    def remove_every_chunk(self, write: Write) -> None:
        """Remove every chunk and sentence, keeping the documents (a reindex stores new ones)."""
        self.connection.execute("DELETE FROM chunks")
        write.reset = True

    def prune_log(self, up_to: int) -> None:
        """Forget the log entries of generations up to `up_to`: what every saved vector file holds."""
        self.connection.execute("DELETE FROM vector_log WHERE generation <= ?", (up_to,))

    def _remove_chunks(self, write: Write, doc_id: str) -> list[int]:
        db = self.connection
        chunk_ids = [row[0] for row in db.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
        write.removed["chunks"].extend(chunk_ids)
        write.removed["sentences"].extend(
            row[0]
            for row in db.execute(
                "SELECT s.id FROM sentences s JOIN chunks c ON c.id = s.chunk_id WHERE c.doc_id = ?",
                (doc_id,),
            )
        )
        db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))  # sentences cascade
        return chunk_ids

    def _rows_in(self, sql: str, values: Sequence[object], *, plain: bool = False) -> list[Any]:
        """`sql` with its `IN ({})` list filled with `values`, run in batches; `plain`: rows as tuples,
        several times faster to turn into arrays than sqlite3.Row."""
        cursor = self.connection.cursor()
        if plain:
            cursor.row_factory = None
        rows: list[Any] = []
        for start in range(0, len(values), _IN_BATCH):
            batch = values[start : start + _IN_BATCH]
            rows.extend(cursor.execute(sql.format(",".join("?" * len(batch))), batch).fetchall())
        return rows


def _table(kind: str) -> str:
    if kind not in UNIT_KINDS:
        raise ValueError(f"Unknown kind of unit {kind!r}; expected one of {UNIT_KINDS}")
    return kind


def _vector_table(kind: str) -> str:
    """The table of one kind's vectors: `chunk_vectors` or `sentence_vectors`."""
    return f"{_table(kind)[:-1]}_vectors"


def _sentence_rows(rows: list[tuple[int, int, int, int]]) -> SentenceRows:
    """Rows of (id, chunk_id, char_start, char_end), sorted by id, as arrays."""
    table = np.array(rows, dtype=np.int64).reshape(-1, 4)
    table = table[np.argsort(table[:, 0], kind="stable")]
    return SentenceRows(*(np.ascontiguousarray(table[:, column]) for column in range(4)))


def _ids_and_vectors(rows: Sequence[sqlite3.Row]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    if not rows:
        return ids, np.zeros((0, 0), dtype=np.float32)
    vectors = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32).reshape(len(rows), -1)
    return ids, vectors


def missing_document(doc_id: str) -> DocumentNotFound:
    """The error for a document id that names no stored document, whichever backend stores them."""
    return DocumentNotFound(f"No document with id {doc_id!r}. List the ids with GET /v1/documents.")


def chunk_hit(row: Mapping[str, Any], score: float) -> ChunkHit:
    """A hit from a chunk's row joined with its document's: id, doc_id, chunk_index, text, char_start,
    char_end, page (None: unknown), title, section and source."""
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
