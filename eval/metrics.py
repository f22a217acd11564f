"""Retrieval metrics: pure functions over rankings, and summaries over per-question results.

Ranks are 1-based positions in the returned list. Text matching ignores all whitespace, because PDF and
report text breaks lines and spaces CJK/Latin runs differently from the snippets written by annotators.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from eval.results import (
    K_VALUES,
    Difference,
    Interval,
    Latency,
    QuestionResult,
    ScoreDistribution,
    Summary,
    UnanswerableSummary,
)
from index.search import Citation, Passage

MAX_K = 10


def squash(text: str) -> str:
    """`text` with every whitespace character removed."""
    return "".join(text.split())


def snippet_ranks(passage_texts: Sequence[str], snippets: Sequence[str]) -> list[int]:
    """Ranks of the passages that contain at least one answer snippet (whitespace ignored on both sides)."""
    squashed = [squash(snippet) for snippet in snippets]
    return [
        rank
        for rank, text in enumerate(passage_texts, start=1)
        if any(snippet in squash(text) for snippet in squashed)
    ]


def highlight_hit(passages: Sequence[Passage], snippets: Sequence[str]) -> bool | None:
    """Whether the first passage's highlighted sentence contains a snippet (whitespace ignored); None when
    there are no snippets, no passage, or no highlight: the sentence a reader is pointed to, checked."""
    if not snippets or not passages or passages[0].highlight is None:
        return None
    first = passages[0]
    sentence = squash(first.text[first.highlight.char_start : first.highlight.char_end])
    return any(squash(snippet) in sentence for snippet in snippets)


def hit_at_k(rank: int | None, k: int) -> bool:
    return rank is not None and rank <= k


def reciprocal_rank(rank: int | None, k: int = MAX_K) -> float:
    """1/rank when the first relevant passage is within the top k, else 0."""
    return 1.0 / rank if hit_at_k(rank, k) else 0.0


def ndcg_at_k(relevant_ranks: Sequence[int], k: int = MAX_K) -> float:
    """Binary-gain nDCG@k, DCG = sum of 1/log2(rank + 1) over relevant ranks <= k.

    The ideal DCG puts the R relevant passages found in the top k at ranks 1..R: the corpus-wide count of
    relevant passages is unknown (any chunk may contain a snippet), so this measures how well the retrieved
    relevant passages are ordered, and is 0 when none is retrieved. Recall is measured by hit@k instead.
    """
    ranks = sorted({rank for rank in relevant_ranks if rank <= k})
    if not ranks:
        return 0.0
    dcg = sum(1.0 / math.log2(rank + 1) for rank in ranks)
    ideal = sum(1.0 / math.log2(position + 1) for position in range(1, len(ranks) + 1))
    return dcg / ideal


def gold_article_ranks(
    citations: Sequence[Citation], gold_titles: Sequence[str], gold_doc_ids: Sequence[str]
) -> list[int | None]:
    """For each gold article (titles first, then doc ids), the rank of the first passage citing it, or None.

    A title matches a citation's title with whitespace ignored; a doc id matches exactly.
    """
    titles = [squash(citation.title) for citation in citations]
    ranks: list[int | None] = []
    for gold_title in gold_titles:
        wanted = squash(gold_title)
        ranks.append(next((rank for rank, title in enumerate(titles, start=1) if title == wanted), None))
    for gold_doc_id in gold_doc_ids:
        ranks.append(
            next(
                (rank for rank, citation in enumerate(citations, start=1) if citation.doc_id == gold_doc_id),
                None,
            )
        )
    return ranks


def first_article_rank(article_ranks: Sequence[int | None]) -> int | None:
    """Rank of the first passage citing any gold article."""
    found = [rank for rank in article_ranks if rank is not None]
    return min(found) if found else None


def full_recall_rank(article_ranks: Sequence[int | None]) -> int | None:
    """Rank by which every gold article has been cited, or None if one never is (or there is none)."""
    if not article_ranks or any(rank is None for rank in article_ranks):
        return None
    return max(rank for rank in article_ranks if rank is not None)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between order statistics (numpy's default)."""
    if not values:
        raise ValueError("percentile of an empty sequence is undefined")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def score_distribution(scores: Sequence[float]) -> ScoreDistribution:
    if not scores:
        return ScoreDistribution(n=0, mean=None, p10=None, p50=None, p90=None, min=None, max=None)
    return ScoreDistribution(
        n=len(scores),
        mean=sum(scores) / len(scores),
        p10=percentile(scores, 10),
        p50=percentile(scores, 50),
        p90=percentile(scores, 90),
        min=min(scores),
        max=max(scores),
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _share(results: Sequence[QuestionResult], passes: Callable[[QuestionResult], bool]) -> float | None:
    return _mean([1.0 if passes(result) else 0.0 for result in results])


def hit_curve(results: Sequence[QuestionResult], max_k: int = MAX_K) -> list[float | None]:
    """Answer hit@k for k = 1..max_k over the questions with answer snippets."""
    with_snippets = [result for result in results if result.answerable and result.n_snippets]
    return [_share(with_snippets, lambda r, k=k: hit_at_k(r.answer_rank, k)) for k in range(1, max_k + 1)]


def summarize(results: Sequence[QuestionResult]) -> Summary:
    """Every metric of `Summary` over `results` (see `Summary` for which questions each one counts)."""
    answerable = [result for result in results if result.answerable]
    with_snippets = [result for result in answerable if result.n_snippets]
    multi_article = [result for result in answerable if result.n_gold_articles > 1]
    latencies = [result.latency_ms for result in results]
    passage_chars = [chars for result in results for chars in result.passage_chars]
    metrics: dict[str, float | None] = {}
    for k in K_VALUES:
        metrics[f"answer_hit@{k}"] = _share(with_snippets, lambda r, k=k: hit_at_k(r.answer_rank, k))
        metrics[f"article_hit@{k}"] = _share(answerable, lambda r, k=k: hit_at_k(r.article_rank, k))
    for k in (5, 10):
        metrics[f"article_full_recall@{k}"] = _share(
            answerable, lambda r, k=k: hit_at_k(r.article_full_rank, k)
        )
        metrics[f"article_full_recall_multi@{k}"] = _share(
            multi_article, lambda r, k=k: hit_at_k(r.article_full_rank, k)
        )
    return Summary.model_validate(
        {
            "n_questions": len(results),
            "n_answerable": len(answerable),
            "n_with_snippets": len(with_snippets),
            "n_multi_article": len(multi_article),
            **metrics,
            "highlight_hit@1": _share(
                [r for r in with_snippets if r.highlight_hit is not None], lambda r: bool(r.highlight_hit)
            ),
            "answer_mrr@10": _mean([reciprocal_rank(r.answer_rank) for r in with_snippets]),
            "ndcg@10": _mean([ndcg_at_k(r.relevant_ranks) for r in with_snippets]),
            "article_mrr@10": _mean([reciprocal_rank(r.article_rank) for r in answerable]),
            "mean_passage_chars": _mean(passage_chars),
            "latency_ms": Latency(
                p50=percentile(latencies, 50) if latencies else None,
                p95=percentile(latencies, 95) if latencies else None,
            ),
        }
    )


def summarize_by(
    results: Sequence[QuestionResult], key: Callable[[QuestionResult], str | None]
) -> dict[str, Summary]:
    """One summary per value of `key` (sorted); results whose key is None are left out."""
    groups: dict[str, list[QuestionResult]] = {}
    for result in results:
        value = key(result)
        if value is not None:
            groups.setdefault(value, []).append(result)
    return {value: summarize(groups[value]) for value in sorted(groups)}


def summarize_unanswerable(results: Sequence[QuestionResult]) -> UnanswerableSummary:
    unanswerable = [result for result in results if not result.answerable]
    answerable = [result for result in results if result.answerable]

    def top_scores(group: list[QuestionResult]) -> list[float]:
        return [result.top_score for result in group if result.top_score is not None]

    def flagged_share(group: list[QuestionResult]) -> float | None:
        # "Flagged" is the retriever saying the index holds no answer: right for unanswerable
        # questions (want a high share), wrong for answerable ones (want a low share).
        judged = [result for result in group if result.flagged_answerable is not None]
        return _share(judged, lambda r: r.flagged_answerable is False)

    return UnanswerableSummary(
        n_unanswerable=len(unanswerable),
        top_score_unanswerable=score_distribution(top_scores(unanswerable)),
        top_score_answerable=score_distribution(top_scores(answerable)),
        flagged_unanswerable=flagged_share(unanswerable),
        flagged_answerable=flagged_share(answerable),
    )


# The metrics a change is judged by; each is a mean over questions of a per-question value.
HEADLINE_METRICS: dict[str, Callable[[QuestionResult], float | None]] = {
    "answer_hit@1": lambda r: float(hit_at_k(r.answer_rank, 1)) if r.answerable and r.n_snippets else None,
    "answer_hit@5": lambda r: float(hit_at_k(r.answer_rank, 5)) if r.answerable and r.n_snippets else None,
    "answer_mrr@10": lambda r: reciprocal_rank(r.answer_rank) if r.answerable and r.n_snippets else None,
    "article_hit@1": lambda r: float(hit_at_k(r.article_rank, 1)) if r.answerable else None,
    "highlight_hit@1": lambda r: (
        float(r.highlight_hit) if r.answerable and r.n_snippets and r.highlight_hit is not None else None
    ),
    "flagged_unanswerable": lambda r: (
        float(r.flagged_answerable is False)
        if not r.answerable and r.flagged_answerable is not None
        else None
    ),
    "flagged_answerable": lambda r: (
        float(r.flagged_answerable is False) if r.answerable and r.flagged_answerable is not None else None
    ),
}
RESAMPLES = 2000


def _per_question(results: Sequence[QuestionResult], metric: str) -> dict[str, float]:
    value_of = HEADLINE_METRICS[metric]
    return {r.id: value for r in results if (value := value_of(r)) is not None}


def _resampled_means(values: np.ndarray, seed: int) -> np.ndarray:
    """The mean of `values` in each of RESAMPLES resamples of them (with replacement), seeded."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(RESAMPLES, values.size))
    return values[picks].mean(axis=1)


def confidence_intervals(results: Sequence[QuestionResult], seed: int = 0) -> dict[str, Interval]:
    """95% percentile-bootstrap intervals of the headline metrics (those measured on any question)."""
    intervals = {}
    for metric in HEADLINE_METRICS:
        values = np.array(list(_per_question(results, metric).values()))
        if values.size:
            low, high = np.percentile(_resampled_means(values, seed), [2.5, 97.5])
            intervals[metric] = Interval(low=float(low), high=float(high), n=int(values.size))
    return intervals


def paired_differences(
    baseline: Sequence[QuestionResult], other: Sequence[QuestionResult], seed: int = 0
) -> dict[str, Difference]:
    """Each headline metric of `other` minus `baseline`'s over the questions both are measured on, with a
    paired bootstrap: the questions are resampled, and each keeps its two values together."""
    differences = {}
    for metric in HEADLINE_METRICS:
        first, second = _per_question(baseline, metric), _per_question(other, metric)
        shared = sorted(first.keys() & second.keys())
        if not shared:
            continue
        deltas = np.array([second[q] - first[q] for q in shared])
        resampled = _resampled_means(deltas, seed)
        low, high = np.percentile(resampled, [2.5, 97.5])
        crossing = min(float((resampled <= 0).mean()), float((resampled >= 0).mean()))
        differences[metric] = Difference(
            delta=float(deltas.mean()),
            low=float(low),
            high=float(high),
            p_value=min(1.0, 2 * crossing),
            n=len(shared),
        )
    return differences
