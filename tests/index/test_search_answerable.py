"""The answerable verdict's evidence (index.answerable): the question's words, how much of them the index and
the top passages hold, and the verdict leaving the ranking alone."""

from __future__ import annotations

import pytest

from index.answerable import question_words, word_evidence
from index.ingest import Indexer
from index.lexical import Keywords, idf
from index.search import RankingWeights, Searcher
from index.store import IndexStore
from index.translation import QueryTranslator
from tests.conftest import make_document
from tests.index.test_search import INDUSTRIES, PANEL, QUANTUM

SENTENCES = ["九章构建了76个光子的量子计算原型机。", "处理速度比超级计算机快一百万亿倍。"]


def _idf(store: IndexStore, term: str) -> float:
    return float(store.keyword_matches([term], Keywords(terms=[term]))[0])


def test_a_chinese_question_s_words_are_its_content_terms_and_an_english_name_also_its_translation() -> None:
    translator = QueryTranslator([("高通", ["Qualcomm"])])
    words = question_words("Qualcomm的面板出货量是多少？", chinese_articles=True, translator=translator)
    assert [word.terms for word in words if word.terms] == [["出货量"], ["面板"]]
    (name,) = [word.concepts[0] for word in words if word.concepts]
    assert [alt.text for alt in name.alternatives] == ["qualcomm", "高通"]


def test_an_english_question_s_words_over_chinese_articles_are_concepts_with_the_word_as_written() -> None:
    translator = QueryTranslator([("面板", ["panel"])])
    words = question_words("How many panels did Tianma ship?", chinese_articles=True, translator=translator)
    # Every content word counts, translated or not: a name the dictionary lacks may still be in the articles.
    assert [[alt.text for alt in word.concepts[0].alternatives] for word in words] == [
        ["panels", "面板"],
        ["tianma"],
        ["ship"],
    ]


def test_a_word_no_chunk_holds_is_missing_and_weighs_as_the_rarest_word(
    indexer: Indexer, store: IndexStore
) -> None:
    indexer.add([PANEL, QUANTUM])
    words = [Keywords(terms=[term]) for term in ("九章", "光子", "荣耀")]
    found = word_evidence(store, words, [QUANTUM.text], SENTENCES)
    rarest = idf(store.counts()[1], 0)
    held = _idf(store, "九章") + _idf(store, "光子")
    assert _idf(store, "荣耀") == 0.0
    assert found.missing == pytest.approx(1 / 3)
    assert found.coverage == pytest.approx(held / (held + rarest))
    # The first sentence holds both words the index knows.
    assert found.coverage_sentence == pytest.approx(found.coverage)
    assert found.unheld == pytest.approx(1.0)


def test_words_held_in_different_sentences_cover_less_of_the_question_than_in_one(
    indexer: Indexer, store: IndexStore
) -> None:
    indexer.add([PANEL, QUANTUM])
    words = [Keywords(terms=["光子"]), Keywords(terms=["超级计算机"])]
    found = word_evidence(store, words, [QUANTUM.text, PANEL.text], SENTENCES)
    photons, supercomputer = _idf(store, "光子"), _idf(store, "超级计算机")
    assert (found.coverage, found.coverage_top, found.missing, found.unheld) == (1.0, 1.0, 0.0, 0.0)
    assert found.coverage_sentence == pytest.approx(max(photons, supercomputer) / (photons + supercomputer))


def test_words_the_top_passage_lacks_lower_its_coverage_but_not_that_of_the_first_passages_together(
    indexer: Indexer, store: IndexStore
) -> None:
    indexer.add([PANEL, QUANTUM])
    words = [Keywords(terms=["光子"]), Keywords(terms=["面板"])]
    found = word_evidence(store, words, [QUANTUM.text, PANEL.text], SENTENCES)
    photons, panels = _idf(store, "光子"), _idf(store, "面板")
    assert found.coverage == pytest.approx(photons / (photons + panels))
    assert found.coverage_top == 1.0
    assert found.unheld == pytest.approx(panels / idf(store.counts()[1], 0))


def test_a_question_without_words_has_nothing_against_it() -> None:
    assert tuple(word_evidence(None, [], ["任何文字"], [])) == (1.0, 1.0, 1.0, 0.0, 0.0)  # type: ignore[arg-type]


def test_the_verdict_is_the_same_however_many_passages_are_asked_for(
    indexer: Indexer, store: IndexStore, fake_encoder
) -> None:
    indexer.add([PANEL, QUANTUM, *INDUSTRIES])
    searcher = Searcher(store, fake_encoder)
    one, evidence_one = searcher.search_with_evidence("量子计算原型机的光子数", top_k=1)
    five, evidence_five = searcher.search_with_evidence("量子计算原型机的光子数", top_k=5)
    assert evidence_one == evidence_five
    assert (one.confidence, one.answerable) == (five.confidence, five.answerable)


def test_the_verdict_does_not_change_which_passages_are_found_nor_their_order(
    indexer: Indexer, store: IndexStore, fake_encoder
) -> None:
    indexer.add([PANEL, QUANTUM, *INDUSTRIES, make_document("荣耀", "荣耀手机的出货量没有单独统计。")])
    lenient = RankingWeights(answerable_threshold_cjk=-1.0)
    strict = RankingWeights(answerable_threshold_cjk=100.0, answerable_coverage_sentence=-5.0)
    for question in ("量子计算原型机的光子数", "第3个行业的产值增长多少", "荣耀手机出货量"):
        found = Searcher(store, fake_encoder, lenient).search(question, top_k=5)
        flagged = Searcher(store, fake_encoder, strict).search(question, top_k=5)
        assert (found.answerable, flagged.answerable) == (True, False)
        assert flagged.passages == found.passages


def test_a_search_weighs_the_question_s_words_only_when_a_setting_counts_them(
    indexer: Indexer, store: IndexStore, fake_encoder
) -> None:
    indexer.add([PANEL, QUANTUM, *INDUSTRIES])
    question = "第3个行业的光子产值"
    _, evidence = Searcher(store, fake_encoder).search_with_evidence(question, top_k=3)
    assert evidence is not None and evidence.coverage_sentence < 1.0  # 光子 is not in the top passage
    by_default = Searcher(store, fake_encoder).search(question, top_k=3)
    assert by_default.confidence == pytest.approx(evidence.relevance + 2.0 * evidence.margin, abs=1e-6)
    counting = Searcher(store, fake_encoder, RankingWeights(answerable_coverage_sentence=1.0))
    assert counting.search(question, top_k=3).confidence == pytest.approx(
        evidence.relevance + 2.0 * evidence.margin + evidence.coverage_sentence, abs=1e-6
    )
