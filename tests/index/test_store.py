from __future__ import annotations

import contextlib
import fcntl
import json
import sqlite3
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import index.storage.vectors as vectors_module
from citeqa.errors import DocumentNotFound, IndexModelMismatch
from index.chunking import Chunker, matching_text, sentence_spans
from index.ingest import Indexer
from index.search import Searcher, SearchFilters
from index.storage.documents import LOCK_FILE, IndexedDocument, Write
from index.storage.vectors import DEFAULT_HNSW_SPEC, ivf_spec
from index.store import FORMAT_2_FILES, FORMAT_VERSION, VECTOR_FILES, IndexStore, Manifest
from index.text import terms
from tests.conftest import make_document, manifest_for
from tests.fakes import FakeEncoder


@pytest.fixture(params=["flat", "ivf", "hnsw"], ids=["flat vectors", "ivf vectors", "hnsw vectors"])
def manifest(request: pytest.FixtureRequest, fake_encoder: FakeEncoder, chunker: Chunker) -> Manifest:
    """The behaviour below holds whichever vector index the store uses: each test runs with exact (flat)
    indexes and with IVF and HNSW ones, forced at any size (the manifest of a new index is stored as
    given)."""
    return manifest_for(fake_encoder, chunker).model_copy(update={"index_kind": request.param})


@pytest.fixture
def store(tmp_path: Path, manifest: Manifest) -> Iterator[IndexStore]:
    opened = IndexStore.open(tmp_path / "index", manifest)
    yield opened
    opened.close()


CLOUD = make_document(
    "云服务市场驾云腾飞", "云服务市场规模持续扩大。公有云收入同比增长超过百分之四十。", page=17
)
CHIPS = make_document(
    "晶圆代工吃紧影响手机出货",
    "晶圆代工产能紧张，手机芯片供不应求。券商认为紧张或延续至明年。",
    section="技术情报",
    page=34,
)


def test_added_documents_are_listed_with_their_chunk_counts(
    indexer: Indexer, store: IndexStore, manifest: Manifest
) -> None:
    results = indexer.add([CLOUD, CHIPS])
    assert {spec.kind for spec in store.vector_specs().values()} == {manifest.index_kind}
    assert [r.status for r in results] == ["added", "added"]
    listed = store.list_documents()
    assert [(d.title, d.section, d.page) for d in listed] == [
        ("云服务市场驾云腾飞", "产业环境", 17),
        ("晶圆代工吃紧影响手机出货", "技术情报", 34),
    ]
    assert store.counts() == (2, sum(d.chunks for d in listed))
    assert store.sections() == ["产业环境", "技术情报"]


def test_search_returns_the_passage_sharing_words_with_the_question(
    indexer: Indexer, store, fake_encoder
) -> None:
    indexer.add([CLOUD, CHIPS])
    result = Searcher(store, fake_encoder).search("晶圆代工产能紧张吗", top_k=2)
    top = result.passages[0]
    assert top.citation.title == "晶圆代工吃紧影响手机出货"
    assert top.citation.page == 34
    assert CHIPS.text[top.citation.char_start : top.citation.char_end] == top.text
    assert [p.rank for p in result.passages] == [1, 2]


def test_ingesting_the_same_document_again_replaces_it(
    indexer: Indexer, store: IndexStore, fake_encoder
) -> None:
    indexer.add([CLOUD])
    assert [r.status for r in indexer.add([CLOUD])] == ["unchanged"]
    changed = CLOUD.model_copy(update={"text": "云服务市场规模翻番。"})
    assert [r.status for r in indexer.add([changed])] == ["updated"]
    assert store.counts() == (1, 1)
    assert store.get_document(CLOUD.doc_id).text == "云服务市场规模翻番。"
    found = Searcher(store, fake_encoder).search("云服务市场规模", top_k=5).passages
    assert [p.text for p in found] == ["云服务市场规模翻番。"]


def test_deleting_a_document_removes_its_vectors_from_search(indexer: Indexer, store, fake_encoder) -> None:
    indexer.add([CLOUD, CHIPS])
    store.delete(CHIPS.doc_id)
    found = Searcher(store, fake_encoder).search("晶圆代工", top_k=5).passages
    assert {p.citation.doc_id for p in found} == {CLOUD.doc_id}
    with pytest.raises(DocumentNotFound, match="No document with id"):
        store.delete(CHIPS.doc_id)
    with pytest.raises(DocumentNotFound, match="No document with id"):
        store.get_document(CHIPS.doc_id)


