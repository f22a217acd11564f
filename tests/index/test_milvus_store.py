"""What only the Milvus backend has to get right: writes that cannot half-land (per-document generations
committed by the document row), superseded rows kept for running searches then removed, milvus_collection names
Milvus accepts, literal filter expressions, and errors that name the setting to fix. The behaviour both
backends share is tests/index/test_store.py's."""

from __future__ import annotations

import uuid

import pytest

import index.milvus.store as milvus_store
from citeqa.errors import BackendUnavailable, IndexModelMismatch
from index.chunking import Chunker
from index.ingest import Indexer
from index.milvus.client import collection_name_of, collection_prefix, literal
from index.milvus.connection import Connection
from index.milvus.store import MilvusStore
from index.search import Searcher, SearchFilters
from tests.conftest import free_port, make_document, manifest_for
from tests.fakes import FakeEncoder
from tests.index.test_store import CHIPS, CLOUD

pytestmark = [pytest.mark.server, pytest.mark.milvus]


@pytest.fixture
def store(
    milvus_connection: Connection, milvus_collection: str, fake_encoder: FakeEncoder, chunker: Chunker
) -> MilvusStore:
    return MilvusStore.open(milvus_connection, milvus_collection, manifest_for(fake_encoder, chunker))


def _rows(store: MilvusStore, kind: str, doc_id: str) -> int:
    """Rows of one kind the document has in Milvus, whatever their generation."""
    with store.snapshot():
        name = store._name(kind)
    return len(store.connection.query(name, f"doc_id == {literal(doc_id)}", ["id"]))


