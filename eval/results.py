"""Result models of an evaluation run: per-question records, summaries and the report document.

JSON shape (see `EvalReport.to_document`):
- one retriever: its `ModeReport` document, i.e. `retriever`, `questions_file`, `top_k`, `n_questions`,
  `n_answerable`, `summary`, `by_lang`, `by_type`, `unanswerable`, `questions`;
- several retrievers (compare): `{"questions_file", "top_k", "modes": {retriever name: ModeReport document}}`.
Metric keys use `@` (`answer_hit@5`); a metric is null where its slice holds no question it applies to.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

K_VALUES = (1, 3, 5, 10)


class QuestionResult(BaseModel):
    """What one retriever returned for one question, reduced to what the metrics need (ranks are 1-based)."""

    id: str
    lang: str
    type: str | None
    answerable: bool
    n_gold_articles: int
    n_snippets: int
    answer_rank: int | None = Field(description="First passage containing an answer snippet.")
    relevant_ranks: list[int] = Field(description="Every passage containing an answer snippet.")
    article_rank: int | None = Field(description="First passage citing a gold article.")
    article_full_rank: int | None = Field(description="Rank by which every gold article has been cited.")
    top_score: float | None
    latency_ms: float
    passage_chars: list[int]
    flagged_answerable: bool | None = Field(
        description="The retriever's own answerable flag, if it gives one."
    )
    highlight_hit: bool | None = Field(
        default=None,
        description="Whether the first passage's highlighted sentence contains an answer snippet; null when "
        "the question has no snippets or the retriever highlights nothing.",
    )


class _AliasedModel(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)


class Latency(BaseModel):
    p50: float | None
    p95: float | None


class Summary(_AliasedModel):
    """Metrics over a set of questions.

    Answer metrics are over answerable questions with snippets (`n_with_snippets`; `highlight_hit@1`: those
    of them whose first passage carries a highlight, null for retrievers that highlight nothing), article metrics over
    answerable questions (`n_answerable`), `article_full_recall_multi@k` over those with several gold articles
    (`n_multi_article`); passage length and latency over every question.
    """

    n_questions: int
    n_answerable: int
    n_with_snippets: int
    n_multi_article: int
    answer_hit_1: float | None = Field(alias="answer_hit@1")
    highlight_hit_1: float | None = Field(default=None, alias="highlight_hit@1")
    answer_hit_3: float | None = Field(alias="answer_hit@3")
    answer_hit_5: float | None = Field(alias="answer_hit@5")
    answer_hit_10: float | None = Field(alias="answer_hit@10")
    answer_mrr_10: float | None = Field(alias="answer_mrr@10")
    ndcg_10: float | None = Field(alias="ndcg@10")
    article_hit_1: float | None = Field(alias="article_hit@1")
    article_hit_3: float | None = Field(alias="article_hit@3")
    article_hit_5: float | None = Field(alias="article_hit@5")
    article_hit_10: float | None = Field(alias="article_hit@10")
    article_full_recall_5: float | None = Field(alias="article_full_recall@5")
    article_full_recall_10: float | None = Field(alias="article_full_recall@10")
    article_full_recall_multi_5: float | None = Field(alias="article_full_recall_multi@5")
    article_full_recall_multi_10: float | None = Field(alias="article_full_recall_multi@10")
    article_mrr_10: float | None = Field(alias="article_mrr@10")
    mean_passage_chars: float | None
    latency_ms: Latency


class ScoreDistribution(BaseModel):
    """Top-score distribution; every statistic is null when `n` is 0."""

    n: int
    mean: float | None
    p10: float | None
    p50: float | None
    p90: float | None
    min: float | None
    max: float | None


class UnanswerableSummary(BaseModel):
    """How well the top score (or the retriever's flag) separates unanswerable from answerable questions.

    `flagged_unanswerable`: share of unanswerable questions the retriever flagged as having no answer
    (higher is better); `flagged_answerable`: share of answerable questions it flagged so (lower is
    better). Both are over the questions that carry a flag, and null when the retriever gives none.
    """

    n_unanswerable: int
    top_score_unanswerable: ScoreDistribution
    top_score_answerable: ScoreDistribution
    flagged_unanswerable: float | None
    flagged_answerable: float | None


class Interval(BaseModel):
    """A 95% percentile-bootstrap interval of a metric: resampling the questions it is measured on."""

    low: float
    high: float
    n: int = Field(description="Questions the metric is measured on.")


class Difference(BaseModel):
    """A metric of one retriever minus the same metric of another, on the same questions (paired)."""

    delta: float
    low: float = Field(description="95% paired-bootstrap interval of `delta`.")
    high: float
    p_value: float = Field(description="Two-sided: how often the resampled difference crosses 0, doubled.")
    n: int = Field(description="Questions both are measured on.")


class ModeReport(BaseModel):
    """Everything measured for one retriever (mode) over one question file."""

    retriever: str
    questions_file: str
    top_k: int
    n_questions: int
    n_answerable: int
    summary: Summary
    hit_curve: list[float | None] = Field(description="answer hit@k for k = 1..10.")
    by_lang: dict[str, Summary]
    by_type: dict[str, Summary] = Field(description="Questions without a type are left out.")
    unanswerable: UnanswerableSummary
    intervals: dict[str, Interval] = Field(
        default_factory=dict, description="95% bootstrap interval of each headline metric."
    )
    versus_first: dict[str, Difference] | None = Field(
        default=None,
        description="Each headline metric minus the first retriever's of the run (the default mode), paired "
        "by question; null for the first itself.",
    )
    questions: list[QuestionResult]


class EvalReport(BaseModel):
    """One run over a question file, with one `ModeReport` per retriever, in the order they were given."""

    questions_file: str
    top_k: int
    modes: dict[str, ModeReport]

    def to_document(self) -> dict[str, Any]:
        """The JSON document: one mode's report alone, or `{questions_file, top_k, modes}` for several."""
        if len(self.modes) == 1:
            return next(iter(self.modes.values())).model_dump(mode="json")
        return self.model_dump(mode="json")
