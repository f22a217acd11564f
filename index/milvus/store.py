"""A collection's index in Milvus: the Milvus backend of `index.backend.Store` (CITEQA_BACKEND=milvus).

Everything a search or a citation needs lives in Milvus, so processes pointed at one server (several
`citeqa serve`) answer alike and keep nothing on disk. A CiteQA collection is these Milvus collections,
named `citeqa_<collection>_...` (index.milvus.client.collection_prefix):

- `meta`: one row, `state`: the manifest, the epoch (which set of the collections below is current: a
  reindex writes a new set and switches to it in one upsert), a stamp every write renews, the trash
  (generations superseded) and the retired sets of collections, both removed after GRACE_S;
- `<epoch>_documents`: one row per committed document: its generation, listing position, chunk count, and
  what a listing or a citation shows; `<epoch>_texts`: its text, in parts a VARCHAR holds, joined back
  exactly; `<epoch>_chunks`: chunks with their dense vector and a BM25 sparse vector Milvus derives from
  their terms; `<epoch>_sentences`: sentences with their dense vector.

Writes cannot half-land. Each write of a document draws a random generation; its text parts, chunks and
sentences are written with it first (ids: the generation << 20 plus the position, so ids ascend in
document order within a document and are never reused), its document row last: that row names the
committed generation, and every read drops rows whose generation is not their document's committed one.
A write killed midway leaves rows no read sees; the next write of that document removes them. The rows a
write supersedes stay GRACE_S for searches that started before it (a search reads one snapshot of the
documents: their generations as they were when it began), then a later write removes them.

Writes of this process are serialized (milvus-lite's write-ahead log is not safe under concurrent writes,
see docs/notes/milvus-lite-scouting.md); writes of two processes are not, but each document still lands
whole: the last document row written wins. Searches take no lock: a snapshot is the committed documents'
generations as read at its start (reloaded when the state's stamp changed), so writes never wait for them.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from citeqa.errors import BackendFailed
from index.documents import Document, PageStart
from index.lexical import Keywords
from index.milvus import keywords as structured
from index.milvus.client import (
    DUMMY,
    MAX_LIMIT,
    MAX_VARCHAR_BYTES,
    check_name,
    chunks_schema,
    collection_prefix,
    document_key,
    documents_schema,
    fit_bytes,
    in_list,
    literal,
    meta_schema,
    sentences_schema,
    texts_schema,
    vector_indexes,
)
from index.milvus.connection import Connection
from index.milvus.keywords import Holders, Totals, chunk_terms_of
from index.milvus.rows import Row, RowCache
from index.storage.documents import (
    ChunkHit,
    DocumentSummary,
    IndexedDocument,
    StoredDocument,
    chunk_hit,
    missing_document,
)
from index.storage.keywords import KeywordTop
from index.storage.vectors import IndexSpec
from index.store import (
    ChunkSentences,
    Manifest,
    check_stored_manifest,
    check_vectors,
    re_embedded_elsewhere,
    uniform_sample,
)
from index.text import has_chinese

# How long rows a write superseded stay, for searches that began before it.
GRACE_S = 60.0
# Ids: a write's generation (random, GENERATION_BITS) shifted left by POSITION_BITS, plus the position.
GENERATION_BITS = 40
POSITION_BITS = 20
# A text part: 16,383 characters are at most 65,532 bytes of UTF-8, what a VARCHAR holds on real Milvus.
PART_CHARS = MAX_VARCHAR_BYTES // 4
# The HNSW index of both kinds, as the local backend's default HNSW (index.storage.vectors.IndexSpec).
VECTOR_SPEC = IndexSpec(kind="hnsw")
KINDS = ("documents", "texts", "chunks", "sentences")
# What a state's view remembers between searches, at most (until the next write replaces the view): the
# filter expressions of scopes, and which chunks hold a term (ids, all terms together).
SCOPES_KEPT = 256
HOLDERS_KEPT = 4_000_000
# Chunk and sentence rows kept in the process (index.milvus.rows), per kind: a search reads those of about
# 1,300 candidate chunks (index.search.CandidateCounts) and their sentences. At 384 dimensions a chunk row
# takes about 3 KB (vector, text, terms), a sentence row 1.7 KB: about 100 MB and 110 MB at most.
CHUNK_ROWS_KEPT = 32_768
SENTENCE_ROWS_KEPT = 65_536
# Worker threads for the reads a search issues side by side (threads start as they are needed).
READ_WORKERS = 8
_STATE = "state"
T = TypeVar("T")
# Every field of a row but BM25's sparse vector: a row is read once, whatever a search needs of it.
_CHUNK_FIELDS = [
    "doc_id",
    "generation",
    "section",
    "char_start",
    "char_end",
    "page",
    "chunk_index",
    "text",
    "first_sentence",
    "sentences",
    "keywords",
    "dense",
]
_SENTENCE_FIELDS = ["doc_id", "generation", "chunk_id", "char_start", "char_end", "page", "dense"]


@dataclass(frozen=True)
class _Doc:
    """A committed document's row."""

    doc_id: str
    generation: int
    position: int
    chunks: int
    info: dict[str, Any]
    """title, section, date, source, url, page_map, content_hash, terms and chinese_terms (its distinct
    keyword terms, and how many hold a Chinese character), length and empty (its chunks' terms in all, and
    its chunks without any: BM25's statistics; absent from rows written before they were kept)."""


