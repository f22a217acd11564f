"""What only the local backend has: vector files saved at checkpoints and caught up from the log, the
folder's write lock, vector indexes chosen by size, format upgrades. The behaviour every backend shares is
tests/index/test_store.py's."""

from __future__ import annotations

import contextlib
import fcntl
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import index.storage.vectors as vectors_module
from index.chunking import Chunker, matching_text, sentence_spans
from index.ingest import Indexer
from index.search import Searcher
from index.storage.documents import LOCK_FILE, IndexedDocument, Write
from index.storage.vectors import DEFAULT_HNSW_SPEC, ivf_spec
from index.store import FORMAT_2_FILES, FORMAT_VERSION, VECTOR_FILES, IndexStore, Manifest
from index.text import terms
from tests.conftest import make_document, manifest_for
from tests.fakes import FakeEncoder
from tests.index.test_store import CHIPS, CHURNED, CLOUD


@pytest.fixture(params=["flat", "ivf", "hnsw"], ids=["flat vectors", "ivf vectors", "hnsw vectors"])
def manifest(request: pytest.FixtureRequest, fake_encoder: FakeEncoder, chunker: Chunker) -> Manifest:
    """Each test runs with exact (flat) indexes and with IVF and HNSW ones, forced at any size (the manifest
    of a new index is stored as given)."""
    return manifest_for(fake_encoder, chunker).model_copy(update={"index_kind": request.param})


@pytest.fixture
def store(tmp_path: Path, manifest: Manifest) -> Iterator[IndexStore]:
    opened = IndexStore.open(tmp_path / "index", manifest)
    yield opened
    opened.close()


def test_a_commit_does_not_rewrite_the_vector_files(
    manifest: Manifest, tmp_path: Path, fake_encoder, chunker
) -> None:
    # The files are checkpoints: saved once the changes since reach a share of the index, and on close.
    store = IndexStore.open(tmp_path / "idx", manifest)
    Indexer(store, fake_encoder, chunker).add([CLOUD])
    assert not any((tmp_path / "idx" / name).exists() for name in VECTOR_FILES.values())
    store.checkpoint()
    saved = {name: (tmp_path / "idx" / name).read_bytes() for name in VECTOR_FILES.values()}
    Indexer(store, fake_encoder, chunker).add([CHIPS])
    assert {name: (tmp_path / "idx" / name).read_bytes() for name in VECTOR_FILES.values()} == saved
    store.close()
    assert {name: (tmp_path / "idx" / name).read_bytes() for name in VECTOR_FILES.values()} != saved


def test_vector_files_older_than_the_rows_are_caught_up_from_the_log(
    manifest: Manifest, tmp_path: Path, fake_encoder, chunker
) -> None:
    # As after a crash between a commit and the next checkpoint: the files hold an older generation.
    writer = IndexStore.open(tmp_path / "idx", manifest)
    indexer = Indexer(writer, fake_encoder, chunker)
    indexer.add([CLOUD, CHIPS])
    writer.checkpoint()
    writer.delete(CLOUD.doc_id)
    indexer.add([CHURNED[0]])
    # Opened while the writer has saved nothing since (a killed writer would leave the same files).
    reopened = IndexStore.open(tmp_path / "idx", manifest)
    assert reopened.vector_counts() == writer.vector_counts()
    found = Searcher(reopened, fake_encoder).search("量子计算原型机", top_k=5).passages
    assert {p.citation.doc_id for p in found} == {CHIPS.doc_id, CHURNED[0].doc_id}
    assert found[0].citation.doc_id == CHURNED[0].doc_id
    reopened.close()
    writer.close()


