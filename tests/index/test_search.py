from __future__ import annotations

import numpy as np
import pytest

from index.answerable import Evidence, margin
from index.ingest import Indexer
from index.lexical import Keywords
from index.search import CandidateCounts, ChunkScores, RankingWeights, Searcher, SearchFilters, SearchMode, _z
from index.store import IndexStore
from index.text import is_cjk, terms
from index.translation import QueryTranslator
from tests.conftest import make_document

PANEL = make_document(
    "手机销量下滑，面板出货缘何创新高",
    "今年手机市场整体下滑。第三季度全球智能手机面板出货量约为5亿片，达到自2018年以来单季度出货的最高值。"
    "群智咨询认为需求仍将持续。",
    section="企业情报",
)
# Articles alike but for their numbers: enough chunks that a few candidates per signal leave most out.
INDUSTRIES = [
    make_document(f"行业{i}", f"第{i}个行业的产值同比增长{i}个百分点。各地出台政策支持行业{i}发展。")
    for i in range(12)
]
QUANTUM = make_document(
    "九章问世", "九章构建了76个光子的量子计算原型机。处理速度比超级计算机快一百万亿倍。", section="技术情报"
)


def scores(
    dense: list[float], sentence: list[float], lexical: list[float], coverage: float = 1.0
) -> ChunkScores:
    n = len(dense)
    return ChunkScores(
        chunk_ids=np.arange(1, n + 1),
        dense=np.array(dense, dtype=np.float32),
        sentence=np.array(sentence, dtype=np.float32),
        best_sentence=np.full(n, -1),
        lexical=np.array(lexical, dtype=np.float32),
    )


def test_z_scores_have_zero_mean_and_unit_spread_and_flat_input_gives_zeros() -> None:
    z = _z(np.array([1.0, 2.0, 3.0]))
    assert z.mean() == pytest.approx(0.0)
    assert z.std() == pytest.approx(1.0)
    assert list(_z(np.array([4.0, 4.0]))) == [0.0, 0.0]


def test_hybrid_lets_a_strong_keyword_match_overtake_a_slightly_closer_embedding(
    indexer: Indexer, store: IndexStore, fake_encoder
) -> None:
    indexer.add([PANEL, QUANTUM])  # a Chinese vocabulary
    searcher = Searcher(store, fake_encoder, RankingWeights(sentence=0.5, lexical=0.3))
    # Chunk 1 is a hair closer in meaning; chunk 2 holds the question's rare terms (BM25 far ahead).
    candidates = scores(
        dense=[0.82, 0.81, 0.70, 0.69], sentence=[0.82, 0.81, 0.70, 0.69], lexical=[0.0, 9.0, 0.0, 0.0]
    )
    keywords, weight = searcher.keywords("面板出货量是多少")
    assert keywords.terms == ["面板", "出货量", "是", "多少"]
    assert weight == 0.3
    assert list(np.argsort(-searcher._rank(candidates, "dense", weight))) == [0, 1, 2, 3]
    assert list(np.argsort(-searcher._rank(candidates, "hybrid", weight))) == [1, 0, 2, 3]
    assert int(np.argmax(searcher._rank(candidates, "lexical", weight))) == 1


def test_without_a_translator_keywords_do_not_count_for_an_english_question_over_chinese_articles(
    indexer: Indexer, store: IndexStore, fake_encoder
) -> None:
    indexer.add([PANEL, QUANTUM])
    assert store.vocabulary_is_chinese()
    searcher = Searcher(store, fake_encoder, RankingWeights(sentence=0.5, lexical=0.3))
    keywords, weight = searcher.keywords("How many panels were shipped?")
    assert weight == 0.0
    assert keywords.concepts == []