def test_index_persists_and_reopens_with_identical_search_results(
    manifest: Manifest, tmp_path: Path, fake_encoder: FakeEncoder, chunker: Chunker
) -> None:
    store = IndexStore.open(tmp_path / "idx", manifest)
    Indexer(store, fake_encoder, chunker).add([CLOUD, CHIPS])
    before = Searcher(store, fake_encoder).search("手机芯片", top_k=3).passages
    store.close()
    reopened = IndexStore.open(tmp_path / "idx", manifest)
    after = Searcher(reopened, fake_encoder).search("手机芯片", top_k=3).passages
    assert [p.model_dump() for p in after] == [p.model_dump() for p in before]
    reopened.close()


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


def test_opening_an_index_built_with_another_model_is_refused(tmp_path: Path, fake_encoder, chunker) -> None:
    IndexStore.open(tmp_path / "idx", manifest_for(fake_encoder, chunker)).close()
    other = Manifest(model="another-model", dimension=32, chunking=chunker.settings)
    with pytest.raises(IndexModelMismatch, match="Run `citeqa reindex`"):
        IndexStore.open(tmp_path / "idx", other)


def test_reindex_re_embeds_stored_documents_with_the_new_model(tmp_path: Path, fake_encoder, chunker) -> None:
    store = IndexStore.open(tmp_path / "idx", manifest_for(fake_encoder, chunker))
    Indexer(store, fake_encoder, chunker).add([CLOUD, CHIPS])
    store.close()
    new_encoder = FakeEncoder(dimension=32, name="another-model")
    new_chunker = Chunker(chunk_size=30, chunk_overlap=5)
    rebuilt = IndexStore.open(tmp_path / "idx", manifest_for(new_encoder, new_chunker), rebuild=True)
    results = Indexer(rebuilt, new_encoder, new_chunker).reindex()
    assert {r.doc_id for r in results} == {CLOUD.doc_id, CHIPS.doc_id}
    assert rebuilt.manifest.model == "another-model"
    assert rebuilt.counts()[1] > 2  # smaller chunks now
    rebuilt.close()
    IndexStore.open(tmp_path / "idx", manifest_for(new_encoder, new_chunker)).close()  # accepted now


def test_filters_restrict_results_to_sections_and_documents(indexer: Indexer, store, fake_encoder) -> None:
    indexer.add([CLOUD, CHIPS])
    searcher = Searcher(store, fake_encoder)
    by_section = searcher.search("市场", top_k=5, filters=SearchFilters(sections=["技术情报"])).passages
    assert {p.citation.section for p in by_section} == {"技术情报"}
    by_doc = searcher.search("市场", top_k=5, filters=SearchFilters(doc_ids=[CLOUD.doc_id])).passages
    assert {p.citation.doc_id for p in by_doc} == {CLOUD.doc_id}
    assert searcher.search("市场", filters=SearchFilters(sections=["没有这个栏目"])).passages == []


def test_identical_passages_from_different_articles_are_collapsed(
    indexer: Indexer, store, fake_encoder
) -> None:
    repeated = "今年我国数字经济规模预计超过一点六万亿元。"
    first = make_document("甲文章", repeated)
    second = make_document("乙文章", repeated)
    indexer.add([first, second, CLOUD])
    found = Searcher(store, fake_encoder).search("数字经济规模", top_k=3).passages
    assert [p.text for p in found].count(repeated) == 1
    assert len(found) == 2


def test_a_second_store_sees_writes_made_by_another_process(
    manifest: Manifest, tmp_path: Path, fake_encoder, chunker
) -> None:
    reader = IndexStore.open(tmp_path / "idx", manifest)
    writer = IndexStore.open(tmp_path / "idx", manifest)
    Indexer(writer, fake_encoder, chunker).add([CHIPS])
    found = Searcher(reader, fake_encoder).search("晶圆代工", top_k=1).passages
    assert found[0].citation.doc_id == CHIPS.doc_id
    reader.close()
    writer.close()


def test_vectors_of_the_wrong_dimension_are_rejected(store: IndexStore, chunker: Chunker) -> None:
    chunks = chunker.split(CLOUD)
    item = IndexedDocument(
        document=CLOUD,
        content_hash="hash",
        chunks=chunks,
        chunk_vectors=np.ones((len(chunks), 3), dtype=np.float32),
        chunk_terms=[[] for _ in chunks],
        sentences=[],
        sentence_vectors=np.zeros((0, 3), dtype=np.float32),
    )
    with pytest.raises(ValueError, match="dimension 3"):
        store.upsert([item])
    assert store.counts() == (0, 0)


# -- reads and writes at the same time ---------------------------------------------------------------

