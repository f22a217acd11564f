"""What a store does, whichever backend keeps it: each test runs on the local backend (with exact, IVF and
HNSW vector indexes, forced at any size) and on Milvus (a real `milvus-lite server`, marked `server` and
`milvus`). What only the local backend has is tests/index/test_store_local.py's."""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from citeqa.errors import DocumentNotFound, IndexModelMismatch
from index.backend import Store
from index.chunking import Chunker
from index.ingest import Indexer
from index.milvus.connection import Connection
from index.milvus.store import MilvusStore
from index.search import Searcher, SearchFilters
from index.storage.documents import IndexedDocument
from index.store import IndexStore, Manifest
from tests.conftest import make_document, manifest_for
from tests.fakes import FakeEncoder

MILVUS = pytest.param("milvus", marks=(pytest.mark.server, pytest.mark.milvus), id="milvus")


@dataclass(frozen=True)
class Backend:
    """Where a test's index lives: `open` opens it (again) there, as another process would."""

    open: Callable[..., Store]
    """(manifest, rebuild=False) -> an open store."""
    vector_kind: str
    """The kind of vector index its stores report."""
    pause_s: float
    """How long a document stays deleted in the churn test: long enough for whole searches to run."""


@pytest.fixture(
    params=[
        pytest.param("flat", id="flat vectors"),
        pytest.param("ivf", id="ivf vectors"),
        pytest.param("hnsw", id="hnsw vectors"),
        MILVUS,
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param != "milvus":
        kind = request.param

        def open_local(manifest: Manifest, rebuild: bool = False) -> Store:
            return IndexStore.open(
                tmp_path / "idx", manifest.model_copy(update={"index_kind": kind}), rebuild=rebuild
            )

        yield Backend(open_local, kind, 0.03)
        return
    connection = Connection(request.getfixturevalue("milvus_uri"))
    collection = f"test-{uuid.uuid4().hex[:12]}"

    def open_milvus(manifest: Manifest, rebuild: bool = False) -> Store:
        return MilvusStore.open(connection, collection, manifest, rebuild=rebuild)

    yield Backend(open_milvus, "hnsw", 0.5)
    MilvusStore.drop(connection, collection)
    connection.close()


@pytest.fixture
def manifest(fake_encoder: FakeEncoder, chunker: Chunker) -> Manifest:
    return manifest_for(fake_encoder, chunker)


@pytest.fixture
def store(backend: Backend, manifest: Manifest) -> Iterator[Store]:
    opened = backend.open(manifest)
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
    indexer: Indexer, store: Store, backend: Backend
) -> None:
    results = indexer.add([CLOUD, CHIPS])
    assert {spec.kind for spec in store.vector_specs().values()} == {backend.vector_kind}
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


def test_ingesting_the_same_document_again_replaces_it(indexer: Indexer, store: Store, fake_encoder) -> None:
    indexer.add([CLOUD])
    assert [r.status for r in indexer.add([CLOUD])] == ["unchanged"]
    changed = CLOUD.model_copy(update={"text": "云服务市场规模翻番。"})
    assert [r.status for r in indexer.add([changed])] == ["updated"]
    assert store.counts() == (1, 1)
    assert store.get_document(CLOUD.doc_id).text == "云服务市场规模翻番。"
    found = Searcher(store, fake_encoder).search("云服务市场规模", top_k=5).passages
    assert [p.text for p in found] == ["云服务市场规模翻番。"]


def test_a_document_given_twice_in_one_write_is_stored_once_as_its_later_copy(
    indexer: Indexer, store: Store, fake_encoder
) -> None:
    changed = CLOUD.model_copy(update={"text": "云服务市场规模翻番。"})
    indexer.add([CLOUD, changed, CHIPS])
    assert store.counts() == (2, 2)
    assert store.get_document(CLOUD.doc_id).text == changed.text
    found = Searcher(store, fake_encoder).search("云服务市场规模", top_k=5).passages
    assert "云服务市场规模翻番。" in [p.text for p in found]


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
    manifest: Manifest, backend: Backend, fake_encoder: FakeEncoder, chunker: Chunker
) -> None:
    store = backend.open(manifest)
    Indexer(store, fake_encoder, chunker).add([CLOUD, CHIPS])
    before = Searcher(store, fake_encoder).search("手机芯片", top_k=3).passages
    store.close()
    reopened = backend.open(manifest)
    after = Searcher(reopened, fake_encoder).search("手机芯片", top_k=3).passages
    assert [p.model_dump() for p in after] == [p.model_dump() for p in before]
    reopened.close()


