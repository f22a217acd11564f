"""The two backends answer alike: the bundled sample report indexed in each (with the fake encoder), the
same questions find the same articles, in every mode, with citations that point into the stored text."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from index.backend import Store
from index.chunking import Chunker
from index.documents import Document
from index.ingest import Indexer
from index.milvus.connection import Connection
from index.milvus.store import MilvusStore
from index.report import parse_report
from index.search import RankingWeights, Searcher, SearchFilters, SearchMode
from index.store import IndexStore
from index.translation import QueryTranslator
from tests.conftest import SAMPLE_REPORT, manifest_for
from tests.fakes import FakeEncoder

pytestmark = [pytest.mark.server, pytest.mark.milvus]

# Questions written for this test, each with the article title it is about.
QUESTIONS = {
    "天津对刷脸支付和人脸识别有什么新规定": "人脸识别天津入法 刷脸支付“受伤”",
    "四川的数字经济今年能有多大规模": "今年四川数字经济规模预计超 1.6 万亿元",
    "晶圆代工产能紧张会持续多久": "晶圆代工吃紧影响手机出货 券商：供不应求或延续至明年",
    "九章量子计算原型机意味着什么": "“九章”问世 量子计算真的要来了？",
    "江西移动物联网产业收入有多少": "江西移动物联网核心及关联产业主营业务收入突破千亿元大关",
}
# An English question, answered through these dictionary entries (CC-CEDICT's format) over the Chinese articles.
ENGLISH = ("How long will the wafer foundry shortage last?", QUESTIONS["晶圆代工产能紧张会持续多久"])
ENTRIES = [("晶圆", ["wafer"]), ("代工", ["foundry", "OEM"]), ("吃紧", ["tight", "shortage"])]
MODES: list[SearchMode] = ["hybrid", "lexical", "dense"]


@pytest.fixture(scope="module")
def sample() -> list[Document]:
    return parse_report(SAMPLE_REPORT.read_text(encoding="utf-8"), SAMPLE_REPORT.name)


@pytest.fixture(scope="module")
def searchers(
    sample: list[Document], milvus_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Searcher]]:
    encoder, chunker = FakeEncoder(), Chunker(chunk_size=120, chunk_overlap=20)
    manifest = manifest_for(encoder, chunker)
    connection = Connection(milvus_uri)
    collection = f"sample-{uuid.uuid4().hex[:8]}"
    stores: dict[str, Store] = {
        "local": IndexStore.open(tmp_path_factory.mktemp("sample") / "idx", manifest),
        "milvus": MilvusStore.open(connection, collection, manifest),
    }
    translator = QueryTranslator(ENTRIES)
    # Every question answerable: the fake encoder's cosines are not those the thresholds were calibrated for.
    weights = RankingWeights(answerable_threshold_cjk=-1.0, answerable_threshold_other=-1.0)
    for store in stores.values():
        Indexer(store, encoder, chunker).add(sample)
    yield {name: Searcher(store, encoder, weights, translator) for name, store in stores.items()}
    for store in stores.values():
        store.close()
    MilvusStore.drop(connection, collection)
    connection.close()


def _top_titles(searcher: Searcher, question: str, mode: SearchMode) -> list[str]:
    return [passage.citation.title for passage in searcher.search(question, top_k=3, mode=mode).passages]


@pytest.mark.parametrize("mode", MODES)
def test_both_backends_find_the_same_top_articles_for_each_question(
    searchers: dict[str, Searcher], mode: SearchMode
) -> None:
    for question, title in QUESTIONS.items():
        local, milvus = (_top_titles(searchers[name], question, mode) for name in ("local", "milvus"))
        assert milvus == local, question
        # The fake encoder's bigram vectors alone are no judge of relevance: the article is checked where
        # keywords count.
        if mode != "dense":
            assert milvus[0] == title, question


@pytest.mark.parametrize("mode", MODES)
def test_both_backends_find_the_same_top_articles_within_a_section(
    searchers: dict[str, Searcher], sample: list[Document], mode: SearchMode
) -> None:
    technology = SearchFilters(sections=["技术情报"])
    for question in QUESTIONS:
        local, milvus = (
            searchers[name].search(question, top_k=3, mode=mode, filters=technology).passages
            for name in ("local", "milvus")
        )
        # The same passages, the first one first (passages scoring within a hair may swap places).
        found = {
            name: [(p.citation.doc_id, p.citation.char_start) for p in passages]
            for name, passages in (("local", local), ("milvus", milvus))
        }
        assert found["milvus"][0] == found["local"][0], question
        assert set(found["milvus"]) == set(found["local"]), question
        assert {p.citation.section for p in milvus} == {"技术情报"}
        # Milvus's BM25 is the local one times k1 + 1 (2.5): z-scores, hence hybrid scores, agree; they stay
        # within 2% as Milvus counts lengths of its own tokens of the terms.
        if mode != "lexical":
            assert sorted(p.score for p in milvus) == pytest.approx(sorted(p.score for p in local), rel=0.02)


def test_an_english_question_finds_the_chinese_article_through_its_translated_keywords_on_both(
    searchers: dict[str, Searcher],
) -> None:
    question, title = ENGLISH
    for name in ("local", "milvus"):
        assert _top_titles(searchers[name], question, "lexical")[0] == title, name


def test_milvus_citations_and_highlights_point_into_the_stored_text(
    searchers: dict[str, Searcher], sample: list[Document]
) -> None:
    texts = {document.doc_id: document.text for document in sample}
    searcher = searchers["milvus"]
    for question in QUESTIONS:
        result = searcher.search(question, top_k=3)
        for passage in result.passages:
            citation = passage.citation
            assert texts[citation.doc_id][citation.char_start : citation.char_end] == passage.text
            assert passage.highlight is not None
        assert result.answer is not None
        cited = result.answer.citation
        assert texts[cited.doc_id][cited.char_start : cited.char_end] == result.answer.text
    assert searcher.store.get_document(sample[0].doc_id).text == sample[0].text
