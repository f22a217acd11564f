"""An index folder: documents, their vectors and their keywords, kept in step. Open with `IndexStore.open`.

The three parts live in `index/storage`, each behind its own interface:

- the document store (`documents.py`, SQLite): documents, chunks and sentences with their vectors, the
  source of truth; every write is one transaction that bumps a generation counter and logs the ids it
  removed, so a process killed mid-write leaves the previous state (SQLite rolls back on the next open);
- a vector index per kind of unit, chunks and sentences (`vectors.py`): exact while small, IVF (chunks)
  or HNSW (sentences) past a measured size (`choose_spec`, `APPROXIMATE`), held in memory and saved to a file now and then (a checkpoint, tagged
  with the generation it holds), never rewritten per commit;
- the keyword index (`keywords.py`): BM25 posting lists in the same database, written in the same
  transactions, so it needs no rebuild and no reload.

A process brings its vector indexes to the database's generation by applying its own writes in memory, or
the log of other processes' writes (removed ids) and the rows added since (ids are never reused), or, when
neither is possible, by loading the checkpoint files and catching up from their generation. A crash
between a commit and a checkpoint loses nothing: the rows and the log are committed, the files only lag.

Reads that must agree with each other (a search) run inside `IndexStore.snapshot()`: the vectors in memory
and the SQLite rows then come from one generation, whatever other threads or processes write meanwhile.
Ranking is not done here: the store answers each signal's top candidates (index.search fuses them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from citeqa.errors import IndexLocked, IndexModelMismatch
from index.chunking import ChunkingSettings
from index.documents import Document
from index.lexical import Keywords
from index.storage.documents import (
    UNIT_KINDS,
    ChunkHit,
    DocumentStore,
    DocumentSummary,
    IndexedDocument,
    StoredDocument,
    Write,
    missing_document,
)
from index.storage.keywords import KeywordIndex, KeywordTop
from index.storage.vectors import (
    FaissVectorIndex,
    IndexSpec,
    VectorFileError,
    approximate_spec,
    choose_spec,
    fit_to_size,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 4
VECTOR_FILES = {"chunks": "chunks.vectors", "sentences": "sentences.vectors"}
# Format 2 kept whole FAISS files rewritten after every commit; an upgrade deletes them.
FORMAT_2_FILES = ("chunks.faiss", "sentences.faiss", "vectors.json")
# A vector index is saved once the changes since its last save reach this share of its size, and at least
# CHECKPOINT_MIN_CHANGES: each save writes the whole file, so saving at a share of the size keeps the cost
# per vector added constant however large the index grows; until then a restart replays the changes from
# the rows. A store also saves on `close()`.
CHECKPOINT_SHARE = 0.1
CHECKPOINT_MIN_CHANGES = 10_000
# Each kind's approximate index, and how its vectors are stored (measured on bench/scale.py's vectors, a
# question's top 10 against exact search):
# - chunks: IVF, fp16 (recall as fp32). A collection holding many near-copies of a passage (1M chunks of
#   the bench, ~330 noisy copies each) splits an HNSW graph into islands of copies: recall@10 0.737 at
#   efSearch 256, 0.940 at 2048; IVF (4,096 lists) 0.994-0.998 at nprobe 64, 1.8 ms (docs/PERF.md).
# - sentences: HNSW, sq8 (5-6 per chunk: a quarter of fp32). A question lies far from most sentences and
#   its nearest are spread over many IVF lists: at 66,572 sentences, IVF's recall@10 was 0.79 at nprobe 32
#   of 1,024 lists (0.87 at 64) where HNSW's was 0.97.
APPROXIMATE: dict[str, tuple[Literal["ivf", "hnsw"], Literal["fp16", "sq8"]]] = {
    "chunks": ("ivf", "fp16"),
    "sentences": ("hnsw", "sq8"),
}
# Keyword postings gathered per call: a reindex adds every chunk in one transaction.
_KEYWORD_BATCH = 4096
# How long a write waits for another process's write (e.g. a running `citeqa ingest`) before IndexLocked.
WRITE_LOCK_TIMEOUT_S = 30.0

IndexKind = Literal["auto", "flat", "ivf", "hnsw"]


class Manifest(BaseModel):
    """What an index was built with; vectors from another model cannot be searched together."""

    format_version: int = FORMAT_VERSION
    model: str
    dimension: int
    chunking: ChunkingSettings
    index_kind: IndexKind = Field(
        default="auto",
        description="auto: exact below a measured size, IVF above (index.storage.vectors.choose_spec); "
        "flat, ivf or hnsw: forced by `citeqa reindex --index-kind`.",
    )
    vector_indexes: dict[str, IndexSpec] = Field(
        default_factory=dict, description="Each kind's vector index as last saved, with its parameters."
    )


@dataclass(frozen=True)
class ChunkSentences:
    """The sentences of some chunks as aligned arrays, grouped by chunk (ids ascending) and in document
    order within a chunk: ids, chunk ids, (char_start, char_end) in the document (None when not read),
    vectors."""

    ids: np.ndarray
    chunk_ids: np.ndarray
    starts: np.ndarray | None
    ends: np.ndarray | None
    vectors: np.ndarray

    def of(self, chunk_id: int) -> slice:
        """Where one chunk's sentences are (an empty slice if it has none)."""
        return slice(
            int(np.searchsorted(self.chunk_ids, chunk_id, side="left")),
            int(np.searchsorted(self.chunk_ids, chunk_id, side="right")),
        )

    def group_starts(self) -> np.ndarray:
        """The position of each chunk's first sentence."""
        return np.flatnonzero(np.r_[True, np.diff(self.chunk_ids) != 0]) if self.ids.size else self.ids