@dataclass
class _View:
    """One state of the index, as read at a snapshot's start: reused while the stamp stays the same."""

    stamp: str
    epoch: str
    manifest: Manifest
    trash: list[list[Any]]
    """[doc id, generation, when superseded] of the rows kept GRACE_S for running searches."""
    retired: list[list[Any]]
    """[epoch, when replaced] of the sets of collections a reindex replaced, kept GRACE_S likewise."""
    documents: dict[str, _Doc]
    every_chunk: np.ndarray | None = None
    totals: Totals | None = None
    holders: dict[str, Holders] = field(default_factory=dict)
    """Which live chunks hold each term looked for since the state was read."""
    scopes: dict[bytes, str] = field(default_factory=dict)
    """The filter expression of each scope `allowed_chunks` answered, by its ids' bytes."""
    generations: frozenset[int] = frozenset()
    """The committed generations: a row is live when its id's generation is one of them (generations are
    random and 40 bits wide: two writes drawing the same one would share ids as well)."""

    @property
    def chunk_total(self) -> int:
        return sum(doc.chunks for doc in self.documents.values())


class MilvusStore:
    """One CiteQA collection's documents, chunks, sentences, vectors and keywords in Milvus."""

    def __init__(self, connection: Connection, collection: str, manifest: Manifest) -> None:
        self.connection = connection
        self.collection = collection
        self.manifest = manifest
        self._prefix = collection_prefix(collection)
        # Writes of this process one at a time; searches take no lock: each reads its own snapshot.
        self._writers = threading.Lock()
        self._thread = threading.local()  # this thread's snapshot: `view`, and how deep it is nested
        self._latest: _View | None = None  # the last state read, reused while its stamp holds
        # Reads issued side by side (`nearest_units`): one a search, so several searches at once need several.
        self._pool = ThreadPoolExecutor(max_workers=READ_WORKERS, thread_name_prefix="milvus-read")
        self._chunk_rows = RowCache(CHUNK_ROWS_KEPT)
        self._sentence_rows = RowCache(SENTENCE_ROWS_KEPT)

    @classmethod
    def open(
        cls, connection: Connection, collection: str, manifest: Manifest, *, rebuild: bool = False
    ) -> MilvusStore:
        """Open (or create) the collection's index for vectors described by `manifest`; one built with
        another model is refused (IndexModelMismatch) unless `rebuild` (`citeqa reindex`)."""
        store = cls(connection, collection, manifest)
        meta = store._name("meta")
        if not connection.has_collection(meta):
            connection.create_collection(meta, meta_schema())
        connection.load_collection(meta)
        state = store._read_state()
        if state is None:  # new, or its creator was killed before its state: the state is written last
            epoch = _new_epoch()
            store._create_epoch(epoch, manifest)
            store._write_state(epoch, manifest, [], [])
            return store
        existing = Manifest.model_validate(state["manifest"])
        check_stored_manifest(
            store._where(), existing, manifest, rebuild=rebuild, elsewhere="name another collection"
        )
        for kind in KINDS:
            connection.load_collection(store._name(kind, state["epoch"]))
        store.manifest = existing if rebuild else existing.model_copy(update={"chunking": manifest.chunking})
        return store

    @staticmethod
    def exists(connection: Connection, collection: str) -> bool:
        return connection.has_collection(check_name(f"{collection_prefix(collection)}meta"))

    @staticmethod
    def drop(connection: Connection, collection: str) -> None:
        """Remove a collection's Milvus collections: its state first, so that a drop killed midway leaves
        collections no name reaches, never a collection with some of its parts."""
        prefix = collection_prefix(collection)
        connection.drop_collection(f"{prefix}meta")
        ours = re.compile(re.escape(prefix) + r"e[0-9a-f]{8}_(?:" + "|".join(KINDS) + ")")
        for name in connection.list_collections():
            if ours.fullmatch(name):
                connection.drop_collection(name)

    def close(self) -> None:
        """Stop the worker threads; the connection is its opener's (citeqa.collections)."""
        self._pool.shutdown(wait=True)

    # -- reading ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read one state: every read inside sees the documents committed when it began (the rows a write
        supersedes stay GRACE_S), whatever this or another process writes meanwhile, so searches and writes
        need not wait for each other. Raises IndexModelMismatch if another process re-embedded the index
        with another model. Nested snapshots (in the same thread) share the outer one."""
        local = self._thread
        if getattr(local, "depth", 0):
            local.depth += 1
            try:
                yield
            finally:
                local.depth -= 1
            return
        local.view, local.depth = self._current_view(writing=False), 1
        try:
            yield
        finally:
            local.view, local.depth = None, 0

    def counts(self) -> tuple[int, int]:
        with self.snapshot():
            view = self._viewed()
            return len(view.documents), view.chunk_total

    def vector_specs(self) -> dict[str, IndexSpec]:
        return {"chunks": VECTOR_SPEC, "sentences": VECTOR_SPEC}

    def list_documents(self) -> list[DocumentSummary]:
        with self.snapshot():
            return [
                DocumentSummary(
                    doc_id=doc.doc_id,
                    title=doc.info["title"],
                    section=doc.info["section"],
                    page=doc.info["page_map"][0]["page"] if doc.info["page_map"] else None,
                    source=doc.info["source"],
                    chunks=doc.chunks,
                )
                for doc in self._ordered()
            ]

    def sections(self) -> list[str]:
        with self.snapshot():
            found = (doc.info["section"] for doc in self._ordered())
            return list(dict.fromkeys(section for section in found if section is not None))

    def get_document(self, doc_id: str) -> Document:
        stored = self.find_document(doc_id)
        if stored is None:
            raise missing_document(doc_id)
        return stored.document

    def find_document(self, doc_id: str) -> StoredDocument | None:
        with self.snapshot():
            doc = self._viewed().documents.get(doc_id)
            return None if doc is None else self._stored(doc)

    def iter_documents(self) -> Iterator[Document]:
        with self.snapshot():
            stored = [self._stored(doc) for doc in self._ordered()]
        for item in stored:
            yield item.document

    def chunk_count(self, doc_id: str) -> int:
        with self.snapshot():
            doc = self._viewed().documents.get(doc_id)
            return 0 if doc is None else doc.chunks

    # -- candidates ------------------------------------------------------------------------------------

    def allowed_chunks(self, sections: Sequence[str] = (), doc_ids: Sequence[str] = ()) -> np.ndarray | None:
        """Ids of the chunks of documents in any of `sections` and any of `doc_ids`; None: every chunk."""
        if not sections and not doc_ids:
            return None
        # A document without a section is stored with "": no section filter may reach it.
        named = [section for section in sections if section]
        if sections and not named:
            return np.zeros(0, dtype=np.int64)
        clauses = []
        if named:
            clauses.append(in_list("section", named))
        if doc_ids:
            clauses.append(in_list("doc_id", doc_ids))
        expression = " and ".join(f"({clause})" for clause in clauses)
        with self.snapshot():
            rows = self.connection.query(self._name("chunks"), expression, ["id"])
            ids = np.sort(self._live_ids(rows))
            _remember(self._viewed().scopes, ids.tobytes(), expression, SCOPES_KEPT)
            return ids

    def chunk_sample(self, size: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        with self.snapshot():
            if allowed is not None:
                return uniform_sample(np.unique(allowed), size)
            view = self._viewed()
            if view.every_chunk is None:
                rows = self.connection.query(self._name("chunks"), "id >= 0", ["id"])
                view.every_chunk = np.sort(self._live_ids(rows))
            return uniform_sample(view.every_chunk, size)

    def nearest_chunks(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        with self.snapshot():
            hits = self._nearest("chunks", query, k, allowed, [])
            return _ids(hits), _scores(hits)

    def nearest_sentences(
        self, query: np.ndarray, k: int, allowed_chunks: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with self.snapshot():
            hits = self._nearest("sentences", query, k, allowed_chunks, ["chunk_id"])
            chunk_ids = np.array([hit["entity"]["chunk_id"] for hit in hits], dtype=np.int64)
            return _ids(hits), chunk_ids, _scores(hits)

    def nearest_units(
        self, query: np.ndarray, chunks: int, sentences: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Both dense searches at once, the sentences' on a worker thread reading this snapshot: each is a
        round trip spent mostly in the server. milvus-lite builds hits under Python's lock, so they overlap
        only in part there (docs/PERF.md); a Milvus server runs them side by side."""
        with self.snapshot():
            view = self._viewed()
            found = self._pool.submit(self._in_view, view, self.nearest_sentences, query, sentences, allowed)
            chunk_ids, _ = self.nearest_chunks(query, chunks, allowed)
            _, sentence_chunks, _ = found.result()
            return chunk_ids, sentence_chunks

    def keyword_top(
        self,
        keywords: Keywords,
        limit: int,
        allowed: np.ndarray | None = None,
        also: np.ndarray | None = None,
    ) -> KeywordTop:
        """The local keyword index's BM25 (index.milvus.keywords.top): Milvus's BM25 finds the chunks holding
        each term, CiteQA scores their stored terms, with statistics over every live chunk (a filtered BM25
        search in milvus-lite would take them over the filter's rows only)."""
        with self.snapshot():
            scope = None if allowed is None else np.unique(np.asarray(allowed, dtype=np.int64))
            asked = (
                np.zeros(0, dtype=np.int64) if also is None else np.unique(np.asarray(also, dtype=np.int64))
            )
            terms = structured.wanted_terms(keywords)
            if not terms or not self._viewed().chunk_total:
                return KeywordTop.empty()
            return structured.top(
                keywords, limit, self._totals(), self._holders(terms), self._chunk_terms, scope, asked
            )

    def chunk_vectors(self, chunk_ids: np.ndarray) -> np.ndarray:
        if not len(chunk_ids):
            return np.zeros((0, self.manifest.dimension), dtype=np.float32)
        with self.snapshot():
            rows = self._chunks(chunk_ids)
        return np.stack([rows[int(i)]["dense"] for i in chunk_ids])

    def chunk_sentences(self, chunk_ids: Sequence[int] | np.ndarray, *, spans: bool = True) -> ChunkSentences:
        """The sentences of some chunks, read by id from each chunk's range of sentence ids (a filter on
        `chunk_id` scans every sentence in milvus-lite, 100 ms at the sample's size), kept once read."""
        with self.snapshot():
            ranges = self._chunks(chunk_ids).values()
            wanted = [row["first_sentence"] + n for row in ranges for n in range(row["sentences"])]
            rows = list(self._sentences(wanted).values())
        ids = np.array([row["id"] for row in rows], dtype=np.int64)
        chunks = np.array([row["chunk_id"] for row in rows], dtype=np.int64)
        order = np.lexsort((ids, chunks))
        vectors = (
            np.stack([rows[i]["dense"] for i in order])
            if rows
            else np.zeros((0, self.manifest.dimension), dtype=np.float32)
        )
        starts = ends = None
        if spans:
            starts = np.array([rows[i]["char_start"] for i in order], dtype=np.int64)
            ends = np.array([rows[i]["char_end"] for i in order], dtype=np.int64)
        return ChunkSentences(ids[order], chunks[order], starts, ends, vectors)

    def chunk_hits(self, chunk_ids: Sequence[int], scores: Sequence[float]) -> list[ChunkHit]:
        wanted = [int(chunk_id) for chunk_id in chunk_ids]
        with self.snapshot():
            rows = self._chunks(wanted)
            documents = self._viewed().documents
        return [
            chunk_hit(_joined(rows[chunk_id], documents[rows[chunk_id]["doc_id"]]), float(score))
            for chunk_id, score in zip(wanted, scores, strict=True)
        ]

    def sentence_spans(self, sentence_ids: Sequence[int]) -> dict[int, tuple[int, int, int | None]]:
        wanted = [int(i) for i in sentence_ids if i >= 0]
        with self.snapshot():
            rows = self._sentences(wanted).values()
        return {row["id"]: (row["char_start"], row["char_end"], _page(row["page"])) for row in rows}

    def keyword_matches(self, texts: Sequence[str], keywords: Keywords) -> np.ndarray:
        """How much of the keywords each text holds, with the index's idf (index.lexical.match_scores, as
        the local keyword index's `match_scores`)."""
        with self.snapshot():
            return structured.matches(
                texts, keywords, self._totals(), self._holders(structured.wanted_terms(keywords))
            )

    def vocabulary_is_chinese(self) -> bool:
        """Whether at least half of the documents' distinct terms (summed over documents) are Chinese."""
        with self.snapshot():
            documents = self._viewed().documents.values()
            chinese = sum(doc.info["chinese_terms"] for doc in documents)
            return chinese / max(sum(doc.info["terms"] for doc in documents), 1) >= 0.5

    # -- writing ---------------------------------------------------------------------------------------

    def upsert(self, items: Sequence[IndexedDocument]) -> None:
        """Add or replace documents, each whole: a document row is written after all its rows."""
        check_vectors(items, self.manifest.dimension)
        with self._writing() as view:
            now = time.time()
            trash, retired = self._tidy(view, now)
            rows: dict[str, dict[str, Any]] = {}  # by doc id: a document given twice, the later wins
            next_position = max((doc.position for doc in view.documents.values()), default=-1) + 1
            for item in items:
                doc_id = item.document.doc_id
                old = view.documents.get(doc_id)
                # Orphans of a write killed midway (or of this batch's earlier copy): neither committed nor
                # superseded within the grace.
                keep = [entry[1] for entry in trash if entry[0] == doc_id] + ([old.generation] if old else [])
                self._remove_rows(doc_id, keep)
                if doc_id in rows:
                    position = rows[doc_id]["position"]
                elif old is not None:
                    position = old.position
                    trash.append([doc_id, old.generation, now])
                else:
                    position, next_position = next_position, next_position + 1
                rows[doc_id] = self._write_rows(view.epoch, item, position)
            self.connection.upsert(self._name("documents", view.epoch), list(rows.values()))
            self._write_state(view.epoch, view.manifest, trash, retired)

    def replace_all(self, manifest: Manifest, items: Sequence[IndexedDocument]) -> None:
        """Write every document anew into a new set of collections (the new model's dimension), then switch
        to it in one upsert of the state: a reindex killed midway leaves the old set, which is otherwise
        dropped by a write after GRACE_S (searches that began on it end on it)."""
        check_vectors(items, manifest.dimension)
        with self._writing() as view:
            _, retired = self._tidy(view, time.time())
            epoch = _new_epoch()
            self._create_epoch(epoch, manifest)
            rows = [
                self._write_rows(epoch, item, view.documents[item.document.doc_id].position)
                if item.document.doc_id in view.documents
                else self._write_rows(epoch, item, len(view.documents) + position)
                for position, item in enumerate(items)
            ]
            self.connection.upsert(self._name("documents", epoch), rows)
            self._write_state(epoch, manifest, [], [*retired, [view.epoch, time.time()]])
            self.manifest = manifest

    def delete(self, doc_id: str) -> None:
        with self._writing() as view:
            doc = view.documents.get(doc_id)
            if doc is None:
                raise missing_document(doc_id)
            self.connection.delete(self._name("documents", view.epoch), f"id == {document_key(doc_id)}")
            now = time.time()
            trash, retired = self._tidy(view, now)
            self._write_state(view.epoch, view.manifest, [*trash, [doc_id, doc.generation, now]], retired)

    # -- internals -------------------------------------------------------------------------------------

    def _where(self) -> str:
        return f"The Milvus collection {self.collection!r} at {self.connection.uri}"

    def _name(self, kind: str, epoch: str | None = None) -> str:
        if kind == "meta":
            return check_name(f"{self._prefix}meta")
        return check_name(f"{self._prefix}{epoch if epoch is not None else self._viewed().epoch}_{kind}")

    def _in_view(self, view: _View, read: Callable[..., T], *args: Any) -> T:
        """`read(*args)` in this thread, inside the snapshot `view` (of the thread that asked)."""
        local = self._thread
        local.view, local.depth = view, 1
        try:
            return read(*args)
        finally:
            local.view, local.depth = None, 0

    def _viewed(self) -> _View:
        view = getattr(self._thread, "view", None)
        assert view is not None, "read inside snapshot()"
        return view

    @contextlib.contextmanager
    def _writing(self) -> Iterator[_View]:
        """This process's writes one at a time, on the current state (IndexModelMismatch if another
        process re-embedded the index with another model: nothing is written then)."""
        with self._writers:
            local = self._thread
            local.view, local.depth = self._current_view(writing=True), 1
            try:
                yield local.view
            finally:
                local.view, local.depth = None, 0

    def _current_view(self, *, writing: bool) -> _View:
        state = self._read_state()
        if state is None:
            raise BackendFailed(f"{self._where()} was deleted meanwhile: create it again to use it.")
        found = Manifest.model_validate(state["manifest"])
        if (found.model, found.dimension) != (self.manifest.model, self.manifest.dimension):
            raise re_embedded_elsewhere(self._where(), found, self.manifest, writing=writing)
        latest = self._latest
        if latest is not None and latest.stamp == state["stamp"]:
            return latest
        if latest is not None and latest.epoch != state["epoch"]:
            for kind in KINDS:  # another process reindexed: its collections, loaded
                self.connection.load_collection(self._name(kind, state["epoch"]))
        rows = self.connection.query(
            self._name("documents", state["epoch"]),
            "position >= 0",
            ["doc_id", "generation", "position", "chunks", "info"],
        )
        documents = {
            row["doc_id"]: _Doc(row["doc_id"], row["generation"], row["position"], row["chunks"], row["info"])
            for row in rows
        }
        self._latest = _View(
            state["stamp"],
            state["epoch"],
            found,
            state["trash"],
            state.get("retired", []),
            documents,
            generations=frozenset(doc.generation for doc in documents.values()),
        )
        return self._latest

    def _read_state(self) -> dict[str, Any] | None:
        rows = self.connection.get(self._name("meta"), [_STATE], ["value"])
        return rows[0]["value"] if rows else None

    def _write_state(
        self, epoch: str, manifest: Manifest, trash: list[list[Any]], retired: list[list[Any]]
    ) -> None:
        value = {
            "manifest": manifest.model_dump(mode="json"),
            "epoch": epoch,
            "stamp": secrets.token_hex(8),
            "trash": trash,
            "retired": retired,
        }
        self.connection.upsert(self._name("meta"), [{"key": _STATE, "value": value, "v": DUMMY}])

    def _create_epoch(self, epoch: str, manifest: Manifest) -> None:
        hnsw = {"m": VECTOR_SPEC.m, "ef_construction": VECTOR_SPEC.ef_construction}
        for kind, schema, index in (
            ("documents", documents_schema(), None),
            ("texts", texts_schema(), None),
            ("chunks", chunks_schema(manifest.dimension), vector_indexes(**hnsw, sparse=True)),
            ("sentences", sentences_schema(manifest.dimension), vector_indexes(**hnsw, sparse=False)),
        ):
            self.connection.create_collection(self._name(kind, epoch), schema, index)

    def _tidy(self, view: _View, now: float) -> tuple[list[list[Any]], list[list[Any]]]:
        """Remove what is past its grace (superseded rows, replaced sets of collections); return the trash
        and the retired sets still within it."""
        trash = [entry for entry in view.trash if not self._purged(entry, now)]
        retired = []
        for epoch, at in view.retired:
            if now - at < GRACE_S:
                retired.append([epoch, at])
                continue
            for kind in KINDS:
                self.connection.drop_collection(self._name(kind, epoch))
        return trash, retired

    def _purged(self, entry: list[Any], now: float) -> bool:
        """Remove a superseded generation's rows once its grace is over; whether it was."""
        _, generation, at = entry
        if now - at < GRACE_S:
            return False
        for kind in ("texts", "chunks", "sentences"):
            self.connection.delete(self._name(kind), f"generation == {literal(int(generation))}")
        return True

    def _remove_rows(self, doc_id: str, keep: list[int]) -> None:
        expression = f"doc_id == {literal(doc_id)}"
        if keep:
            expression += f" and generation not in [{', '.join(literal(int(g)) for g in keep)}]"
        for kind in ("texts", "chunks", "sentences"):
            self.connection.delete(self._name(kind), expression)

    def _write_rows(self, epoch: str, item: IndexedDocument, position: int) -> dict[str, Any]:
        """Write a document's text parts, chunks and sentences under a new generation; return its document
        row (the commit, written by the caller after every row of the batch)."""
        document = item.document
        generation = secrets.randbits(GENERATION_BITS) or 1
        base = generation << POSITION_BITS
        if (
            max(len(item.chunks), len(item.sentences), len(document.text) // PART_CHARS + 1)
            >= 1 << POSITION_BITS
        ):
            raise ValueError(
                f"{document.doc_id}: more than {1 << POSITION_BITS} chunks, sentences or text parts."
            )
        section = document.section or ""
        texts = [
            document.text[start : start + PART_CHARS] for start in range(0, len(document.text), PART_CHARS)
        ]
        self.connection.insert(
            self._name("texts", epoch),
            [
                {
                    "id": base + part,
                    "doc_id": document.doc_id,
                    "generation": generation,
                    "part": part,
                    "text": text,
                    "v": DUMMY,
                }
                for part, text in enumerate(texts or [""])
            ],
        )
        # Chunk by chunk, so that each chunk's sentences get consecutive ids (as the local store's).
        order = sorted(range(len(item.sentences)), key=lambda i: item.sentences[i].chunk_index)
        sentence_id = {i: base + rank for rank, i in enumerate(order)}
        first: dict[int, int] = {}
        count: dict[int, int] = {}
        for i in order:
            chunk_index = item.sentences[i].chunk_index
            first.setdefault(chunk_index, sentence_id[i])
            count[chunk_index] = count.get(chunk_index, 0) + 1
        self.connection.insert(
            self._name("chunks", epoch),
            [
                {
                    "id": base + chunk.chunk_index,
                    "doc_id": document.doc_id,
                    "generation": generation,
                    "section": section,
                    "char_start": chunk.char_start,
                    "char_end": chunk.char_end,
                    "page": _no_page(chunk.page),
                    "chunk_index": chunk.chunk_index,
                    "text": chunk.text,
                    "first_sentence": first.get(chunk.chunk_index, 0),
                    "sentences": count.get(chunk.chunk_index, 0),
                    "keywords": fit_bytes(" ".join(terms)),
                    "dense": vector.tolist(),
                }
                for chunk, terms, vector in zip(
                    item.chunks, item.chunk_terms, item.chunk_vectors, strict=True
                )
            ],
        )
        self.connection.insert(
            self._name("sentences", epoch),
            [
                {
                    "id": sentence_id[i],
                    "doc_id": document.doc_id,
                    "generation": generation,
                    "section": section,
                    "char_start": span.char_start,
                    "char_end": span.char_end,
                    "page": _no_page(document.page_at(span.char_start)),
                    "chunk_id": base + span.chunk_index,
                    "dense": item.sentence_vectors[i].tolist(),
                }
                for i, span in enumerate(item.sentences)
            ],
        )
        distinct = {term for terms in item.chunk_terms for term in terms}
        info = {
            "title": document.title,
            "section": document.section,
            "date": document.date,
            "source": document.source,
            "url": document.url,
            "page_map": [entry.model_dump() for entry in document.page_map],
            "content_hash": item.content_hash,
            "terms": len(distinct),
            "chinese_terms": sum(1 for term in distinct if has_chinese(term)),
            "length": sum(len(terms) for terms in item.chunk_terms),
            "empty": sum(1 for terms in item.chunk_terms if not terms),
        }
        return {
            "id": document_key(document.doc_id),
            "doc_id": document.doc_id,
            "generation": generation,
            "position": position,
            "chunks": len(item.chunks),
            "info": info,
            "v": DUMMY,
        }

    def _stored(self, doc: _Doc) -> StoredDocument:
        parts = self.connection.query(
            self._name("texts"),
            f"doc_id == {literal(doc.doc_id)} and generation == {literal(doc.generation)}",
            ["part", "text"],
        )
        info = doc.info
        return StoredDocument(
            document=Document(
                doc_id=doc.doc_id,
                title=info["title"],
                text="".join(row["text"] for row in sorted(parts, key=lambda row: row["part"])),
                source=info["source"],
                section=info["section"],
                date=info["date"],
                url=info["url"],
                page_map=[PageStart(**entry) for entry in info["page_map"]],
            ),
            content_hash=info["content_hash"],
        )

    def _ordered(self) -> list[_Doc]:
        return sorted(self._viewed().documents.values(), key=lambda doc: doc.position)

    def _live_ids(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """The ids of the (queried) rows that are live: of their document's committed generation in this
        snapshot, which every row's id holds (its generation << POSITION_BITS, plus its position)."""
        ids = np.array([row["id"] for row in rows], dtype=np.int64)
        return ids[self._is_live(ids)]

    def _is_live(self, ids: np.ndarray) -> np.ndarray:
        generations = self._viewed().generations
        return np.array([int(i) >> POSITION_BITS in generations for i in ids.tolist()], dtype=bool)

    def _scope(self, allowed: np.ndarray | None, kind: str) -> str:
        """The filter expression restricting a search of `kind` to the chunks `allowed`: the one that
        found them, if `allowed_chunks` did, else their ids."""
        if allowed is None:
            return ""
        ids = np.unique(np.asarray(allowed, dtype=np.int64))
        known = self._viewed().scopes.get(ids.tobytes())
        if known is not None:
            return known
        return in_list("id" if kind == "chunks" else "chunk_id", ids.tolist())

    def _nearest(
        self, kind: str, query: np.ndarray, k: int, allowed: np.ndarray | None, fields: list[str]
    ) -> list[dict[str, Any]]:
        """The `k` live rows closest to `query`. Asked for `k` first: milvus-lite builds every hit from its
        whole row, about 0.1 ms each, the better part of a search's time. Where superseded rows (still in
        their grace) or a killed write's took places, asked again for twice as many, and so on. The beam is
        that of `2 k` whatever the limit, so the same rows come back as from a search asked for `2 k`."""
        if allowed is not None and not len(allowed):
            return []
        params = {
            "metric_type": "COSINE",
            "params": {"ef": max(min(2 * k, MAX_LIMIT), VECTOR_SPEC.ef_search)},
        }
        limit = min(k, MAX_LIMIT)
        while True:
            params["params"]["ef"] = max(params["params"]["ef"], limit)
            (hits,), complete = self._search_live(
                kind,
                [np.asarray(query, dtype=np.float32).tolist()],
                "dense",
                limit,
                fields,
                self._scope(allowed, kind),
                params,
            )
            if len(hits) >= k or complete[0] or limit >= MAX_LIMIT:
                return hits[:k]
            limit = min(2 * limit, MAX_LIMIT)

    def _search_live(
        self,
        kind: str,
        data: list[Any],
        field_name: str,
        limit: int,
        fields: list[str],
        expression: str,
        params: dict[str, Any] | None = None,
    ) -> tuple[list[list[dict[str, Any]]], list[bool]]:
        """Each query's hits whose rows are of their document's committed generation, best first, and
        whether it had fewer hits than `limit` (all there are, live or not). A search names at least one
        field: milvus-lite answers every field (vectors too) to one naming none."""
        found = self.connection.search(
            self._name(kind), data, field_name, limit, fields or ["generation"], expression, params
        )
        live = [
            [hit for hit, ok in zip(hits, self._is_live(_ids(hits)), strict=True) if ok] for hits in found
        ]
        return live, [len(hits) < limit for hits in found]

    def _chunks(self, chunk_ids: Sequence[int] | np.ndarray) -> dict[int, Row]:
        """Chunk rows by id, kept once read (index.milvus.rows): the caller's ids are live in its snapshot."""
        name = self._name("chunks")
        return self._chunk_rows.get(
            name, [int(i) for i in chunk_ids], lambda ids: self._read(name, ids, _CHUNK_FIELDS)
        )

    def _sentences(self, sentence_ids: Sequence[int]) -> dict[int, Row]:
        name = self._name("sentences")
        return self._sentence_rows.get(
            name, sentence_ids, lambda ids: self._read(name, ids, _SENTENCE_FIELDS)
        )

    def _read(self, name: str, ids: list[int], fields: list[str]) -> list[Row]:
        rows = self.connection.get(name, ids, fields)
        for row in rows:
            # Kept as they are used: a vector as an array, the keywords as counted terms.
            row["dense"] = np.asarray(row["dense"], dtype=np.float32)
            if "keywords" in row:
                row["terms"] = chunk_terms_of(row.pop("keywords"))
        return rows

    def _chunk_terms(self, chunk_ids: np.ndarray) -> list[Counter[str]]:
        rows = self._chunks(chunk_ids)
        return [rows[int(i)]["terms"] for i in chunk_ids]

    def _holders(self, terms: Sequence[str]) -> dict[str, Holders]:
        """Which live chunks hold each term: those not known since the state was read found by Milvus's
        BM25, then checked against the chunks' stored terms (index.milvus.keywords.checked)."""
        known = self._viewed().holders
        found = {term: known[term] for term in terms if term in known}
        missing = [term for term in dict.fromkeys(terms) if term not in found]
        if missing:
            found.update(structured.checked(*self._matches(missing), self._chunk_terms))
            # Searches of one state share these: a full cache starts afresh.
            if sum(holders.ids.size for holders in list(known.values())) > HOLDERS_KEPT:
                known.clear()
            known.update((term, found[term]) for term in missing)
        return {term: found[term] for term in terms}

    def _matches(self, terms: list[str]) -> tuple[dict[str, np.ndarray], dict[str, bool]]:
        """The live chunks BM25 matches for each term, and whether they are all of them. First one query of
        every term: milvus-lite builds each hit from its whole row (0.1-0.3 ms), so a chunk matching several
        terms is built once, not once per term; if it matches all there are, few enough to check, each
        term's holders are among them. Otherwise one query per term, each up to MAX_LIMIT matches."""
        (hits,), (complete,) = self._search_live("chunks", [" ".join(terms)], "sparse", MAX_LIMIT, [], "")
        if complete and len(hits) <= structured.SCORED_MAX:
            matched = np.sort(_ids(hits))
            return dict.fromkeys(terms, matched), dict.fromkeys(terms, True)
        hits, each_complete = self._search_live("chunks", terms, "sparse", MAX_LIMIT, [], "")
        matches = {term: np.sort(_ids(each)) for term, each in zip(terms, hits, strict=True)}
        return matches, dict(zip(terms, each_complete, strict=True))

    def _totals(self) -> Totals:
        """BM25's statistics over the committed documents, from their rows (a document written before they
        were kept there: from its chunks' stored terms)."""
        view = self._viewed()
        if view.totals is None:
            length = empty = 0
            for doc in view.documents.values():
                if "length" not in doc.info:
                    rows = self.connection.query(
                        self._name("chunks"),
                        f"doc_id == {literal(doc.doc_id)} and generation == {literal(doc.generation)}",
                        ["keywords"],
                    )
                    counts = [sum(chunk_terms_of(row["keywords"]).values()) for row in rows]
                    length, empty = length + sum(counts), empty + counts.count(0)
                    continue
                length, empty = length + doc.info["length"], empty + doc.info["empty"]
            view.totals = Totals(view.chunk_total, length, empty)
        return view.totals


def _remember(cache: dict[Any, Any], key: Any, value: Any, most: int) -> None:
    """Keep `value` under `key`, forgetting the oldest entry past `most`."""
    cache[key] = value
    if len(cache) > most:
        cache.pop(next(iter(cache)), None)


def _new_epoch() -> str:
    return f"e{secrets.token_hex(4)}"


def _ids(hits: Sequence[dict[str, Any]]) -> np.ndarray:
    return np.array([hit["id"] for hit in hits], dtype=np.int64)


def _scores(hits: Sequence[dict[str, Any]]) -> np.ndarray:
    return np.array([hit["distance"] for hit in hits], dtype=np.float32)


def _joined(chunk: dict[str, Any], doc: _Doc) -> dict[str, Any]:
    """A chunk's row with what a citation shows of its document (index.storage.documents.chunk_hit)."""
    shown = {key: doc.info[key] for key in ("title", "section", "source")}
    return {**chunk, "page": _page(chunk["page"]), **shown}


def _page(value: int) -> int | None:
    return None if value < 0 else int(value)


def _no_page(page: int | None) -> int:
    return -1 if page is None else page