def test_a_write_failing_before_its_document_row_leaves_the_previous_version_searchable(
    store: MilvusStore, indexer: Indexer, fake_encoder: FakeEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexer.add([CHIPS])
    changed = CHIPS.model_copy(update={"text": "晶圆代工产能今年翻了一番。手机芯片不再短缺。"})
    upsert = milvus_store.Connection.upsert

    def failing_on_documents(self: Connection, name: str, rows: list[dict]) -> None:
        if name.endswith("_documents"):
            raise RuntimeError("connection lost")  # every chunk and sentence is written, the commit is not
        upsert(self, name, rows)

    monkeypatch.setattr(milvus_store.Connection, "upsert", failing_on_documents)
    with pytest.raises(RuntimeError, match="connection lost"):
        indexer.add([changed])
    monkeypatch.undo()

    assert _rows(store, "chunks", CHIPS.doc_id) == 2  # the old version's chunk and the new one's
    assert store.get_document(CHIPS.doc_id).text == CHIPS.text
    found = Searcher(store, fake_encoder).search("晶圆代工产能", top_k=5).passages
    assert [p.text for p in found] == [CHIPS.text]
    # The next write of the document removes the rows the failed one left.
    assert [r.status for r in indexer.add([changed])] == ["updated"]
    assert store.get_document(CHIPS.doc_id).text == changed.text
    assert _rows(store, "chunks", CHIPS.doc_id) == 2  # the new version's, and the old one's for GRACE_S
    assert [p.text for p in Searcher(store, fake_encoder).search("晶圆代工产能", top_k=5).passages] == [
        changed.text
    ]


def test_rows_a_write_supersedes_stay_for_running_searches_then_a_later_write_removes_them(
    store: MilvusStore,
    indexer: Indexer,
    milvus_connection: Connection,
    milvus_collection: str,
    fake_encoder: FakeEncoder,
    chunker: Chunker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    indexer.add([CLOUD, CHIPS])
    changed = CHIPS.model_copy(update={"text": "晶圆代工产能今年翻了一番。"})
    other_process = MilvusStore.open(
        milvus_connection, milvus_collection, manifest_for(fake_encoder, chunker)
    )
    with store.snapshot():
        ids, _ = store.nearest_chunks(fake_encoder.encode_queries(["晶圆代工"])[0], 5)
        Indexer(other_process, fake_encoder, chunker).add([changed])
        # A search that began before the write reads the rows it saw then, whole.
        during = store.chunk_hits(ids, [0.0] * len(ids))
    assert {hit.chunk.text for hit in during} == {CLOUD.text, CHIPS.text}
    assert store.get_document(CHIPS.doc_id).text == changed.text
    assert _rows(store, "chunks", CHIPS.doc_id) == 2
    monkeypatch.setattr(milvus_store, "GRACE_S", 0.0)
    store.delete(CLOUD.doc_id)  # any later write removes what is past its grace
    assert _rows(store, "chunks", CHIPS.doc_id) == 1
    assert _rows(store, "sentences", CHIPS.doc_id) == 1
    assert _rows(store, "texts", CHIPS.doc_id) == 1
    store.delete(CHIPS.doc_id)
    panels = make_document("另一篇", "显示面板出货量创新高。")
    indexer.add([panels])
    assert (_rows(store, "chunks", CLOUD.doc_id), _rows(store, "chunks", CHIPS.doc_id)) == (0, 0)
    assert [d.doc_id for d in store.list_documents()] == [panels.doc_id]


def test_a_reindex_by_another_process_is_refused_by_this_one_s_next_search_but_not_by_a_running_one(
    store: MilvusStore,
    indexer: Indexer,
    milvus_connection: Connection,
    milvus_collection: str,
    fake_encoder: FakeEncoder,
    chunker: Chunker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    indexer.add([CLOUD, CHIPS])
    other_model = FakeEncoder(dimension=32, name="another-model")
    other_process = MilvusStore.open(
        milvus_connection, milvus_collection, manifest_for(other_model, chunker), rebuild=True
    )
    with store.snapshot():
        ids, _ = store.nearest_chunks(fake_encoder.encode_queries(["晶圆代工"])[0], 5)
        Indexer(other_process, other_model, chunker).reindex()
        during = store.chunk_hits(ids, [0.0] * len(ids))  # from the replaced collections, kept GRACE_S
    assert {hit.chunk.doc_id for hit in during} == {CLOUD.doc_id, CHIPS.doc_id}
    with pytest.raises(IndexModelMismatch, match="re-embedded by another process with model 'another-model'"):
        Searcher(store, fake_encoder).search("晶圆代工")
    found = Searcher(other_process, other_model).search("晶圆代工", top_k=1, mode="lexical").passages
    assert found[0].citation.doc_id == CHIPS.doc_id
    monkeypatch.setattr(milvus_store, "GRACE_S", 0.0)
    other_process.delete(CLOUD.doc_id)  # any later write drops the replaced collections
    prefix = collection_prefix(milvus_collection)
    assert len([name for name in milvus_connection.list_collections() if name.startswith(prefix)]) == 1 + 4


def test_a_document_id_with_quotes_and_backslashes_is_stored_filtered_and_deleted(
    store: MilvusStore, indexer: Indexer, fake_encoder: FakeEncoder
) -> None:
    odd = CHIPS.model_copy(update={"doc_id": 'a "quoted" \\ id\n第二行'})
    indexer.add([odd, CLOUD])
    assert store.get_document(odd.doc_id).doc_id == odd.doc_id
    found = Searcher(store, fake_encoder).search("市场", filters=SearchFilters(doc_ids=[odd.doc_id])).passages
    assert {p.citation.doc_id for p in found} == {odd.doc_id}
    store.delete(odd.doc_id)
    assert [d.doc_id for d in store.list_documents()] == [CLOUD.doc_id]


def test_collection_names_map_to_distinct_milvus_prefixes_and_back() -> None:
    names = ["a", "a_b", "a-b", "a_u", "ab", "default", "x-_-y"]
    prefixes = [collection_prefix(name) for name in names]
    assert len(set(prefixes)) == len(names)
    assert [collection_name_of(f"{prefix}meta") for prefix in prefixes] == names
    assert collection_name_of("citeqa_a_ue1234abcd_chunks") is None


def test_deleting_a_collection_leaves_one_whose_name_extends_it(
    milvus_connection: Connection, fake_encoder: FakeEncoder, chunker: Chunker
) -> None:
    manifest = manifest_for(fake_encoder, chunker)
    base = f"p{uuid.uuid4().hex[:8]}"
    MilvusStore.open(milvus_connection, base, manifest)
    longer = MilvusStore.open(milvus_connection, f"{base}_b", manifest)
    Indexer(longer, fake_encoder, chunker).add([CLOUD])
    MilvusStore.drop(milvus_connection, base)
    assert not MilvusStore.exists(milvus_connection, base)
    assert longer.counts() == (1, 1)
    MilvusStore.drop(milvus_connection, f"{base}_b")
    assert not [
        name for name in milvus_connection.list_collections() if name.startswith(collection_prefix(base))
    ]


def test_an_unreachable_milvus_is_reported_naming_the_setting_to_check() -> None:
    with pytest.raises(BackendUnavailable, match="Check CITEQA_MILVUS_URI"):
        Connection(f"http://127.0.0.1:{free_port()}")


def test_rows_kept_in_one_process_never_show_what_another_process_replaced_or_deleted(
    store: MilvusStore,
    indexer: Indexer,
    milvus_connection: Connection,
    milvus_collection: str,
    fake_encoder: FakeEncoder,
    chunker: Chunker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    indexer.add([CLOUD, CHIPS])
    searcher = Searcher(store, fake_encoder)
    before = searcher.search("晶圆代工产能", top_k=5)
    assert {p.text for p in before.passages} == {CLOUD.text, CHIPS.text}
    assert (len(store._chunk_rows), len(store._sentence_rows)) == (2, 4)  # this process keeps them
    other_process = MilvusStore.open(
        milvus_connection, milvus_collection, manifest_for(fake_encoder, chunker)
    )
    others = Indexer(other_process, fake_encoder, chunker)
    # A write of the other process killed before its commit: its rows are in Milvus, never in a search.
    failed = CHIPS.model_copy(update={"text": "晶圆代工产能过剩。"})
    upsert = milvus_store.Connection.upsert

    def failing_on_documents(self: Connection, name: str, rows: list[dict]) -> None:
        if name.endswith("_documents"):
            raise RuntimeError("killed")
        upsert(self, name, rows)

    monkeypatch.setattr(milvus_store.Connection, "upsert", failing_on_documents)
    with pytest.raises(RuntimeError, match="killed"):
        others.add([failed])
    monkeypatch.undo()
    assert {p.text for p in searcher.search("晶圆代工产能过剩", top_k=5).passages} == {CLOUD.text, CHIPS.text}
    # Then it replaces one document and deletes the other: this process's next search sees both at once.
    changed = CHIPS.model_copy(update={"text": "晶圆代工产能今年翻了一番。手机芯片不再短缺。"})
    others.add([changed])
    other_process.delete(CLOUD.doc_id)
    after = searcher.search("晶圆代工产能", top_k=5)
    assert [p.text for p in after.passages] == [changed.text]
    passage = after.passages[0]
    assert passage.highlight is not None  # a sentence of the new version, not a span of the old one
    highlighted = passage.text[passage.highlight.char_start : passage.highlight.char_end]
    assert highlighted in {"晶圆代工产能今年翻了一番。", "手机芯片不再短缺。"}


def test_a_dense_search_returns_as_many_live_rows_as_asked_while_superseded_rows_take_places(
    store: MilvusStore, indexer: Indexer, fake_encoder: FakeEncoder
) -> None:
    indexer.add([CLOUD, CHIPS])
    for n in range(3):  # three superseded versions of CHIPS, within their grace, closest to the question
        indexer.add([CHIPS.model_copy(update={"text": CHIPS.text + "晶圆" * (n + 1)})])
    query = fake_encoder.encode_queries([CHIPS.text])[0]
    with store.snapshot():
        chunk_ids, _ = store.nearest_chunks(query, 2)
        sentence_ids, sentence_chunks, _ = store.nearest_sentences(query, 5)
        live = store.chunk_hits(chunk_ids, [0.0, 0.0])
    assert {hit.chunk.doc_id for hit in live} == {CLOUD.doc_id, CHIPS.doc_id}
    assert len(sentence_ids) == 5 and set(sentence_chunks.tolist()) == set(chunk_ids.tolist())
