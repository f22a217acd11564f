from __future__ import annotations

import math

import pytest

from eval import metrics
from tests.eval.fakes import make_passage, make_result


def test_squash_removes_every_kind_of_whitespace():
    assert metrics.squash(" 5G\t基站\n70\u3000万 ") == "5G基站70万"


def test_snippet_ranks_ignore_whitespace_in_passages_and_snippets():
    passages = ["5G 基站 70 万", "无关的文字", "已建成近70万个\n5G基站"]
    # Only passage 3 holds the snippet once whitespace is gone: "近70万个5G基站".
    assert metrics.snippet_ranks(passages, ["近 70万个5G基站"]) == [3]


def test_snippet_ranks_count_a_passage_once_whatever_number_of_snippets_it_holds():
    passages = ["62万个5G基站 与 近70万个5G基站", "nothing", "62万个5G基站"]
    assert metrics.snippet_ranks(passages, ["近70万个5G基站", "62万个5G基站"]) == [1, 3]


def test_snippet_ranks_of_no_passage_or_no_snippet_are_empty():
    assert metrics.snippet_ranks([], ["x"]) == []
    assert metrics.snippet_ranks(["x"], []) == []


@pytest.mark.parametrize(
    ("rank", "k", "expected"),
    [(1, 1, True), (3, 3, True), (4, 3, False), (None, 10, False)],
)
def test_hit_at_k_is_true_only_for_a_rank_within_k(rank, k, expected):
    assert metrics.hit_at_k(rank, k) is expected


@pytest.mark.parametrize(("rank", "expected"), [(1, 1.0), (4, 0.25), (10, 0.1), (11, 0.0), (None, 0.0)])
def test_reciprocal_rank_at_10_is_zero_beyond_rank_10(rank, expected):
    assert metrics.reciprocal_rank(rank) == expected


@pytest.mark.parametrize(
    ("relevant_ranks", "expected"),
    [
        # One relevant passage at rank 2: DCG = 1/log2(3), ideal = 1/log2(2) = 1.
        ([2], 1 / math.log2(3)),
        # Ranks 1 and 3: DCG = 1 + 1/log2(4) = 1.5; ideal (ranks 1, 2) = 1 + 1/log2(3) ≈ 1.6309 -> ≈ 0.9197.
        ([1, 3], 1.5 / (1 + 1 / math.log2(3))),
        # Relevant passages already first: perfect ordering.
        ([1, 2], 1.0),
        # Rank 11 is beyond k = 10, so nothing relevant was retrieved.
        ([11], 0.0),
        ([], 0.0),
    ],
)
def test_ndcg_at_10_compares_with_the_ideal_order_of_the_relevant_passages_retrieved(
    relevant_ranks, expected
):
    assert metrics.ndcg_at_k(relevant_ranks) == pytest.approx(expected)


def test_ndcg_ideal_counts_only_relevant_passages_within_k():
    # k = 3: rank 5 is dropped, leaving rank 2 alone: 1/log2(3) over an ideal of 1.
    assert metrics.ndcg_at_k([2, 5], k=3) == pytest.approx(1 / math.log2(3))


def test_gold_article_ranks_find_each_gold_title_ignoring_whitespace_then_each_doc_id():
    citations = [
        make_passage(1, "a", title="A", doc_id="d1").citation,
        make_passage(2, "b", title="B C", doc_id="d2").citation,
        make_passage(3, "a", title="A", doc_id="d1").citation,
        make_passage(4, "d", title="D", doc_id="d4").citation,
    ]
    ranks = metrics.gold_article_ranks(citations, gold_titles=["BC", "D", "E"], gold_doc_ids=["d1", "d9"])
    assert ranks == [2, 4, None, 1, None]


def test_first_article_rank_is_the_earliest_gold_article_found():
    assert metrics.first_article_rank([4, None, 2]) == 2
    assert metrics.first_article_rank([None]) is None
    assert metrics.first_article_rank([]) is None


def test_full_recall_rank_is_the_rank_of_the_last_gold_article_and_none_if_one_is_missing():
    # Two gold articles, first cited at ranks 2 and 4: both are in the top 4, not in the top 3.
    assert metrics.full_recall_rank([2, 4]) == 4
    assert metrics.full_recall_rank([2, None]) is None
    assert metrics.full_recall_rank([]) is None


def test_percentile_interpolates_linearly_between_order_statistics():
    values = [4.0, 1.0, 3.0, 2.0]
    # Sorted 1, 2, 3, 4: p50 sits halfway between 2 and 3; p95 at position 2.85 -> 3 + 0.85.
    assert metrics.percentile(values, 50) == 2.5
    assert metrics.percentile(values, 95) == pytest.approx(3.85)
    assert metrics.percentile(values, 0) == 1.0
    assert metrics.percentile(values, 100) == 4.0


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        metrics.percentile([], 50)


def test_score_distribution_of_nothing_has_only_a_zero_count():
    distribution = metrics.score_distribution([])
    assert distribution.n == 0
    assert distribution.mean is None
    assert distribution.max is None


