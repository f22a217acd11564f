from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index.chunking import Chunker
from index.errors import DocumentNotFound, IndexModelMismatch
from index.ingest import Indexer
from index.search import Searcher, SearchFilters
from index.store import VECTORS_TAG_FILE, IndexedDocument, IndexStore, Manifest
from tests.conftest import make_document, manifest_for
from tests.fakes import FakeEncoder

CLOUD = make_document(
    "云服务市场驾云腾飞", "云服务市场规模持续扩大。公有云收入同比增长超过百分之四十。", page=17
)
CHIPS = make_document(
    "晶圆代工吃紧影响手机出货",
    "晶圆代工产能紧张，手机芯片供不应求。券商认为紧张或延续至明年。",
    section="技术情报",
    page=34,
)


def test_added_documents_are_listed_with_their_chunk_counts(indexer: Indexer, store: IndexStore) -> None:
    results = indexer.add([CLOUD, CHIPS])
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
    tmp_path: Path, fake_encoder: FakeEncoder, chunker: Chunker
) -> None:
    manifest = manifest_for(fake_encoder, chunker)
    store = IndexStore.open(tmp_path / "idx", manifest)
    Indexer(store, fake_encoder, chunker).add([CLOUD, CHIPS])
    before = Searcher(store, fake_encoder).search("手机芯片", top_k=3).passages
    store.close()
    reopened = IndexStore.open(tmp_path / "idx", manifest)
    after = Searcher(reopened, fake_encoder).search("手机芯片", top_k=3).passages
    assert [p.model_dump() for p in after] == [p.model_dump() for p in before]
    reopened.close()


def test_a_stale_faiss_file_is_rebuilt_from_the_stored_vectors(tmp_path: Path, fake_encoder, chunker) -> None:
    # As after a crash between the SQLite commit and the rename of the FAISS file.
    manifest = manifest_for(fake_encoder, chunker)
    store = IndexStore.open(tmp_path / "idx", manifest)
    Indexer(store, fake_encoder, chunker).add([CLOUD, CHIPS])
    store.close()
    (tmp_path / "idx" / VECTORS_TAG_FILE).write_text('{"generation": 0}')
    reopened = IndexStore.open(tmp_path / "idx", manifest)
    found = Searcher(reopened, fake_encoder).search("晶圆代工", top_k=1).passages
    assert found[0].citation.doc_id == CHIPS.doc_id
    reopened.close()


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


def test_a_second_store_sees_writes_made_by_another_process(tmp_path: Path, fake_encoder, chunker) -> None:
    manifest = manifest_for(fake_encoder, chunker)
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