def test_opening_an_index_built_with_another_model_is_refused(
    backend: Backend, fake_encoder, chunker
) -> None:
    backend.open(manifest_for(fake_encoder, chunker)).close()
    other = Manifest(model="another-model", dimension=32, chunking=chunker.settings)
    with pytest.raises(IndexModelMismatch, match="Run `citeqa reindex`"):
        backend.open(other)


def test_reindex_re_embeds_stored_documents_with_the_new_model(
    backend: Backend, fake_encoder, chunker
) -> None:
    store = backend.open(manifest_for(fake_encoder, chunker))
    Indexer(store, fake_encoder, chunker).add([CLOUD, CHIPS])
    store.close()
    new_encoder = FakeEncoder(dimension=32, name="another-model")
    new_chunker = Chunker(chunk_size=30, chunk_overlap=5)
    rebuilt = backend.open(manifest_for(new_encoder, new_chunker), rebuild=True)
    results = Indexer(rebuilt, new_encoder, new_chunker).reindex()
    assert {r.doc_id for r in results} == {CLOUD.doc_id, CHIPS.doc_id}
    assert rebuilt.manifest.model == "another-model"
    assert rebuilt.counts()[1] > 2  # smaller chunks now
    rebuilt.close()
    backend.open(manifest_for(new_encoder, new_chunker)).close()  # accepted now


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
    manifest: Manifest, backend: Backend, fake_encoder, chunker
) -> None:
    reader = backend.open(manifest)
    writer = backend.open(manifest)
    Indexer(writer, fake_encoder, chunker).add([CHIPS])
    found = Searcher(reader, fake_encoder).search("晶圆代工", top_k=1).passages
    assert found[0].citation.doc_id == CHIPS.doc_id
    reader.close()
    writer.close()


def test_a_document_longer_than_a_milvus_text_field_is_stored_and_read_back_exactly(
    indexer: Indexer, store: Store, fake_encoder: FakeEncoder
) -> None:
    # 4-byte characters on both sides of where a 16,383-character part of the text ends, 160 kB of UTF-8 in
    # all: more than a VARCHAR holds (65,535 bytes), split and joined back.
    sentence = "显示面板出货量创新高😀。"
    long = make_document("很长的文章", sentence * 6_000 + "最后一句说芯片供不应求。")
    indexer.add([long])
    assert len(long.text.encode()) > 2 * 65_535
    assert store.get_document(long.doc_id).text == long.text
    assert store.find_document(long.doc_id).document == long  # type: ignore[union-attr]
    top = Searcher(store, fake_encoder).search("芯片供不应求", top_k=1, mode="lexical").passages[0]
    assert long.text[top.citation.char_start : top.citation.char_end] == top.text
    assert "芯片供不应求" in top.text


def test_vectors_of_the_wrong_dimension_are_rejected(store: Store, chunker: Chunker) -> None:
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
ABSENCE_LIMIT_S = 5.0


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
    manifest: Manifest, backend: Backend, fake_encoder: FakeEncoder, chunker: Chunker, writer_opens: str
) -> None:
    store = backend.open(manifest)
    writing_store = store if writer_opens == "the same store" else backend.open(manifest)
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
            time.sleep(backend.pause_s)  # long enough for whole searches to run while it is gone
            # On a loaded machine a search can outlast the pause: the document stays away (a while at
            # most) until one search has run entirely while it was gone.
            while time.perf_counter() - deleted < ABSENCE_LIMIT_S and not any(
                search.started >= deleted for search in list(observed)
            ):
                time.sleep(0.01)
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