def test_an_english_question_over_chinese_articles_is_matched_by_its_translated_keywords(
    indexer: Indexer, store: IndexStore, fake_encoder
) -> None:
    indexer.add([PANEL, QUANTUM])
    translator = QueryTranslator([("面板", ["panel"]), ("出货", ["shipment", "to ship goods"])])
    weights = RankingWeights(lexical=0.3, translated=0.2, answerable_threshold_other=-1.0)
    searcher = Searcher(store, fake_encoder, weights, translator)
    keywords, weight = searcher.keywords("How many panels were shipped?")
    assert weight == 0.2
    assert [[a.text for a in concept.alternatives] for concept in keywords.concepts] == [["面板"], ["出货"]]
    # Keyword search alone also looks for the words as written, which English articles may hold.
    keywords, _ = searcher.keywords("How many panels were shipped?", "lexical")
    assert [[a.text for a in c.alternatives] for c in keywords.concepts] == [
        ["panels", "面板"],
        ["shipped", "出货"],
    ]
    # The fake encoder sees no bigram in common between English and Chinese: only keywords can rank.
    lexical = searcher.search("How many panels were shipped?", top_k=2, mode="lexical")
    assert lexical.passages[0].citation.doc_id == PANEL.doc_id
    assert lexical.passages[0].score > lexical.passages[1].score == 0.0
    assert (
        searcher.search("How many panels were shipped?", top_k=1).passages[0].citation.doc_id == PANEL.doc_id
    )


def test_a_chinese_question_naming_a_company_in_english_also_looks_for_the_name_s_translation(
    indexer: Indexer, store: IndexStore, fake_encoder
) -> None:
    indexer.add([PANEL, QUANTUM])
    translator = QueryTranslator(
        [
            ("华为", ["Huawei"]),
            ("面板", ["panel"]),
            ("数据中心", ["IDC"]),
            ("微", ["micro"]),
            ("二极管", ["LED"]),
        ]
    )
    searcher = Searcher(store, fake_encoder, RankingWeights(lexical=0.3), translator)
    keywords, weight = searcher.keywords("Huawei的面板出货量是多少？")
    assert weight == 0.3
    assert keywords.terms == terms("Huawei的面板出货量是多少？")
    # Only the capitalised English name is translated: the Chinese words are already the articles' words.
    assert [[a.text for a in concept.alternatives] for concept in keywords.concepts] == [["华为"]]
    # Acronyms and hyphenated compounds are written as they are in articles: nothing to translate.
    assert searcher.keywords("IDC说Micro-LED的面板出货量是多少？")[0].concepts == []