def test_score_distribution_gives_mean_percentiles_and_range():
    distribution = metrics.score_distribution([0.2, 0.4, 0.9])
    # p10 at position 0.2 -> 0.2 + 0.2 * 0.2 = 0.24; p90 at position 1.8 -> 0.4 + 0.8 * 0.5 = 0.8.
    assert distribution.model_dump() == pytest.approx(
        {"n": 3, "mean": 0.5, "p10": 0.24, "p50": 0.4, "p90": 0.8, "min": 0.2, "max": 0.9}
    )


def _four_results():
    return [
        # Answer at rank 1 (and 3), gold article at rank 1.
        make_result(
            id="q1",
            lang="zh",
            type="factoid",
            answer_rank=1,
            relevant_ranks=[1, 3],
            article_rank=1,
            article_full_rank=1,
            top_score=0.9,
            latency_ms=10.0,
            passage_chars=[100, 200],
        ),
        # Answer at rank 4, gold article at rank 2.
        make_result(
            id="q2",
            lang="en",
            type="factoid",
            answer_rank=4,
            relevant_ranks=[4],
            article_rank=2,
            article_full_rank=2,
            top_score=0.7,
            latency_ms=20.0,
            passage_chars=[300],
        ),
        # Two gold articles, only one found (rank 3); no answer.
        make_result(
            id="q3",
            lang="zh",
            type="multi-article",
            n_gold_articles=2,
            n_snippets=2,
            article_rank=3,
            top_score=0.6,
            latency_ms=30.0,
        ),
        # Unanswerable.
        make_result(
            id="q4",
            lang="zh",
            type="unanswerable",
            answerable=False,
            n_gold_articles=0,
            n_snippets=0,
            top_score=0.2,
            latency_ms=40.0,
            passage_chars=[400],
        ),
    ]


def test_summarize_counts_answer_and_article_metrics_over_answerable_questions_only():
    summary = metrics.summarize(_four_results()).model_dump()
    # Latencies 10, 20, 30, 40: p50 = 25, p95 at position 2.85 -> 30 + 0.85 * 10.
    assert summary.pop("latency_ms") == {"p50": 25.0, "p95": 38.5}
    ndcg_q1 = 1.5 / (1 + 1 / math.log2(3))
    assert summary == pytest.approx(
        {
            "n_questions": 4,
            "n_answerable": 3,
            "n_with_snippets": 3,
            "n_multi_article": 1,
            # Answer ranks 1, 4, none over 3 questions.
            "answer_hit@1": 1 / 3,
            "answer_hit@3": 1 / 3,
            "answer_hit@5": 2 / 3,
            "answer_hit@10": 2 / 3,
            "highlight_hit@1": None,  # none of these results carries a highlight
            "answer_mrr@10": (1 + 0.25 + 0) / 3,
            # q1 ranks 1 and 3 (see the nDCG test); q2 one relevant passage at rank 4 against an ideal
            # rank 1: 1/log2(5); q3 none.
            "ndcg@10": (ndcg_q1 + 1 / math.log2(5) + 0) / 3,
            # Article ranks 1, 2, 3.
            "article_hit@1": 1 / 3,
            "article_hit@3": 1.0,
            "article_hit@5": 1.0,
            "article_hit@10": 1.0,
            "article_mrr@10": (1 + 1 / 2 + 1 / 3) / 3,
            # All gold articles found for q1 and q2; q3 misses one of two.
            "article_full_recall@5": 2 / 3,
            "article_full_recall@10": 2 / 3,
            "article_full_recall_multi@5": 0.0,
            "article_full_recall_multi@10": 0.0,
            # Passage lengths 100, 200, 300, 400 (q3 returned none), unanswerable included.
            "mean_passage_chars": 250.0,
        }
    )


def test_highlight_hit_checks_the_sentence_the_first_passage_highlights():
    text = "第三季度出货5亿片。需求仍将持续。"
    on_answer = [make_passage(1, text, highlight=(0, 10)), make_passage(2, "5亿片")]
    on_other = [make_passage(1, text, highlight=(10, 17))]
    assert metrics.highlight_hit(on_answer, ["5 亿片"]) is True  # whitespace ignored, as for passages
    assert metrics.highlight_hit(on_other, ["5亿片"]) is False  # in the passage, not in its highlight
    assert metrics.highlight_hit([make_passage(1, text)], ["5亿片"]) is None  # nothing highlighted
    assert metrics.highlight_hit(on_answer, []) is None
    assert metrics.highlight_hit([], ["5亿片"]) is None


def test_highlight_hit_at_1_counts_only_questions_whose_first_passage_highlights_a_sentence():
    results = [
        make_result(answer_rank=1, highlight_hit=True),
        make_result(answer_rank=1, highlight_hit=False),
        make_result(answer_rank=None, highlight_hit=None),
    ]
    assert metrics.summarize(results).highlight_hit_1 == pytest.approx(0.5)
    assert metrics.summarize(results[2:]).highlight_hit_1 is None


