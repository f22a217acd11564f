"""Runs retrievers over a question file and measures what each returns."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from citeqa.errors import EvalConfigError
from eval import metrics
from eval.questions import EvalQuestion, load_questions
from eval.report import write_report
from eval.results import EvalReport, ModeReport, QuestionResult
from index.search import Passage

logger = logging.getLogger(__name__)


class Retrieval(BaseModel):
    """Passages plus the retriever's own verdict on whether the question is answerable (None: no verdict)."""

    passages: list[Passage]
    answerable: bool | None = None


@runtime_checkable
class Retriever(Protocol):
    """Anything that ranks passages for a question. It may return plain passages or a `Retrieval`."""

    name: str

    def retrieve(self, question: str, top_k: int) -> Sequence[Passage] | Retrieval: ...


def evaluate_question(
    question: EvalQuestion, retrieval: Sequence[Passage] | Retrieval, latency_ms: float
) -> QuestionResult:
    """The per-question record of one retrieval (passages are taken in the order returned)."""
    if isinstance(retrieval, Retrieval):
        passages, flag = retrieval.passages, retrieval.answerable
    else:
        passages, flag = list(retrieval), None
    relevant = metrics.snippet_ranks([passage.text for passage in passages], question.answer_snippets)
    article_ranks = metrics.gold_article_ranks(
        [passage.citation for passage in passages], question.gold_titles, question.gold_doc_ids
    )
    return QuestionResult(
        id=question.id,
        lang=question.lang,
        type=question.type,
        answerable=question.answerable,
        n_gold_articles=len(article_ranks),
        n_snippets=len(question.answer_snippets),
        answer_rank=relevant[0] if relevant else None,
        relevant_ranks=relevant,
        article_rank=metrics.first_article_rank(article_ranks),
        article_full_rank=metrics.full_recall_rank(article_ranks),
        top_score=max((passage.score for passage in passages), default=None),
        latency_ms=latency_ms,
        passage_chars=[len(passage.text) for passage in passages],
        flagged_answerable=flag,
        highlight_hit=metrics.highlight_hit(passages, question.answer_snippets),
    )


def build_mode_report(
    retriever_name: str, questions_file: str, top_k: int, results: list[QuestionResult]
) -> ModeReport:
    return ModeReport(
        retriever=retriever_name,
        questions_file=questions_file,
        top_k=top_k,
        n_questions=len(results),
        n_answerable=sum(result.answerable for result in results),
        summary=metrics.summarize(results),
        hit_curve=metrics.hit_curve(results),
        by_lang=metrics.summarize_by(results, lambda result: result.lang),
        by_type=metrics.summarize_by(results, lambda result: result.type),
        unanswerable=metrics.summarize_unanswerable(results),
        intervals=metrics.confidence_intervals(results),
        questions=results,
    )


def run_retriever(
    retriever: Retriever, questions: Sequence[EvalQuestion], top_k: int, progress: Progress
) -> list[QuestionResult]:
    """Every question through one retriever, timing each `retrieve` call.

    One untimed call comes first so that lazy model loading does not land in the latency percentiles.
    """
    retriever.retrieve(questions[0].question, top_k)
    task = progress.add_task(retriever.name, total=len(questions))
    results = []
    for question in questions:
        started = time.perf_counter()
        retrieval = retriever.retrieve(question.question, top_k)
        latency_ms = (time.perf_counter() - started) * 1000
        results.append(evaluate_question(question, retrieval, latency_ms))
        progress.advance(task)
    return results


def run_eval(
    questions_path: Path, retrievers: Sequence[Retriever], top_k: int = 10, out_dir: Path | None = None
) -> EvalReport:
    """Evaluate each retriever on the questions; with `out_dir`, also write JSON, Markdown and plots there.

    Metrics go up to @10, so a `top_k` below 10 caps them (hit@10 then equals hit@top_k).
    """
    if not retrievers:
        raise EvalConfigError("No retriever given: pass at least one mode or retriever to evaluate")
    if top_k < 1:
        raise EvalConfigError(f"top_k is {top_k}; it must be at least 1")
    names = [retriever.name for retriever in retrievers]
    if len(set(names)) != len(names):
        raise EvalConfigError(f"Retriever names must differ, got {names}")
    if top_k < metrics.MAX_K:
        logger.warning(
            "top_k=%d is below %d: metrics @%d are capped at @%d", top_k, metrics.MAX_K, metrics.MAX_K, top_k
        )
    questions = load_questions(questions_path)
    modes = {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as progress:
        for retriever in retrievers:
            results = run_retriever(retriever, questions, top_k, progress)
            modes[retriever.name] = build_mode_report(retriever.name, str(questions_path), top_k, results)
            summary = modes[retriever.name].summary
            logger.info(
                "%s: answer hit@1 %s, hit@5 %s, MRR@10 %s over %d questions with snippets",
                retriever.name,
                summary.answer_hit_1,
                summary.answer_hit_5,
                summary.answer_mrr_10,
                summary.n_with_snippets,
            )
    first, *others = modes.values()
    for mode in others:
        mode.versus_first = metrics.paired_differences(first.questions, mode.questions)
    report = EvalReport(questions_file=str(questions_path), top_k=top_k, modes=modes)
    if out_dir is not None:
        write_report(report, out_dir)
    return report
