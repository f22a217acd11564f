"""Passage vectors remembered on disk: a text embedded once is not embedded again.

Ingesting a file again, reindexing with unchanged chunking, or adding a document that shares passages
with another spends the model only on texts it never saw: embedding is nearly all of an ingest's time
(docs/PERF.md, "Ingest"), a look-up is microseconds. A vector is keyed by the SHA-256 of the model (with
its variant, e.g. int8), the kind of vector and the text, so another model's vectors are never served.

The file is a cache, never the truth: SQLite commits each write whole (a process killed while writing
leaves the last commit), and a file that cannot be read is set aside with a warning and started again
empty; if even that fails, ingest goes on without it. Least recently used vectors go first past the size
bound.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from embeddings.protocol import SpanEncoder, WrappedEncoder

logger = logging.getLogger(__name__)

# Bytes a stored vector takes beyond its values (key, row and index overhead), for the size bound.
_ROW_OVERHEAD = 96
# Evicting down to this share of the bound leaves room, so that eviction runs once per many writes.
_EVICT_TO = 0.9
_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    key BLOB PRIMARY KEY,
    vector BLOB NOT NULL,
    used REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vectors_used ON vectors (used);
"""


def vector_key(model: str, kind: str, text: str) -> bytes:
    """The key of `text`'s vector of `kind` ("passage", "passage-sentence") by `model`."""
    return hashlib.sha256("\x1f".join((model, kind, text)).encode()).digest()