class IndexStore:
    """Documents, chunks, sentences, their vectors and keywords in one index folder."""

    def __init__(
        self,
        directory: Path,
        documents: DocumentStore,
        manifest: Manifest,
        *,
        lock_timeout_s: float = WRITE_LOCK_TIMEOUT_S,
    ) -> None:
        self.directory = directory
        self.manifest = manifest
        self.lock_timeout_s = lock_timeout_s
        """How long a write waits for another process's write lock before raising IndexLocked."""
        self._documents = documents
        self._keywords = KeywordIndex(documents.connection)
        # Guards the connection and the in-memory indexes: held by every read and by a whole write.
        self._lock = threading.RLock()
        # Writers of this process queue here, without a timeout, before they take the file lock.
        self._writers = threading.Lock()
        self._snapshot_depth = 0
        self._vectors = {kind: FaissVectorIndex(manifest.dimension) for kind in UNIT_KINDS}
        # The highest id each vector index has held: rows above it were added since.
        self._seen = dict.fromkeys(UNIT_KINDS, 0)
        # Vectors added or removed since each index was last saved.
        self._unsaved = dict.fromkeys(UNIT_KINDS, 0)
        self._saved_generation = dict.fromkeys(UNIT_KINDS, -1)
        self._generation = -1  # of the vectors in memory; -1: none loaded
        self._sample: tuple[tuple[int, int], np.ndarray, int] | None = None  # chunk_sample's last draw
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
        An index of format 2 is upgraded in place (its keyword index built from the stored terms).
        """
        documents = DocumentStore.open(directory)
        try:
            stored = documents.read_meta("manifest")
            if stored is None:
                with documents.writing():
                    documents.write_meta("manifest", manifest.model_dump_json())
            else:
                existing = Manifest.model_validate_json(stored)
                check_stored_manifest(
                    f"The index in {directory}",
                    existing,
                    manifest,
                    rebuild=rebuild,
                    elsewhere="set CITEQA_DATA_DIR to another folder",
                )
                if existing.format_version < FORMAT_VERSION:
                    existing = _upgrade(documents, existing, lock_timeout_s)
                # The vectors stay those of the stored manifest until `replace_all` swaps them.
                manifest = (
                    existing if rebuild else existing.model_copy(update={"chunking": manifest.chunking})
                )
        except BaseException:
            documents.close()
            raise
        return cls(directory, documents, manifest, lock_timeout_s=lock_timeout_s)

    @staticmethod
    def stored_manifest(directory: Path) -> Manifest | None:
        """The manifest of the index in `directory` (None for an index that holds none yet)."""
        documents = DocumentStore.open(directory)
        try:
            stored = documents.read_meta("manifest")
        finally:
            documents.close()
        return None if stored is None else Manifest.model_validate_json(stored)

    def close(self) -> None:
        """Save the vector indexes if they hold changes not yet saved, then close the database. The save
        is skipped while another process writes (it saves them itself) or after another process
        re-embedded the index: the index is whole without it, its files only lag."""
        if any(self._unsaved.values()):
            with contextlib.suppress(IndexLocked, IndexModelMismatch), self.writer(timeout_s=0):
                self.refresh()
                self._checkpoint()
        with self._lock:
            self._documents.close()

    # -- reading ---------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        with self._lock:
            return self._documents.generation()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read one generation of the index: every read inside sees the same documents and vectors.

        Holds the store's lock, so writes of this process wait for the snapshot to end (and it for them),
        and a SQLite read transaction, so that writes committed by other processes meanwhile stay unseen;
        the vectors in memory are caught up first if another process wrote since. Keep slow work that needs
        no index (embedding a question) outside: writers wait for the snapshot.
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
            with self._documents.reading():
                generation = self._documents.generation()
                if generation != self._generation:
                    self._check_manifest(self.manifest, writing=False)
                    self._catch_up(generation)
                self._snapshot_depth = 1
                try:
                    yield
                finally:
                    self._snapshot_depth = 0

    def refresh(self) -> None:
        """Bring the vectors in memory to the index's current generation (IndexModelMismatch if another
        process re-embedded it with another model)."""
        with self.snapshot():
            pass

    def counts(self) -> tuple[int, int]:
        """(documents, chunks) in the index."""
        with self._lock:
            return self._documents.counts()

    def vector_counts(self) -> dict[str, int]:
        """Vectors held in memory by each vector index (chunks, sentences)."""
        with self._lock:
            return {kind: len(index) for kind, index in self._vectors.items()}

    def vector_specs(self) -> dict[str, IndexSpec]:
        """The kind of each vector index in memory (flat or HNSW, and its parameters)."""
        with self._lock:
            return {kind: index.spec for kind, index in self._vectors.items()}

    def tune_search(self, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Set how much of the approximate vector indexes a search reads in this process (HNSW's beam,
        efSearch; the lists IVF scans, nprobe): more finds more of the exact neighbours, slower
        (bench/scale.py --ef-search and --nprobe measure both). Flat ones ignore it; a checkpoint saves it."""
        with self._lock:
            for index in self._vectors.values():
                index.tune(ef_search=ef_search, nprobe=nprobe)

    def list_documents(self) -> list[DocumentSummary]:
        with self._lock:
            return self._documents.list_documents()

    def sections(self) -> list[str]:
        with self._lock:
            return self._documents.sections()

    def get_document(self, doc_id: str) -> Document:
        stored = self.find_document(doc_id)
        if stored is None:
            raise missing_document(doc_id)
        return stored.document

    def find_document(self, doc_id: str) -> StoredDocument | None:
        with self._lock:
            return self._documents.find_document(doc_id)

    def iter_documents(self) -> Iterator[Document]:
        with self._lock:
            stored = self._documents.documents()
        for item in stored:
            yield item.document

    def indexed_documents(self) -> Iterator[IndexedDocument]:
        """Every document as it was written, vectors included, in the order they were added, one at a time
        (`citeqa migrate` copies them to another backend without embedding them again). A document deleted
        while this runs is left out."""
        with self._lock:
            doc_ids = [item.document.doc_id for item in self._documents.documents()]
        for doc_id in doc_ids:
            with self.snapshot():
                stored = self._documents.find_document(doc_id)
                indexed = None if stored is None else self._documents.indexed_document(stored)
            if indexed is not None:
                yield indexed

    def chunk_count(self, doc_id: str) -> int:
        with self._lock:
            return self._documents.chunk_count(doc_id)

    # -- candidates: each signal's best chunks, to be read inside one snapshot --------------------------

    def allowed_chunks(self, sections: Sequence[str] = (), doc_ids: Sequence[str] = ()) -> np.ndarray | None:
        """Ids of the chunks a search restricted to `sections` and `doc_ids` may return; None: every chunk."""
        if not sections and not doc_ids:
            return None
        with self.snapshot():
            return self._documents.chunk_ids_matching(sections, doc_ids)

    def chunk_sample(self, size: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """Up to `size` chunk ids drawn uniformly from those in scope (`allowed`, or every chunk), ascending,
        and how many chunks are in scope: all of them when there are no more. The same draw for the same
        scope while the index does not change, so a search is reproducible; the draw from every chunk is
        kept until the next write (it reads every id)."""
        with self.snapshot():
            if allowed is not None:
                return uniform_sample(np.unique(allowed), size)
            key = (self._generation, size)
            if self._sample is None or self._sample[0] != key:
                self._sample = (key, *uniform_sample(self._vectors["chunks"].ids(), size))
            return self._sample[1], self._sample[2]

    def nearest_chunks(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The (ids, cosines) of the `k` chunks closest to `query`, best first (among `allowed`)."""
        with self.snapshot():
            return self._vectors["chunks"].search(query, k, allowed)

    def nearest_sentences(
        self, query: np.ndarray, k: int, allowed_chunks: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The (sentence ids, their chunk ids, cosines) of the `k` sentences closest to `query`, best first
        (among the sentences of `allowed_chunks`)."""
        with self.snapshot():
            allowed = None
            if allowed_chunks is not None:
                allowed = self._documents.sentence_ids_of_chunks(allowed_chunks)[0]
            ids, scores = self._vectors["sentences"].search(query, k, allowed)
            rows = self._documents.sentences(ids)
            return ids, rows.chunk_ids[np.searchsorted(rows.ids, ids)], scores

    def nearest_units(
        self, query: np.ndarray, chunks: int, sentences: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ids of the `chunks` chunks closest to `query` and the chunk ids of the `sentences` closest
        sentences (among `allowed`): `nearest_chunks` and `nearest_sentences`, one after the other."""
        with self.snapshot():
            chunk_ids, _ = self.nearest_chunks(query, chunks, allowed)
            _, sentence_chunks, _ = self.nearest_sentences(query, sentences, allowed)
            return chunk_ids, sentence_chunks

    def keyword_top(
        self,
        keywords: Keywords,
        limit: int,
        allowed: np.ndarray | None = None,
        also: np.ndarray | None = None,
    ) -> KeywordTop:
        """The `limit` chunks BM25 scores highest (among `allowed`), the scores of the chunks in `also`, and
        BM25's mean and spread over the chunks in scope (index.storage.keywords.KeywordIndex.top)."""
        with self.snapshot():
            return self._keywords.top(keywords, limit, allowed, also)

    def chunk_vectors(self, chunk_ids: np.ndarray) -> np.ndarray:
        """The chunks' vectors, in the order given (KeyError for a chunk not in this snapshot)."""
        with self.snapshot():
            return self._vectors["chunks"].vectors(chunk_ids)

    def chunk_sentences(self, chunk_ids: Sequence[int] | np.ndarray, *, spans: bool = True) -> ChunkSentences:
        """The sentences of some chunks, with their vectors, and their spans unless `spans` is false (the
        spans take a row per sentence to read; ids and vectors need a row per chunk)."""
        with self.snapshot():
            if spans:
                rows = self._documents.sentences_of_chunks(chunk_ids)
                ids, chunks, starts, ends = rows.ids, rows.chunk_ids, rows.starts, rows.ends
            else:
                ids, chunks = self._documents.sentence_ids_of_chunks(chunk_ids)
                starts = ends = None
            vectors = self._vectors["sentences"].vectors(ids)
        # Ids ascend, which is document order within a chunk.
        order = np.lexsort((ids, chunks))
        return ChunkSentences(
            ids[order],
            chunks[order],
            None if starts is None else starts[order],
            None if ends is None else ends[order],
            vectors[order],
        )

    def chunk_hits(self, chunk_ids: Sequence[int], scores: Sequence[float]) -> list[ChunkHit]:
        """The chunks with what a citation needs, in the order given.

        The ids must come from the same snapshot: a chunk deleted since is a KeyError."""
        with self.snapshot():
            return self._documents.chunk_hits(chunk_ids, scores)

    def sentence_spans(self, sentence_ids: Sequence[int]) -> dict[int, tuple[int, int, int | None]]:
        """(char_start, char_end, page) of some sentences in their documents, by id."""
        with self.snapshot():
            return self._documents.sentence_spans([i for i in sentence_ids if i >= 0])

    def keyword_matches(self, texts: Sequence[str], keywords: Keywords) -> np.ndarray:
        """How much of the keywords each text holds (index.storage.keywords.KeywordIndex.match_scores)."""
        with self.snapshot():
            return self._keywords.match_scores(texts, keywords)

    def vocabulary_is_chinese(self) -> bool:
        """Whether most of the words indexed for keyword search are Chinese."""
        with self.snapshot():
            return self._keywords.vocabulary_is_chinese()

    # -- writing ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def writer(self, timeout_s: float | None = None) -> Iterator[None]:
        """Hold the index's write lock: one writer at a time, across threads and processes.

        Waits up to `timeout_s` (default `lock_timeout_s`) for another process's write, then raises
        IndexLocked. Not reentrant: a nested `writer()` would wait for itself."""
        timeout_s = self.lock_timeout_s if timeout_s is None else timeout_s
        # The store's lock last: while a write waits for another process, searches of this one go on.
        with self._writers, self._documents.file_lock(timeout_s), self._lock:
            yield

    def upsert(self, items: Sequence[IndexedDocument]) -> None:
        """Add or replace documents in one transaction: all of them land, or none does. A document given
        twice is stored once, as its later copy."""
        check_vectors(items, self.manifest.dimension)
        items = list({item.document.doc_id: item for item in items}.values())
        with self.writer():
            self._write(lambda write: self._write_documents(write, items))

    def replace_all(self, manifest: Manifest, items: Sequence[IndexedDocument]) -> None:
        """Swap every chunk and vector for new ones (another model, chunking or index kind) in one
        transaction."""
        check_vectors(items, manifest.dimension)
        with self.writer():

            def write_all(write: Write) -> None:
                self._documents.write_meta("manifest", manifest.model_dump_json())
                self._documents.remove_every_chunk(write)
                self._keywords.clear(self._documents.connection)
                self._write_documents(write, items)

            previous, self.manifest = self.manifest, manifest
            try:
                # What is on disk must still be what this store was opened on: the vectors it replaces.
                self._write(write_all, stored=previous)
            except BaseException:
                self.manifest = previous
                raise

    def delete(self, doc_id: str) -> None:
        """Remove a document, its chunks and their vectors."""
        with self.writer():
            self._write(
                lambda write: self._keywords.remove(
                    self._documents.connection, self._documents.remove(write, doc_id)
                )
            )

    def checkpoint(self) -> None:
        """Save the vector indexes that hold changes not yet saved (waits for the write lock)."""
        with self.writer():
            self.refresh()
            self._checkpoint()

    # -- internals -------------------------------------------------------------------------------

    def _write_documents(self, write: Write, items: Sequence[IndexedDocument]) -> None:
        """Store documents (replacing those with the same ids) and index their chunks' keywords."""
        chunk_ids = self._documents.put(write, items)
        db = self._documents.connection
        self._keywords.remove(db, write.removed["chunks"])
        pairs = [
            (chunk_id, terms)
            for ids, item in zip(chunk_ids, items, strict=True)
            for chunk_id, terms in zip(ids, item.chunk_terms, strict=True)
        ]
        for start in range(0, len(pairs), _KEYWORD_BATCH):
            self._keywords.add_many(db, pairs[start : start + _KEYWORD_BATCH])

    def _write(self, change: Callable[[Write], None], *, stored: Manifest | None = None) -> None:
        """Run `change` in one write transaction, then bring the vectors in memory to its result.

        Refused with IndexModelMismatch, before anything is written, when the index on disk no longer
        holds vectors of `stored` (default: this store's manifest), i.e. another process re-embedded it
        with another model: vectors of two models must never be stored or searched together."""
        with self._documents.writing() as write:
            self._check_manifest(stored or self.manifest, writing=True)
            change(write)
            self._keywords.compact(self._documents.connection)
        try:
            if write.reset:
                self._vectors = {
                    kind: self._new_index(kind, len(write.added(kind)[0])) for kind in UNIT_KINDS
                }
                self._seen = dict.fromkeys(UNIT_KINDS, 0)
                self._unsaved = dict.fromkeys(UNIT_KINDS, 1)  # saved below whatever its size: others load it
            if write.reset or write.generation == self._generation + 1:
                # What is in memory was current: apply just this write instead of catching up from disk.
                for kind in UNIT_KINDS:
                    self._apply(kind, write.removed[kind], [write.added(kind)])
                self._generation = write.generation
            else:
                self.refresh()
            if write.reset or any(self._checkpoint_due(kind) for kind in UNIT_KINDS):
                self._checkpoint()
        except BaseException:
            self._generation = -1  # what is in memory is unknown: reload it at the next read
            raise

    def _check_manifest(self, expected: Manifest, *, writing: bool) -> None:
        """IndexModelMismatch if the stored manifest names another model or dimension than `expected`."""
        found = Manifest.model_validate_json(
            self._documents.read_meta("manifest") or expected.model_dump_json()
        )
        if (found.model, found.dimension) == (expected.model, expected.dimension):
            return
        raise re_embedded_elsewhere(f"The index in {self.directory}", found, expected, writing=writing)

    def _catch_up(self, generation: int) -> None:
        """Bring the vectors in memory to `generation` (inside a read transaction of it): from the log of
        removals and the rows added since, when the log reaches back to what memory holds; else from the
        saved files."""
        removed = self._documents.removed_since(self._generation) if self._generation >= 0 else None
        if removed is None:
            self._load_vectors(generation)
            return
        for kind in UNIT_KINDS:
            self._apply(kind, removed[kind], self._documents.vectors_after(kind, self._seen[kind]))
        self._generation = generation

    def _load_vectors(self, generation: int) -> None:
        """Load each kind's saved vector index and catch it up to `generation`; rebuild it from the rows
        when there is no usable file."""
        for kind in UNIT_KINDS:
            index = self._read_file(kind)
            if index is None:
                self._rebuild(kind)
                continue
            self._vectors[kind], self._unsaved[kind] = index, 0
            ids = index.ids()
            self._seen[kind] = int(ids[-1]) if ids.size else 0
            saved = index.metadata.get("generation")
            self._saved_generation[kind] = saved if isinstance(saved, int) else -1
            removed = (
                self._documents.removed_since(saved)
                if isinstance(saved, int) and saved <= generation
                else None
            )
            if removed is not None:
                self._apply(kind, removed[kind], self._documents.vectors_after(kind, self._seen[kind]))
            if removed is None or len(self._vectors[kind]) != self._documents.count(kind):
                # The file is newer than this snapshot, or the log no longer reaches back to it.
                self._reconcile(kind)
            self._fit(kind)
        self._generation = generation

    def _read_file(self, kind: str) -> FaissVectorIndex | None:
        path = self.directory / VECTOR_FILES[kind]
        try:
            index = FaissVectorIndex.load(path)
        except FileNotFoundError:
            return None
        except (OSError, VectorFileError) as error:
            logger.warning("Vector file %s unusable (%s): rebuilding it from the stored vectors", path, error)
            return None
        if index.dimension != self.manifest.dimension:
            return None
        return index

    def _rebuild(self, kind: str) -> None:
        """A new vector index of one kind from every stored vector (read in batches)."""
        index = self._new_index(kind, self._documents.count(kind))
        self._vectors[kind], self._seen[kind], self._unsaved[kind] = index, 0, 0
        self._apply(kind, np.zeros(0, dtype=np.int64), self._documents.vectors_after(kind, 0))
        logger.debug("Rebuilt the %s vector index from the stored vectors: %s", kind, index)

    def _reconcile(self, kind: str) -> None:
        """Make one vector index hold exactly the stored ids: remove the others, add the missing ones."""
        index = self._vectors[kind]
        stored, held = self._documents.ids(kind), index.ids()
        extra = np.setdiff1d(held, stored, assume_unique=True)
        missing = np.setdiff1d(stored, held, assume_unique=True)
        logger.info(
            "Vector index of %s: %d removed, %d added to match the rows", kind, len(extra), len(missing)
        )
        self._apply(kind, extra, [self._documents.vectors_of(kind, missing)])
        self._seen[kind] = max(self._seen[kind], int(stored[-1]) if stored.size else 0)

    def _apply(
        self, kind: str, removed: Sequence[int] | np.ndarray, added: Iterable[tuple[np.ndarray, np.ndarray]]
    ) -> None:
        index = self._vectors[kind]
        changed = index.remove(np.asarray(removed, dtype=np.int64)) if len(removed) else 0
        for ids, vectors in added:
            if ids.size:
                index.add(ids, vectors)
                self._seen[kind] = max(self._seen[kind], int(ids.max()))
                changed += ids.size
        self._unsaved[kind] += changed

    def _spec_for(self, kind: str, size: int, current: IndexSpec | None = None) -> IndexSpec:
        """The vector index `size` vectors of this kind should have: as the manifest forces, else chosen
        by size (keeping `current`'s parameters while its kind is still right)."""
        approximate, storage = APPROXIMATE[kind]
        forced = self.manifest.index_kind
        if forced == "flat":
            return IndexSpec()
        if forced != "auto":
            return approximate_spec(size, forced, storage, current)
        return choose_spec(
            size, self.manifest.dimension, current=current, approximate=approximate, storage=storage
        )

    def _new_index(self, kind: str, size: int) -> FaissVectorIndex:
        """An empty vector index of the kind that `size` vectors call for (so a rebuild is built once)."""
        return FaissVectorIndex(self.manifest.dimension, self._spec_for(kind, size))

    def _fit(self, kind: str) -> None:
        index = self._vectors[kind]
        self._vectors[kind] = fit_to_size(index, self._spec_for(kind, len(index), index.spec))

    def _checkpoint_due(self, kind: str) -> bool:
        return self._unsaved[kind] >= max(CHECKPOINT_MIN_CHANGES, CHECKPOINT_SHARE * len(self._vectors[kind]))

    def _checkpoint(self) -> None:
        """Save the vector indexes that changed (under the write lock, memory at the latest generation),
        refitted to their size first; record their kinds in the manifest and forget the log they cover."""
        for kind in UNIT_KINDS:
            if not self._unsaved[kind] and (self.directory / VECTOR_FILES[kind]).exists():
                continue
            self._fit(kind)
            self._vectors[kind].save(self.directory / VECTOR_FILES[kind], {"generation": self._generation})
            self._unsaved[kind], self._saved_generation[kind] = 0, self._generation
        specs = {kind: index.spec for kind, index in self._vectors.items()}
        db = self._documents.connection
        db.execute("BEGIN IMMEDIATE")  # no new generation: nothing a reader sees changes
        try:
            if specs != self.manifest.vector_indexes:
                self.manifest = self.manifest.model_copy(update={"vector_indexes": specs})
                self._documents.write_meta("manifest", self.manifest.model_dump_json())
            self._documents.prune_log(min(self._saved_generation.values()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def check_stored_manifest(
    where: str, stored: Manifest, configured: Manifest, *, rebuild: bool, elsewhere: str
) -> None:
    """At open: IndexModelMismatch if the index was built with another model than the configured one (unless
    `rebuild`: the caller re-embeds it), a warning if it was chunked otherwise. `where` names the index,
    `elsewhere` says how to point CiteQA at another one."""
    if rebuild:
        return
    if (stored.model, stored.dimension) != (configured.model, configured.dimension):
        raise IndexModelMismatch(
            f"{where} was built with model {stored.model!r} (dimension {stored.dimension}), but the "
            f"configured model is {configured.model!r} (dimension {configured.dimension}). Run `citeqa "
            f"reindex` to re-embed the stored documents with the configured model, or {elsewhere}, or set "
            f"CITEQA_EMBEDDING_MODEL back to {stored.model!r}."
        )
    if stored.chunking != configured.chunking:
        logger.warning(
            "%s was chunked with %s; settings now say %s. New documents use the new settings; run `citeqa "
            "reindex` to re-chunk all of them.",
            where,
            stored.chunking,
            configured.chunking,
        )


def re_embedded_elsewhere(
    where: str, found: Manifest, expected: Manifest, *, writing: bool
) -> IndexModelMismatch:
    """The error for a read or write of an index another process re-embedded with another model meanwhile."""
    action = "No document was written or deleted" if writing else "Nothing was searched"
    return IndexModelMismatch(
        f"{where} was re-embedded by another process with model {found.model!r} (dimension "
        f"{found.dimension}) while this one runs with {expected.model!r} (dimension {expected.dimension}). "
        f"{action}, so that vectors of two models are never mixed. Restart CiteQA with "
        f"CITEQA_EMBEDDING_MODEL={found.model!r} to use the index as it is now, or run `citeqa reindex` "
        f"with {expected.model!r} to re-embed it back."
    )


def _upgrade(documents: DocumentStore, manifest: Manifest, lock_timeout_s: float) -> Manifest:
    """Bring an index of an earlier format to this one.

    - Format 2: its keyword index built from the terms stored in each chunk row, the vectors moved out of
      the chunk and sentence rows into tables of their own, the FAISS files deleted (the vector files are
      saved by the store's next checkpoint).
    - Format 3: each chunk's term frequencies copied from the posting lists to the chunk's keyword row
      (`KeywordIndex.add_frequencies`)."""
    db = documents.connection
    upgraded = manifest.model_copy(update={"format_version": FORMAT_VERSION})
    with documents.file_lock(lock_timeout_s):
        columns = {row["name"] for row in db.execute("PRAGMA table_info(chunks)")}
        keywords = KeywordIndex(db)
        with documents.writing():
            if "terms" in columns:  # not already upgraded by another process while this one waited
                after = 0
                while rows := db.execute(
                    "SELECT id, terms FROM chunks WHERE id > ? ORDER BY id LIMIT ?", (after, _KEYWORD_BATCH)
                ).fetchall():
                    keywords.add_many(db, [(row["id"], json.loads(row["terms"])) for row in rows])
                    keywords.compact(db)
                    after = rows[-1]["id"]
                db.execute("INSERT INTO chunk_vectors (id, vector) SELECT id, vector FROM chunks")
                db.execute("INSERT INTO sentence_vectors (id, vector) SELECT id, vector FROM sentences")
                for table, column in (("chunks", "terms"), ("chunks", "vector"), ("sentences", "vector")):
                    db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
                # Format 2 inserted each chunk's sentences one after the other too: their ids are a range.
                for column in ("first_sentence", "sentences"):
                    db.execute(f"ALTER TABLE chunks ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
                db.execute(
                    "UPDATE chunks SET (first_sentence, sentences) = "
                    "(SELECT COALESCE(MIN(id), 0), COUNT(*) FROM sentences WHERE chunk_id = chunks.id)"
                )
            keywords.add_frequencies(db)
            documents.write_meta("manifest", upgraded.model_dump_json())
    for name in FORMAT_2_FILES:
        (documents.directory / name).unlink(missing_ok=True)
    logger.info("Upgraded the index in %s to format %d", documents.directory, FORMAT_VERSION)
    return upgraded


def uniform_sample(pool: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """Up to `size` of the ids in `pool` (ascending), drawn the same way every time, and the pool's size."""
    if pool.size <= size:
        return pool, int(pool.size)
    chosen = np.random.default_rng(0).choice(pool.size, size, replace=False)
    return np.sort(pool[chosen]), int(pool.size)


def check_vectors(items: Sequence[IndexedDocument], dimension: int) -> None:
    """ValueError unless every document has one vector per chunk and sentence, of `dimension`."""
    for item in items:
        doc_id = item.document.doc_id
        if len(item.chunks) != len(item.chunk_vectors) or len(item.chunks) != len(item.chunk_terms):
            raise ValueError(f"{doc_id}: {len(item.chunks)} chunks but {len(item.chunk_vectors)} vectors.")
        if len(item.sentences) != len(item.sentence_vectors):
            raise ValueError(
                f"{doc_id}: {len(item.sentences)} sentences but {len(item.sentence_vectors)} vectors."
            )
        for vectors in (item.chunk_vectors, item.sentence_vectors):
            if len(vectors) and vectors.shape[1] != dimension:
                raise ValueError(
                    f"{doc_id}: vectors have dimension {vectors.shape[1]}; the index holds {dimension}."
                )