def test_summarize_leaves_a_metric_null_when_no_question_counts_for_it():
    summary = metrics.summarize([make_result(answerable=False, n_gold_articles=0, n_snippets=0)])
    assert summary.answer_hit_1 is None
    assert summary.answer_mrr_10 is None
    assert summary.article_hit_5 is None
    assert summary.article_full_recall_multi_5 is None
    assert summary.mean_passage_chars is None
    assert summary.latency_ms.p50 == 1.0


def test_answer_metrics_skip_answerable_questions_without_snippets_but_article_metrics_count_them():
    results = [
        make_result(answer_rank=1, relevant_ranks=[1], article_rank=1),
        make_result(n_snippets=0, article_rank=None),
    ]
    summary = metrics.summarize(results)
    assert (summary.n_with_snippets, summary.answer_hit_1) == (1, 1.0)
    assert (summary.n_answerable, summary.article_hit_1) == (2, 0.5)


def test_summarize_by_groups_by_key_sorted_and_leaves_out_none():
    results = [*_four_results(), make_result(id="q5", type=None, lang="en")]
    by_lang = metrics.summarize_by(results, lambda result: result.lang)
    assert list(by_lang) == ["en", "zh"]
    assert (by_lang["en"].n_questions, by_lang["zh"].n_questions, by_lang["zh"].n_answerable) == (2, 3, 2)
    by_type = metrics.summarize_by(results, lambda result: result.type)
    assert list(by_type) == ["factoid", "multi-article", "unanswerable"]
    assert by_type["factoid"].answer_hit_1 == 0.5
    assert by_type["unanswerable"].answer_hit_1 is None


def test_hit_curve_gives_answer_hit_at_every_k_from_1_to_10():
    # Answer ranks 1, 4 and none: 1/3 up to k = 3, then 2/3.
    assert metrics.hit_curve(_four_results()) == pytest.approx([1 / 3] * 3 + [2 / 3] * 7)


def test_unanswerable_summary_separates_top_scores_and_has_no_flag_shares_without_flags():
    summary = metrics.summarize_unanswerable(_four_results())
    assert summary.n_unanswerable == 1
    assert (summary.top_score_unanswerable.n, summary.top_score_unanswerable.max) == (1, 0.2)
    assert summary.top_score_answerable.n == 3
    assert summary.top_score_answerable.mean == pytest.approx((0.9 + 0.7 + 0.6) / 3)
    assert summary.flagged_unanswerable is None
    assert summary.flagged_answerable is None


def test_unanswerable_flag_shares_are_over_the_questions_that_carry_a_flag():
    results = [
        make_result(answerable=False, n_gold_articles=0, n_snippets=0, flagged_answerable=False),
        make_result(answerable=False, n_gold_articles=0, n_snippets=0, flagged_answerable=True),
        make_result(answerable=False, n_gold_articles=0, n_snippets=0, flagged_answerable=None),
        make_result(flagged_answerable=True),
        make_result(flagged_answerable=True),
        make_result(flagged_answerable=False),
        make_result(flagged_answerable=True),
    ]
    summary = metrics.summarize_unanswerable(results)
    # Of the 2 unanswerable questions with a flag, 1 was flagged as having no answer; of the 4 answerable
    # ones, 1 was (wrongly) flagged so.
    assert summary.flagged_unanswerable == 0.5
    assert summary.flagged_answerable == 0.25


def _hits(pattern: str) -> list:
    """One answerable question per character: '1' answered at rank 1, '0' not found."""
    return [make_result(id=f"q{i}", answer_rank=1 if mark == "1" else None) for i, mark in enumerate(pattern)]


def test_the_bootstrap_interval_holds_the_metric_and_narrows_with_more_questions():
    few = metrics.confidence_intervals(_hits("1100110011"))["answer_hit@1"]
    many = metrics.confidence_intervals(_hits("1100110011" * 20))["answer_hit@1"]
    assert few.low < 0.6 < few.high and few.n == 10
    assert many.low < 0.6 < many.high and many.n == 200
    assert many.high - many.low < (few.high - few.low) / 2


def test_a_metric_measured_on_no_question_has_no_interval():
    assert "highlight_hit@1" not in metrics.confidence_intervals(_hits("101"))
    assert "flagged_unanswerable" not in metrics.confidence_intervals(_hits("101"))


def test_a_paired_difference_of_one_question_in_a_hundred_is_noise_and_of_thirty_is_not():
    baseline = _hits("10" * 50)
    one_more = _hits("11" + "10" * 49)
    thirty_more = _hits("11" * 30 + "10" * 20)
    noise = metrics.paired_differences(baseline, one_more)["answer_hit@1"]
    real = metrics.paired_differences(baseline, thirty_more)["answer_hit@1"]
    assert noise.delta == pytest.approx(0.01) and noise.low <= 0 <= noise.high and noise.p_value > 0.05
    assert real.delta == pytest.approx(0.30) and real.low > 0 and real.p_value < 0.01
    assert real.n == 100