def test_dense_search_looks_for_no_keywords(
    indexer: Indexer, store: IndexStore, fake_encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexer.add([PANEL, QUANTUM])
    asked: list[Keywords] = []
    keyword_top = store.keyword_top
    monkeypatch.setattr(
        store,
        "keyword_top",
        lambda keywords, *args, **kwargs: asked.append(keywords) or keyword_top(keywords, *args, **kwargs),
    )
    searcher = Searcher(store, fake_encoder, translator=QueryTranslator([("面板", ["panel"])]))
    searcher.search("panel", top_k=2, mode="dense")
    assert asked == []
    searcher.search("panel", top_k=2, mode="hybrid")
    assert [concept.word for concept in asked[0].concepts] == ["panel"]


def test_dense_relevance_blends_chunk_and_closest_sentence_by_the_sentence_share(store, fake_encoder) -> None:
    searcher = Searcher(store, fake_encoder, RankingWeights(sentence=0.25))
    relevance = searcher._relevance(scores(dense=[0.4], sentence=[0.8], lexical=[0.0]))
    assert relevance[0] == pytest.approx(0.75 * 0.4 + 0.25 * 0.8)


def test_each_passage_highlights_its_sentence_closest_to_the_question(
    indexer: Indexer, store, fake_encoder
) -> None:
    indexer.add([PANEL, QUANTUM])
    # The fake encoder's cosines are not those the default thresholds were calibrated for.
    lenient = RankingWeights(answerable_threshold_cjk=-1.0)
    result = Searcher(store, fake_encoder, lenient).search("第三季度全球智能手机面板出货量是多少", top_k=2)
    top = result.passages[0]
    assert top.citation.doc_id == PANEL.doc_id
    assert top.highlight is not None
    highlighted = top.text[top.highlight.char_start : top.highlight.char_end]
    assert highlighted == "第三季度全球智能手机面板出货量约为5亿片，达到自2018年以来单季度出货的最高值。"
    assert result.answerable
    assert result.answer is not None
    assert result.answer.text == highlighted
    answer_span = result.answer.citation
    assert PANEL.text[answer_span.char_start : answer_span.char_end] == highlighted


def test_the_question_s_rare_keywords_can_move_the_highlight_off_the_sentence_closest_in_embedding(
    indexer: Indexer, store, fake_encoder
) -> None:
    # The first sentence shares most of the question's characters, but only words every article has; the
    # second holds its rare words (分布式, 光伏).
    solar = make_document("光伏", "今年增长情况如何，今年增长情况良好。其中分布式光伏新增四十吉瓦。")
    others = [make_document(f"行业{i}", f"行业{i}今年增长情况如何，今年增长情况尚可。") for i in range(4)]
    indexer.add([solar, *others])
    question = "分布式光伏今年增长情况如何"

    def highlighted(weight: float, mode: SearchMode = "hybrid") -> str:
        weights = RankingWeights(highlight_keywords=weight, answerable_threshold_cjk=-1.0)
        result = Searcher(store, fake_encoder, weights).search(question, top_k=1, mode=mode)
        top = result.passages[0]
        assert top.highlight is not None and result.answer is not None
        assert result.answer.text == top.text[top.highlight.char_start : top.highlight.char_end]
        return result.answer.text

    assert highlighted(0.0) == "今年增长情况如何，今年增长情况良好。"
    assert highlighted(2.0) == "其中分布式光伏新增四十吉瓦。"
    # Dense search looks for no keywords: its highlight is the closest sentence whatever the weight.
    assert highlighted(2.0, mode="dense") == "今年增长情况如何，今年增长情况良好。"


def test_below_the_threshold_the_question_is_flagged_unanswerable(
    indexer: Indexer, store, fake_encoder
) -> None:
    indexer.add([PANEL, QUANTUM])
    strict = Searcher(store, fake_encoder, RankingWeights(answerable_threshold_cjk=0.99))
    result = strict.search("欧盟半导体联盟的成员有哪些", top_k=3)
    assert result.answerable is False
    assert result.answer is None
    assert result.confidence < 0.99
    assert len(result.passages) == 2  # the closest passages are still shown
    lenient = Searcher(store, fake_encoder, RankingWeights(answerable_threshold_cjk=-1.0))
    assert lenient.search("欧盟半导体联盟的成员有哪些", top_k=3).answerable is True


def test_the_margin_is_over_the_tenth_most_relevant_chunk_or_the_least_relevant_of_fewer() -> None:
    relevance = np.array([0.90, 0.50, 0.85, 0.84, 0.83, 0.82, 0.81, 0.80, 0.79, 0.78, 0.70, 0.60])
    # The 10th most relevant is 0.70 (0.90 ... 0.78 are the first nine).
    assert margin(relevance, top=0) == pytest.approx(0.90 - 0.70)
    # A top passage that hybrid ranked first below the 10th has a negative margin.
    assert margin(relevance, top=1) == pytest.approx(0.50 - 0.70)
    # Fewer than ten chunks (a filtered search): the margin is over the least relevant one.
    assert margin(relevance[:3], top=0) == pytest.approx(0.90 - 0.50)


EVIDENCE = Evidence(
    relevance=0.9,
    margin=0.05,
    cjk=1.0,
    coverage=0.5,
    coverage_top=0.7,
    coverage_sentence=0.6,
    missing=0.2,
    unheld=0.4,
)


def test_confidence_is_the_intercept_plus_each_feature_times_its_coefficient(store, fake_encoder) -> None:
    weights = RankingWeights(
        answerable_intercept=-1.0,
        answerable_relevance=2.0,
        answerable_margin=10.0,
        answerable_cjk=-0.5,
        answerable_coverage=0.25,
        answerable_coverage_top=0.125,
        answerable_coverage_sentence=1.5,
        answerable_missing=-3.0,
        answerable_unheld=-0.75,
    )
    expected = (
        -1.0
        + 2.0 * 0.9
        + 10.0 * 0.05
        - 0.5 * 1.0
        + 0.25 * 0.5
        + 0.125 * 0.7
        + 1.5 * 0.6
        - 3.0 * 0.2
        - 0.75 * 0.4
    )
    assert Searcher(store, fake_encoder, weights)._confidence(EVIDENCE) == pytest.approx(expected)


def test_by_default_confidence_is_the_top_relevance_plus_twice_its_margin(store, fake_encoder) -> None:
    # The rule kept after the word features lost on the check questions (docs/EVAL.md, "Answerable").
    assert Searcher(store, fake_encoder)._confidence(EVIDENCE) == pytest.approx(0.9 + 2.0 * 0.05)


def test_chinese_and_other_questions_are_held_to_their_own_thresholds(
    indexer: Indexer, store, fake_encoder
) -> None:
    indexer.add([PANEL, QUANTUM])
    weights = RankingWeights(answerable_threshold_cjk=-1.0, answerable_threshold_other=0.99)
    searcher = Searcher(store, fake_encoder, weights)
    assert searcher.search("九章量子计算原型机", top_k=1).answerable is True
    assert searcher.search("What is Jiuzhang?", top_k=1).answerable is False


@pytest.mark.parametrize(
    ("question", "chinese"),
    [
        ("华为2020年全年销售收入是多少？", True),
        ("Apple的iPhone 12销量", True),
        ("How many 5G基站?", False),
        ("What is SMIC?", False),
    ],
)
def test_a_question_counts_as_chinese_when_it_has_as_many_chinese_characters_as_latin_words(
    question: str, chinese: bool
) -> None:
    assert is_cjk(question) is chinese


def test_near_duplicate_passages_are_collapsed(indexer: Indexer, store, fake_encoder) -> None:
    original = make_document("甲", "今年四川数字经济规模预计超过一点六万亿元，同比增长百分之十五。")
    reprinted = make_document("乙", "今年四川数字经济规模预计超过一点六万亿元，同比增长百分之十五！")
    indexer.add([original, reprinted, QUANTUM])
    found = Searcher(store, fake_encoder).search("四川数字经济规模", top_k=3).passages
    assert sum("四川数字经济" in p.text for p in found) == 1


def test_an_empty_index_returns_no_passages_and_is_unanswerable(store, fake_encoder) -> None:
    result = Searcher(store, fake_encoder).search("任何问题", top_k=3)
    assert result.passages == []
    assert result.answerable is False


@pytest.mark.parametrize(
    ("question", "threshold_field"),
    [
        ("量子计算原型机的光子数", "answerable_threshold_cjk"),
        ("How fast is Jiuzhang?", "answerable_threshold_other"),
    ],
)
def test_a_question_whose_confidence_equals_its_threshold_is_answerable_and_one_a_millionth_below_is_not(
    indexer: Indexer,
    store: IndexStore,
    fake_encoder,
    monkeypatch: pytest.MonkeyPatch,
    question: str,
    threshold_field: str,
) -> None:
    indexer.add([PANEL, QUANTUM])
    # The confidence a search compares with the threshold, before SearchResult rounds it to 6 places.
    compared: list[float] = []
    confidence = Searcher._confidence

    def recording_confidence(searcher: Searcher, evidence: Evidence) -> float:
        compared.append(confidence(searcher, evidence))
        return compared[-1]

    monkeypatch.setattr(Searcher, "_confidence", recording_confidence)
    Searcher(store, fake_encoder, RankingWeights(**{threshold_field: -1.0})).search(question, top_k=3)
    exact = compared[-1]

    at = Searcher(store, fake_encoder, RankingWeights(**{threshold_field: exact})).search(question, top_k=3)
    assert compared[-1] == exact  # the same question scores the same confidence again
    assert at.answerable is True
    assert at.answer is not None
    above = Searcher(store, fake_encoder, RankingWeights(**{threshold_field: exact + 1e-6})).search(
        question, top_k=3
    )
    assert above.answerable is False
    assert above.answer is None
    assert above.passages == at.passages  # the verdict changes, not what is found


def test_ranking_sees_the_union_of_each_signal_s_candidates_each_scored_exactly(
    indexer: Indexer, store: IndexStore, fake_encoder
) -> None:
    indexer.add([PANEL, QUANTUM, *INDUSTRIES])
    searcher = Searcher(store, fake_encoder, candidates=CandidateCounts(chunks=2, sentences=2, keywords=2))
    question = "量子计算原型机的处理速度"
    vector = fake_encoder.encode_queries([question])[0]
    keywords, _ = searcher.keywords(question)
    with store.snapshot():
        candidates = searcher._candidates(vector, keywords, SearchFilters())
        dense_ids, _ = store.nearest_chunks(vector, 2)
        _, sentence_chunks, _ = store.nearest_sentences(vector, 2)
        # Every chunk the keywords match, exactly (a corpus this small is read in full).
        every = store.keyword_top(keywords, limit=store.counts()[1])
        keyword_ids, keyword_scores = every.ids, every.scores
    assert every.exact
    best_keywords = keyword_ids[np.argsort(-keyword_scores)[:2]]
    assert set(candidates.chunk_ids) == set(dense_ids) | set(sentence_chunks) | set(best_keywords)
    assert len(candidates.chunk_ids) < store.counts()[1]  # not every chunk
    # Each signal is exact for every candidate, whichever signal brought it.
    for position, chunk_id in enumerate(candidates.chunk_ids):
        chunk_vector = store.chunk_vectors(np.array([chunk_id]))[0]
        assert candidates.dense[position] == pytest.approx(float(chunk_vector @ vector), abs=1e-6)
        sentences = store.chunk_sentences([int(chunk_id)])
        assert candidates.sentence[position] == pytest.approx(
            float((sentences.vectors @ vector).max()), abs=1e-6
        )
        matched = keyword_scores[keyword_ids == chunk_id]
        assert candidates.lexical[position] == pytest.approx(float(matched[0]) if matched.size else 0.0)


def test_a_filter_that_matches_no_chunk_finds_nothing(
    indexer: Indexer, store: IndexStore, fake_encoder
) -> None:
    indexer.add([PANEL, QUANTUM])
    result = Searcher(store, fake_encoder).search(
        "量子计算", filters=SearchFilters(sections=["没有这个栏目"])
    )
    assert result.passages == []
    assert result.answerable is False


def test_candidates_are_z_scored_against_every_chunk_in_scope_not_against_each_other(
    indexer: Indexer, store: IndexStore, fake_encoder
) -> None:
    indexer.add([PANEL, QUANTUM, *INDUSTRIES])
    few = Searcher(store, fake_encoder, candidates=CandidateCounts(chunks=2, sentences=2, keywords=2))
    every = Searcher(store, fake_encoder, candidates=CandidateCounts(chunks=100, sentences=100, keywords=100))
    question = "量子计算原型机的处理速度"
    vector = fake_encoder.encode_queries([question])[0]
    keywords, weight = few.keywords(question)
    with store.snapshot():
        some, all_chunks = (
            searcher._candidates(vector, keywords, SearchFilters()) for searcher in (few, every)
        )
    assert all_chunks.chunk_ids.size == store.counts()[1] > some.chunk_ids.size
    # The background sample holds every chunk of an index this small: the candidates' z-scores are exactly
    # those they get when every chunk is a candidate.
    positions = np.searchsorted(all_chunks.chunk_ids, some.chunk_ids)
    np.testing.assert_allclose(
        few._rank(some, "hybrid", weight), every._rank(all_chunks, "hybrid", weight)[positions], rtol=1e-5
    )
    np.testing.assert_allclose(
        every._rank(all_chunks, "hybrid", weight),
        _z(every._relevance(all_chunks)) + weight * _z(all_chunks.lexical),
        rtol=1e-5,
        atol=1e-6,
    )


def test_a_larger_index_is_z_scored_against_a_uniform_sample_of_its_chunks(
    indexer: Indexer, store: IndexStore, fake_encoder
) -> None:
    articles = [make_document(f"第{i}篇", f"第{i}篇文章说，某地的产值增长了{i}个百分点。") for i in range(40)]
    indexer.add(articles)
    sample, in_scope = store.chunk_sample(10)
    assert in_scope == store.counts()[1] == 40
    assert sample.size == 10 and np.unique(sample).size == 10
    assert np.array_equal(store.chunk_sample(10)[0], sample)  # the same draw while the index is unchanged
    allowed = np.sort(sample[:4])
    within, scope = store.chunk_sample(10, allowed)  # a filter smaller than the sample: all of it
    assert np.array_equal(within, allowed) and scope == 4
    indexer.add([PANEL])  # a write: the next draw is from the index as it is now
    assert store.chunk_sample(10)[1] == 41