class VectorFile:
    """Vectors by key in one SQLite file, at most `max_mb` megabytes of them. Thread-safe; several
    processes may share the file (a write waits up to `busy_s` for another's, then is skipped)."""

    def __init__(self, path: Path, max_mb: float, busy_s: float = 10) -> None:
        if max_mb <= 0:
            raise ValueError(f"max_mb must be above 0, got {max_mb} (to cache nothing, use no VectorFile).")
        self.path = Path(path)
        self.max_bytes = max_mb * 2**20
        self.busy_s = busy_s
        self._lock = threading.Lock()
        # Opened at the first look-up: a process that never ingests (a search-only server) never creates it.
        self._db: sqlite3.Connection | None = None
        self._opened = False

    @property
    def usable(self) -> bool:
        """False once the file could neither be read nor started again: every look-up then misses."""
        with self._lock:
            return self._connection() is not None

    def get(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The stored vectors among `keys` (those found are marked as just used)."""
        found: dict[bytes, np.ndarray] = {}
        if not keys:
            return found
        with self._lock:
            if self._connection() is None:
                return found
            try:
                # SQLite's default limit on variables per statement is 32,766: ask in slices below it.
                for start in range(0, len(keys), 10_000):
                    part = keys[start : start + 10_000]
                    marks = ",".join("?" * len(part))
                    rows = self._db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", part)
                    found.update((key, np.frombuffer(vector, dtype=np.float32)) for key, vector in rows)
                if found:
                    with self._db:
                        self._db.executemany(
                            "UPDATE vectors SET used = ? WHERE key = ?", ((time.time(), k) for k in found)
                        )
            except sqlite3.Error as exc:
                self._failed("read", exc)
        return found

    def put(self, vectors: dict[bytes, np.ndarray]) -> None:
        """Store `vectors` (float32) in one transaction, then evict the least recently used past the bound."""
        if not vectors:
            return
        with self._lock:
            if self._connection() is None:
                return
            now = time.time()
            rows = [(key, np.asarray(v, dtype=np.float32).tobytes(), now) for key, v in vectors.items()]
            try:
                with self._db:
                    self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)
                    self._evict(len(rows[0][1]))
            except sqlite3.Error as exc:
                self._failed("write", exc)

    def __len__(self) -> int:
        with self._lock:
            if self._connection() is None:
                return 0
            return self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _connection(self) -> sqlite3.Connection | None:
        if not self._opened:
            self._opened = True
            self._db = self._open()
        return self._db

    def _evict(self, vector_bytes: int) -> None:
        most = int(self.max_bytes // (vector_bytes + _ROW_OVERHEAD))
        (count,) = self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()
        if count > most:
            self._db.execute(
                "DELETE FROM vectors WHERE key IN (SELECT key FROM vectors ORDER BY used LIMIT ?)",
                (count - int(most * _EVICT_TO),),
            )

    def _open(self) -> sqlite3.Connection | None:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            # Unreadable (a torn copy, another program's file): set aside for a look, and start again.
            aside = self.path.with_name(self.path.name + ".corrupt")
            logger.warning(
                "The embedding cache %s cannot be read (%s); it is moved to %s and a new one started. "
                "Nothing is lost but the time to embed those texts again.",
                self.path,
                exc,
                aside,
            )
            try:
                self.path.replace(aside)
                for suffix in ("-wal", "-shm"):
                    self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
                return self._connect()
            except (OSError, sqlite3.Error) as again:
                self._failed("start", again)
        except OSError as exc:
            self._failed("open", exc)
        return None

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=self.busy_s, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last commits, never corrupt the file.
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            db.execute("SELECT key, vector, used FROM vectors LIMIT 1").fetchall()
        except BaseException:
            db.close()
            raise
        # Autocommit off again: `with db:` then makes each put one transaction.
        db.isolation_level = ""
        return db

    def _failed(self, doing: str, exc: BaseException) -> None:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            # Another process held the file past `busy_s`: this call goes without, the next tries again.
            logger.warning("The embedding cache %s was busy; %s skipped this time.", self.path, doing)
            return
        logger.warning(
            "The embedding cache %s failed to %s (%s: %s); going on without it: texts are embedded anew. "
            "Check the folder is writable, or delete the file.",
            self.path,
            doing,
            type(exc).__name__,
            exc,
        )
        if self._db is not None:
            self._db.close()
        self._db = None


class PassageCache:
    """An encoder whose passage vectors (and sentence vectors in context) come from a `VectorFile` when
    stored there, from the wrapped encoder otherwise. Questions go straight to the wrapped encoder.

    `model` names the vectors in the keys: the wrapped encoder's name and anything else that changes its
    vectors (int8). `embedded` counts the texts the model was asked for, `reused` those found."""

    def __init__(self, encoder: WrappedEncoder, vectors: VectorFile, model: str) -> None:
        self._encoder = encoder
        self.vectors = vectors
        self.model = model
        self.embedded = 0
        self.reused = 0

    @property
    def name(self) -> str:
        return self._encoder.name

    @property
    def dimension(self) -> int:
        return self._encoder.dimension

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encoder.encode_queries(texts)

    def encode_passages(
        self, texts: Sequence[str], on_progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Vectors for passages, shape (len(texts), dimension): stored ones, the others embedded (and
        stored) in one call; `on_progress(n)` counts both."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings; wrap a single text in a list.")
        keys = [vector_key(self.model, "passage", text) for text in texts]
        found = self.vectors.get(keys)
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in found:
                missing.setdefault(key, text)
        self.reused += len(texts) - len(missing)
        if on_progress is not None and len(texts) > len(missing):
            on_progress(len(texts) - len(missing))
        if missing:
            encoded = self._encoder.encode_passages(list(missing.values()), on_progress)
            self.embedded += len(missing)
            fresh = dict(zip(missing, encoded, strict=True))
            self.vectors.put(fresh)
            found.update(fresh)
        return np.array([found[key] for key in keys], dtype=np.float32).reshape(len(texts), self.dimension)

    def encode_passage_sentences(
        self,
        texts: Sequence[str],
        sentences: Sequence[Sequence[tuple[int, int]]],
        on_progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """As the wrapped encoder's (`SpanEncoder`): a passage is embedded again unless its vector and
        every one of its sentences' are stored; a sentence's key holds its passage and span."""
        encoder = self._encoder
        if not isinstance(encoder, SpanEncoder):
            raise TypeError(f"{type(encoder).__name__} cannot embed sentences in their passage's context.")
        passage_keys = [vector_key(self.model, "passage", text) for text in texts]
        sentence_keys = [
            [vector_key(self.model, "passage-sentence", f"{start}:{end}\x1f{text}") for start, end in spans]
            for text, spans in zip(texts, sentences, strict=True)
        ]
        found = self.vectors.get(passage_keys + [key for keys in sentence_keys for key in keys])
        missing = [
            i
            for i, key in enumerate(passage_keys)
            if key not in found or any(k not in found for k in sentence_keys[i])
        ]
        self.reused += len(texts) - len(missing)
        if on_progress is not None and len(texts) > len(missing):
            done = set(range(len(texts))) - set(missing)
            on_progress(sum(1 + len(sentences[i]) for i in done))
        if missing:
            vectors, sentence_vectors = encoder.encode_passage_sentences(
                [texts[i] for i in missing], [sentences[i] for i in missing], on_progress
            )
            self.embedded += len(missing)
            fresh: dict[bytes, np.ndarray] = {}
            for i, vector, rows in zip(missing, vectors, sentence_vectors, strict=True):
                fresh[passage_keys[i]] = vector
                fresh.update(zip(sentence_keys[i], rows, strict=True))
            self.vectors.put(fresh)
            found.update(fresh)
        dimension = self.dimension
        return (
            np.array([found[key] for key in passage_keys], dtype=np.float32).reshape(len(texts), dimension),
            [
                np.array([found[key] for key in keys], dtype=np.float32).reshape(len(keys), dimension)
                for keys in sentence_keys
            ],
        )