def test_a_search_does_not_wait_for_a_write_that_waits_for_another_process_s_lock(
    indexer: Indexer, store: IndexStore, fake_encoder: FakeEncoder
) -> None:
    indexer.add([CLOUD, CHIPS])
    store.lock_timeout_s = 10.0
    with open(store.directory / LOCK_FILE, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a `citeqa ingest` in another process would
        deleting = threading.Thread(target=store.delete, args=(CHIPS.doc_id,))
        deleting.start()
        time.sleep(0.3)  # the delete is now waiting for the lock
        started = time.perf_counter()
        found = Searcher(store, fake_encoder).search("晶圆代工", top_k=1).passages
        took = time.perf_counter() - started
        fcntl.flock(held, fcntl.LOCK_UN)
    deleting.join(timeout=30)
    assert took < 2.0
    assert found[0].citation.doc_id == CHIPS.doc_id  # searched before the delete could start
    assert store.find_document(CHIPS.doc_id) is None  # which then went through


def test_vector_files_the_log_no_longer_reaches_back_to_are_reconciled_with_the_rows(
    manifest: Manifest, tmp_path: Path, fake_encoder: FakeEncoder, chunker: Chunker
) -> None:
    # Files restored from an older save after later checkpoints pruned the log (or files written by a
    # process ahead of the reader's snapshot): the ids they hold are compared with the rows instead.
    store = IndexStore.open(tmp_path / "idx", manifest)
    Indexer(store, fake_encoder, chunker).add([CLOUD, CHIPS])
    store.checkpoint()
    older = {name: (tmp_path / "idx" / name).read_bytes() for name in VECTOR_FILES.values()}
    store.delete(CHIPS.doc_id)
    store.close()  # saves, and forgets the log up to now
    for name, content in older.items():  # the files hold CHIPS again
        (tmp_path / "idx" / name).write_bytes(content)
    reopened = IndexStore.open(tmp_path / "idx", manifest)
    found = Searcher(reopened, fake_encoder).search("晶圆代工", top_k=5).passages
    assert {p.citation.doc_id for p in found} == {CLOUD.doc_id}
    assert reopened.vector_counts() == {"chunks": 1, "sentences": 2}
    reopened.close()


def test_unreadable_vector_files_are_rebuilt_from_the_stored_vectors(
    manifest: Manifest, tmp_path: Path, fake_encoder: FakeEncoder, chunker: Chunker
) -> None:
    store = IndexStore.open(tmp_path / "idx", manifest)
    Indexer(store, fake_encoder, chunker).add([CLOUD, CHIPS])
    store.close()
    (tmp_path / "idx" / VECTOR_FILES["chunks"]).write_bytes(b"not a vector file")
    (tmp_path / "idx" / VECTOR_FILES["sentences"]).unlink()
    reopened = IndexStore.open(tmp_path / "idx", manifest)
    assert (
        Searcher(reopened, fake_encoder).search("晶圆代工", top_k=1).passages[0].citation.doc_id
        == CHIPS.doc_id
    )
    reopened.close()


def test_a_write_transaction_failing_midway_leaves_the_store_as_it_was_and_ready_for_the_next_write(
    indexer: Indexer, store: IndexStore, fake_encoder: FakeEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexer.add([CLOUD])
    before = (store.counts(), store.vector_counts(), store.generation)
    write_documents = IndexStore._write_documents

    def failing_after_writing(self: IndexStore, write: Write, items: list[IndexedDocument]) -> None:
        write_documents(self, write, items)  # the rows are written inside the transaction, then it fails
        raise RuntimeError("disk full")

    monkeypatch.setattr(IndexStore, "_write_documents", failing_after_writing)
    with pytest.raises(RuntimeError, match="disk full"):
        indexer.add([CHIPS])
    assert (store.counts(), store.vector_counts(), store.generation) == before
    assert store.find_document(CHIPS.doc_id) is None

    monkeypatch.undo()
    assert [r.status for r in indexer.add([CHIPS])] == ["added"]
    found = Searcher(store, fake_encoder).search("晶圆代工", top_k=2).passages
    assert [p.citation.doc_id for p in found] == [CHIPS.doc_id, CLOUD.doc_id]


# -- the vector index chosen by size ---------------------------------------------------------------

MANY = [
    make_document(f"第{i}篇", f"第{i}篇文章说，某地第{i}季度的产值增长了{i}个百分点。政策支持第{i}个产业。")
    for i in range(30)
]


def _stored_manifest(directory: Path) -> Manifest:
    with sqlite3.connect(directory / "citeqa.sqlite3") as db:
        return Manifest.model_validate_json(
            db.execute("SELECT value FROM meta WHERE key = 'manifest'").fetchone()[0]
        )


def test_past_the_measured_size_the_vector_indexes_become_approximate_and_below_half_of_it_flat_again(
    tmp_path: Path, fake_encoder: FakeEncoder, chunker: Chunker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The threshold scaled down from 50,000 vectors of 384 dimensions to 15 of the fake encoder's 64.
    monkeypatch.setattr(vectors_module, "FLAT_MAX_SCALARS", 15 * fake_encoder.dimension)
    manifest = manifest_for(fake_encoder, chunker)
    store = IndexStore.open(tmp_path / "idx", manifest)
    indexer = Indexer(store, fake_encoder, chunker)
    indexer.add(MANY[:10])
    assert store.vector_counts()["chunks"] < 15 < store.vector_counts()["sentences"]
    store.checkpoint()  # a checkpoint refits each index to its size
    specs = store.vector_specs()
    assert (specs["chunks"].kind, specs["sentences"]) == (
        "flat",
        DEFAULT_HNSW_SPEC.model_copy(update={"storage": "sq8"}),
    )
    assert _stored_manifest(tmp_path / "idx").vector_indexes == specs  # recorded with its parameters
    indexer.add(MANY[10:])
    store.close()

    reopened = IndexStore.open(tmp_path / "idx", manifest)  # loading refits too
    assert reopened.vector_specs()["chunks"] == ivf_spec(reopened.vector_counts()["chunks"])
    searcher = Searcher(reopened, fake_encoder)
    for document in (MANY[3], MANY[17], MANY[29]):
        assert searcher.search(document.text[:20], top_k=1).passages[0].citation.doc_id == document.doc_id
    for document in MANY[:27]:
        reopened.delete(document.doc_id)
    reopened.checkpoint()
    assert {spec.kind for spec in reopened.vector_specs().values()} == {"flat"}
    assert searcher.search(MANY[28].text[:20], top_k=1).passages[0].citation.doc_id == MANY[28].doc_id
    reopened.close()


def test_a_reindex_can_force_the_kind_of_vector_index_whatever_the_size(
    tmp_path: Path, fake_encoder: FakeEncoder, chunker: Chunker
) -> None:
    manifest = manifest_for(fake_encoder, chunker)
    store = IndexStore.open(tmp_path / "idx", manifest)
    indexer = Indexer(store, fake_encoder, chunker)
    indexer.add([CLOUD, CHIPS])
    assert {spec.kind for spec in store.vector_specs().values()} == {"flat"}
    indexer.reindex(index_kind="ivf")
    assert {spec.kind for spec in store.vector_specs().values()} == {"ivf"}
    indexer.reindex(index_kind="hnsw")
    assert {spec.kind for spec in store.vector_specs().values()} == {"hnsw"}
    indexer.add(MANY[:3])  # later writes keep the forced kind
    store.close()
    reopened = IndexStore.open(tmp_path / "idx", manifest)
    assert reopened.manifest.index_kind == "hnsw"
    assert {spec.kind for spec in reopened.vector_specs().values()} == {"hnsw"}
    assert (
        Searcher(reopened, fake_encoder).search("晶圆代工", top_k=1).passages[0].citation.doc_id
        == CHIPS.doc_id
    )
    Indexer(reopened, fake_encoder, chunker).reindex(index_kind="auto")
    assert {spec.kind for spec in reopened.vector_specs().values()} == {"flat"}
    reopened.close()


@pytest.mark.parametrize(("kind", "parameter"), [("hnsw", "ef_search"), ("ivf", "nprobe")])
def test_the_search_beam_of_approximate_indexes_can_be_widened_without_a_rebuild(
    tmp_path: Path, fake_encoder: FakeEncoder, chunker: Chunker, kind: str, parameter: str
) -> None:
    store = IndexStore.open(
        tmp_path / "idx", manifest_for(fake_encoder, chunker).model_copy(update={"index_kind": kind})
    )
    Indexer(store, fake_encoder, chunker).add([CLOUD, CHIPS])
    before = store.vector_specs()
    store.tune_search(**{parameter: 1024})
    after = store.vector_specs()
    assert {getattr(spec, parameter) for spec in after.values()} == {1024}
    assert {kind: spec.model_copy(update={parameter: 0}) for kind, spec in after.items()} == {
        kind: spec.model_copy(update={parameter: 0}) for kind, spec in before.items()
    }
    assert (
        Searcher(store, fake_encoder).search("晶圆代工", top_k=1).passages[0].citation.doc_id == CHIPS.doc_id
    )
    store.close()


# -- an index of the previous format ------------------------------------------------------------------

FORMAT_2_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, section TEXT, date TEXT,
    source TEXT NOT NULL, url TEXT, text TEXT NOT NULL, page_map TEXT NOT NULL, content_hash TEXT NOT NULL,
    position INTEGER NOT NULL);
CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT NOT NULL REFERENCES documents(doc_id)
    ON DELETE CASCADE, chunk_index INTEGER NOT NULL, text TEXT NOT NULL, char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL, page INTEGER, terms TEXT NOT NULL, vector BLOB NOT NULL);
CREATE TABLE sentences (id INTEGER PRIMARY KEY AUTOINCREMENT, chunk_id INTEGER NOT NULL REFERENCES chunks(id)
    ON DELETE CASCADE, char_start INTEGER NOT NULL, char_end INTEGER NOT NULL, page INTEGER,
    vector BLOB NOT NULL);
"""


def _write_format_2_index(directory: Path, encoder: FakeEncoder, chunker: Chunker) -> None:
    """An index as format 2 wrote it: each chunk's terms in its row, whole FAISS files beside."""
    directory.mkdir()
    with contextlib.closing(sqlite3.connect(directory / "citeqa.sqlite3")) as db, db:
        db.executescript(FORMAT_2_SCHEMA)
        manifest = manifest_for(encoder, chunker).model_dump(include={"model", "dimension", "chunking"})
        db.execute(
            "INSERT INTO meta VALUES ('manifest', ?)", (json.dumps({**manifest, "format_version": 2}),)
        )
        db.execute("INSERT INTO meta VALUES ('generation', '3')")
        for position, document in enumerate([CLOUD, CHIPS]):
            db.execute(
                "INSERT INTO documents VALUES (?, ?, ?, NULL, ?, NULL, ?, '[]', 'old', ?)",
                (document.doc_id, document.title, document.section, document.source, document.text, position),
            )
            for chunk in chunker.split(document):
                chunk_id = db.execute(
                    "INSERT INTO chunks (doc_id, chunk_index, text, char_start, char_end, page, terms, vector) "
                    "VALUES (?, ?, ?, ?, ?, NULL, ?, ?)",
                    (
                        document.doc_id,
                        chunk.chunk_index,
                        chunk.text,
                        chunk.char_start,
                        chunk.char_end,
                        json.dumps(terms(matching_text(document, chunk)), ensure_ascii=False),
                        encoder.encode_passages([chunk.text])[0].tobytes(),
                    ),
                ).lastrowid
                for span in sentence_spans(chunk):
                    text = document.text[span.char_start : span.char_end]
                    db.execute(
                        "INSERT INTO sentences (chunk_id, char_start, char_end, page, vector) VALUES (?, ?, ?, NULL, ?)",
                        (
                            chunk_id,
                            span.char_start,
                            span.char_end,
                            encoder.encode_passages([text])[0].tobytes(),
                        ),
                    )
    for name in FORMAT_2_FILES:
        (directory / name).write_bytes(b"format 2")


def test_an_index_of_format_2_is_upgraded_in_place_and_searched_as_before(
    tmp_path: Path, fake_encoder: FakeEncoder, chunker: Chunker
) -> None:
    _write_format_2_index(tmp_path / "idx", fake_encoder, chunker)
    store = IndexStore.open(tmp_path / "idx", manifest_for(fake_encoder, chunker))
    assert store.manifest.format_version == FORMAT_VERSION
    assert not any((tmp_path / "idx" / name).exists() for name in FORMAT_2_FILES)
    assert [document.doc_id for document in store.list_documents()] == [CLOUD.doc_id, CHIPS.doc_id]
    searcher = Searcher(store, fake_encoder)
    found = searcher.search("晶圆代工产能", top_k=1, mode="lexical").passages  # the keywords came along
    assert found[0].citation.doc_id == CHIPS.doc_id
    assert searcher.search("公有云收入", top_k=1, mode="dense").passages[0].citation.doc_id == CLOUD.doc_id
    Indexer(store, fake_encoder, chunker).add([CHURNED[1]])  # and it takes new documents
    store.close()
    reopened = IndexStore.open(tmp_path / "idx", manifest_for(fake_encoder, chunker))
    assert reopened.counts()[0] == 3
    assert (
        Searcher(reopened, fake_encoder).search("面板出货", top_k=1).passages[0].citation.doc_id
        == CHURNED[1].doc_id
    )
    reopened.close()


def test_an_index_of_format_3_is_given_its_chunks_term_frequencies_and_searched_as_before(
    tmp_path: Path, fake_encoder: FakeEncoder, chunker: Chunker
) -> None:
    directory = tmp_path / "idx"
    store = IndexStore.open(directory, manifest_for(fake_encoder, chunker))
    Indexer(store, fake_encoder, chunker).add([CLOUD, CHIPS, *CHURNED])
    question = "晶圆代工产能紧张"
    before = Searcher(store, fake_encoder).search(question, top_k=3)
    store.close()
    # What format 3 stored: no frequencies in the chunks' keyword rows.
    with contextlib.closing(sqlite3.connect(directory / "citeqa.sqlite3")) as db, db:
        db.execute("ALTER TABLE keyword_chunks DROP COLUMN frequencies")
        stored = _stored_manifest(directory).model_copy(update={"format_version": 3})
        db.execute("UPDATE meta SET value = ? WHERE key = 'manifest'", (stored.model_dump_json(),))
    reopened = IndexStore.open(directory, manifest_for(fake_encoder, chunker))
    assert reopened.manifest.format_version == FORMAT_VERSION == 4
    # Every chunk's keyword row is read when all of a question's words but its rarest are looked up.
    reopened._keywords.read_budget = 1
    after = Searcher(reopened, fake_encoder).search(question, top_k=3)
    assert [p.citation for p in after.passages] == [p.citation for p in before.passages]
    assert [p.score for p in after.passages] == pytest.approx([p.score for p in before.passages], rel=1e-4)
    reopened.close()