# Deleted and re-added over and over while searches run; distinct enough not to be collapsed as duplicates.
CHURNED = [
    make_document("量子计算原型机问世", "九章构建了七十六个光子的量子计算原型机，处理速度远超超级计算机。"),
    make_document("显示面板出货创新高", "第三季度全球智能手机面板出货量约为五亿片，达到单季度最高值。"),
    make_document("五G基站建设提速", "我国已建成五G基站超过七十万个，覆盖全国地级以上城市。"),
    make_document("工业互联网平台发展", "工业互联网平台连接设备数量持续增加，带动制造业数字化转型。"),
]
SEARCH_THREADS = 8
# The churn lasts CHURN_SECONDS, longer on a loaded machine until it has done MIN_CHURN_CYCLES and some
# search ran entirely while a document was gone (else the test would prove nothing), never past the limits.
CHURN_SECONDS = 1.0
MIN_CHURN_CYCLES = 5
CHURN_SECONDS_LIMIT = 10.0
MAX_CHURN_CYCLES = 400


@dataclass(frozen=True)
class _Observed:
    started: float
    ended: float
    doc_ids: frozenset[str]


def _searches_while_absent(
    observed: list[_Observed], absent: dict[str, list[tuple[float, float]]]
) -> list[tuple[_Observed, str]]:
    """Each search that started after a document's delete returned and ended before its re-add began."""
    return [
        (search, doc_id)
        for search in list(observed)
        for doc_id, spans in absent.items()
        for deleted, re_added in spans
        if deleted <= search.started and search.ended <= re_added
    ]


@pytest.mark.parametrize("writer_opens", ["the same store", "its own store, as another process would"])
def test_searches_while_documents_are_deleted_and_re_added_never_fail_nor_return_a_deleted_document(
    manifest: Manifest, tmp_path: Path, fake_encoder: FakeEncoder, chunker: Chunker, writer_opens: str
) -> None:
    store = IndexStore.open(tmp_path / "idx", manifest)
    writing_store = store if writer_opens == "the same store" else IndexStore.open(tmp_path / "idx", manifest)
    indexer = Indexer(writing_store, fake_encoder, chunker)
    indexer.add([CLOUD, CHIPS, *CHURNED])
    searcher = Searcher(store, fake_encoder)
    questions = ["量子计算原型机", "面板出货量", "五G基站", "工业互联网", "云服务市场", "晶圆代工"]
    observed: list[_Observed] = []
    errors: list[str] = []
    stop = threading.Event()

    def search_repeatedly(worker: int) -> None:
        count = 0
        while not stop.is_set():
            started = time.perf_counter()
            try:
                # top_k large enough that every document present can come back.
                result = searcher.search(questions[(worker + count) % len(questions)], top_k=20)
            except Exception:
                errors.append(traceback.format_exc())
                continue
            finally:
                count += 1
            ended = time.perf_counter()
            observed.append(_Observed(started, ended, frozenset(p.citation.doc_id for p in result.passages)))

    # (delete returned, re-add called) for each document: the spans in which it must not be found.
    absent: dict[str, list[tuple[float, float]]] = {document.doc_id: [] for document in CHURNED}
    threads = [threading.Thread(target=search_repeatedly, args=(i,)) for i in range(SEARCH_THREADS)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    cycles = 0

    def churn_more() -> bool:
        elapsed = time.perf_counter() - started
        if elapsed >= CHURN_SECONDS_LIMIT or cycles >= MAX_CHURN_CYCLES:
            return False
        if elapsed < CHURN_SECONDS:
            return True
        return cycles < MIN_CHURN_CYCLES or not _searches_while_absent(observed, absent)

    try:
        while churn_more():
            document = CHURNED[cycles % len(CHURNED)]
            writing_store.delete(document.doc_id)
            deleted = time.perf_counter()
            time.sleep(0.03)  # long enough for whole searches to run while it is gone
            re_added = time.perf_counter()
            indexer.add([document])
            absent[document.doc_id].append((deleted, re_added))
            cycles += 1
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    assert errors == [], (
        f"{len(errors)} of {len(observed) + len(errors)} searches failed; first:\n{errors[0]}"
    )
    inside_an_absence = _searches_while_absent(observed, absent)
    returned_while_deleted = [
        (search, doc_id) for search, doc_id in inside_an_absence if doc_id in search.doc_ids
    ]
    assert returned_while_deleted == []
    # The checks above were not vacuous: writes and searches did interleave.
    assert cycles >= MIN_CHURN_CYCLES
    assert len(inside_an_absence) > 0, (
        f"{cycles} cycles, {len(observed)} searches, none while a document was gone"
    )
    assert store.counts()[0] == 2 + len(CHURNED)
    if writing_store is not store:
        writing_store.close()
    store.close()


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
