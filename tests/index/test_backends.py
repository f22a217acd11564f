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
from index.lexical import Keywords
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
# Dictionary entries giving English words several translations, one of them of two index terms (芯片 短缺):
# keyword search must count each translated word as one term on both backends (Pirkola's structured query).
MANY = [
    *ENTRIES,
    ("短缺", ["shortage"]),
    ("紧张", ["tight", "shortage", "tense"]),
    ("供不应求", ["shortage", "demand"]),
    ("芯片短缺", ["shortage"]),
    ("产能", ["capacity"]),
    ("需求", ["demand"]),
    ("手机", ["phone", "mobile"]),
    ("移动", ["mobile"]),
    ("量子", ["quantum"]),
    ("计算", ["computing", "calculate"]),
]
# Questions written for this test, over the sample's Chinese articles through MANY.
TRANSLATED = [
    "Will the chip shortage and tight foundry capacity last?",
    "How does demand for mobile phones change?",
    "What is quantum computing?",
]


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
        # Milvus's keyword scores are the local index's (index.milvus.keywords): so are the passages' scores.
        assert sorted(p.score for p in milvus) == pytest.approx(sorted(p.score for p in local), rel=1e-4)


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


def test_translated_keywords_score_alike_on_both_backends_each_concept_one_term(
    searchers: dict[str, Searcher], sample: list[Document]
) -> None:
    translator = QueryTranslator(MANY)
    stores = {name: searcher.store for name, searcher in searchers.items()}
    scopes = {name: store.allowed_chunks(sections=["技术情报"]) for name, store in stores.items()}
    wafers = next(doc.doc_id for doc in sample if doc.title == ENGLISH[1])
    # The first question's "shortage" has four translations, one of two index terms.
    assert max(len(concept.alternatives) for concept in translator.translate(TRANSLATED[0])) >= 4
    for question in TRANSLATED:
        keywords = Keywords(concepts=translator.translate(question))
        for scoped in (False, True):
            tops = {}
            for name, store in stores.items():
                allowed = scopes[name] if scoped else None
                with store.snapshot():
                    # `also`: chunks a dense search would have brought, those of one article.
                    also = store.allowed_chunks(doc_ids=[wafers])
                    tops[name] = store.keyword_top(keywords, 5, allowed, also=also)
            local, milvus = tops["local"], tops["milvus"]
            assert local.ids.size and milvus.exact and local.exact
            # Chunk ids differ between backends: compared through the chunks' texts.
            texts = {
                name: [hit.chunk.text for hit in stores[name].chunk_hits(tops[name].ids, tops[name].scores)]
                for name in stores
            }
            scores = {
                name: dict(zip(texts[name], tops[name].scores.tolist(), strict=True)) for name in stores
            }
            assert scores["milvus"].keys() == scores["local"].keys(), question
            assert scores["milvus"] == pytest.approx(scores["local"], rel=1e-5), question
            assert (milvus.mean, milvus.spread) == pytest.approx((local.mean, local.spread), rel=1e-5)
        sentences = [
            "晶圆代工产能紧张，手机芯片供不应求。",
            "量子计算原型机问世。",
            "今年四川数字经济规模预计超万亿元。",
        ]
        assert stores["milvus"].keyword_matches(sentences, keywords) == pytest.approx(
            stores["local"].keyword_matches(sentences, keywords), rel=1e-5
        )


def test_an_english_question_with_several_translations_ranks_alike_on_both_backends(
    searchers: dict[str, Searcher],
) -> None:
    translator = QueryTranslator(MANY)
    weights = RankingWeights(answerable_threshold_cjk=-1.0, answerable_threshold_other=-1.0)
    translated = {
        name: Searcher(searcher.store, searcher.encoder, weights, translator)
        for name, searcher in searchers.items()
    }
    for question in TRANSLATED:
        found = {name: s.search(question, top_k=5, mode="lexical").passages for name, s in translated.items()}
        cited = {name: [(p.citation.doc_id, p.citation.char_start) for p in found[name]] for name in found}
        assert cited["milvus"] == cited["local"], question
        assert [p.score for p in found["milvus"]] == pytest.approx(
            [p.score for p in found["local"]], rel=1e-5
        )
        # Hybrid z-scores dense relevance against 512 chunks drawn by id, and ids differ between backends:
        # passages scoring within a hair may swap places, not the first.
        first = {name: s.search(question, top_k=1).passages[0].citation for name, s in translated.items()}
        assert (first["milvus"].doc_id, first["milvus"].char_start) == (
            first["local"].doc_id,
            first["local"].char_start,
        )
