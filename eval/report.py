"""Writers for an `EvalReport`: JSON document, Markdown tables and PNG plots under one output folder."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from eval.metrics import HEADLINE_METRICS, RESAMPLES
from eval.results import EvalReport, ModeReport, Summary

logger = logging.getLogger(__name__)

JSON_NAME = "report.json"
MARKDOWN_NAME = "report.md"
HIT_CURVE_PLOT = "hit_at_k.png"
BY_TYPE_PLOT = "by_type.png"
TOP_SCORE_PLOT = "top_scores.png"

# (column header, Summary key) of the main table; keys are the JSON keys, so the two never drift apart.
MAIN_COLUMNS = [
    ("hit@1", "answer_hit@1"),
    ("hit@3", "answer_hit@3"),
    ("hit@5", "answer_hit@5"),
    ("hit@10", "answer_hit@10"),
    ("highlight@1", "highlight_hit@1"),
    ("MRR@10", "answer_mrr@10"),
    ("nDCG@10", "ndcg@10"),
    ("art hit@1", "article_hit@1"),
    ("art hit@5", "article_hit@5"),
    ("full rec@5", "article_full_recall@5"),
    ("multi full rec@5", "article_full_recall_multi@5"),
    ("art MRR@10", "article_mrr@10"),
]
SLICE_COLUMNS = [
    ("hit@1", "answer_hit@1"),
    ("hit@5", "answer_hit@5"),
    ("MRR@10", "answer_mrr@10"),
    ("art hit@5", "article_hit@5"),
]


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _slice_table(
    report: EvalReport, label: str, slices: Callable[[ModeReport], dict[str, Summary]]
) -> list[str]:
    header = ["mode", label, "n", "answerable"] + [title for title, _ in SLICE_COLUMNS]
    rows = []
    for name, mode in report.modes.items():
        for value, summary in slices(mode).items():
            metrics = summary.model_dump()
            rows.append(
                [name, value, str(summary.n_questions), str(summary.n_answerable)]
                + [_number(metrics[key]) for _, key in SLICE_COLUMNS]
            )
    return _table(header, rows)


def render_markdown(report: EvalReport) -> str:
    """Main metrics (one row per mode), then by-language, by-type and unanswerable tables."""
    lines = [
        "# Retrieval evaluation",
        "",
        f"Questions: `{report.questions_file}`, top_k = {report.top_k}. "
        "Answer metrics count a passage containing an answer snippet (whitespace ignored); "
        "article metrics count a passage citing a gold article. nDCG@10 uses binary gains and the ideal "
        "ordering of the relevant passages retrieved.",
        "",
        "## Main metrics",
        "",
    ]
    header = (
        ["mode", "n", "answerable"]
        + [title for title, _ in MAIN_COLUMNS]
        + ["mean chars", "p50 ms", "p95 ms"]
    )
    rows = []
    for name, mode in report.modes.items():
        summary = mode.summary
        metrics = summary.model_dump()
        rows.append(
            [name, str(mode.n_questions), str(mode.n_answerable)]
            + [_number(metrics[key]) for _, key in MAIN_COLUMNS]
            + [
                _number(summary.mean_passage_chars, 0),
                _number(summary.latency_ms.p50, 1),
                _number(summary.latency_ms.p95, 1),
            ]
        )
    lines += _table(header, rows)
    lines += ["", "## By language", "", *_slice_table(report, "lang", lambda mode: mode.by_lang)]
    lines += ["", "## By type", "", *_slice_table(report, "type", lambda mode: mode.by_type)]
    lines += [
        "",
        "## Unanswerable questions",
        "",
        "Top passage score of unanswerable vs answerable questions; flagged = share of each group the "
        "retriever itself marked as having no answer in the index, – when it gives no flag.",
        "",
    ]
    header = [
        "mode",
        "n unanswerable",
        "unans. top mean",
        "unans. top p50",
        "unans. top p90",
        "ans. top p10",
        "ans. top p50",
        "ans. top mean",
        "flagged unans.",
        "flagged ans.",
    ]
    rows = []
    for name, mode in report.modes.items():
        unanswerable = mode.unanswerable
        low, high = unanswerable.top_score_unanswerable, unanswerable.top_score_answerable
        rows.append(
            [name, str(unanswerable.n_unanswerable)]
            + [_number(value) for value in (low.mean, low.p50, low.p90, high.p10, high.p50, high.mean)]
            + [_number(unanswerable.flagged_unanswerable), _number(unanswerable.flagged_answerable)]
        )
    lines += _table(header, rows)
    lines += ["", "## Noise", "", *noise_lines(report)]
    lines += ["", "## Plots", ""]
    lines += [f"![{name}]({name})" for name in (HIT_CURVE_PLOT, BY_TYPE_PLOT, TOP_SCORE_PLOT)]
    return "\n".join(lines) + "\n"


def interval_text(mode: ModeReport, metric: str) -> str:
    """`low–high`, the metric's 95% bootstrap interval, or – where it is not measured."""
    interval = mode.intervals.get(metric)
    return "–" if interval is None else f"{interval.low:.3f}–{interval.high:.3f}"


def difference_text(mode: ModeReport, metric: str) -> str:
    """`+0.012 (−0.020 to +0.045, p 0.48)`: the metric minus the first mode's, paired, or – for the first."""
    difference = (mode.versus_first or {}).get(metric)
    if difference is None:
        return "–"
    return f"{difference.delta:+.3f} ({difference.low:+.3f} to {difference.high:+.3f}, p {difference.p_value:.2f})"


def noise_lines(report: EvalReport) -> list[str]:
    """95% bootstrap intervals of the headline metrics, and each mode against the first, paired by question."""
    first = next(iter(report.modes))
    lines = [
        f"95% percentile-bootstrap intervals over the questions ({RESAMPLES} resamples); Δ = the metric minus "
        f"`{first}`'s on the same questions, with its paired-bootstrap 95% interval and two-sided p. A change "
        "is kept only when its interval excludes 0.",
        "",
    ]
    rows = []
    for name, mode in report.modes.items():
        values = mode.summary.model_dump(by_alias=True) | mode.unanswerable.model_dump()
        for metric in HEADLINE_METRICS:
            if metric in mode.intervals:
                rows.append(
                    [
                        name,
                        metric,
                        _number(values.get(metric)),
                        interval_text(mode, metric),
                        difference_text(mode, metric),
                    ]
                )
    return lines + _table(["mode", "metric", "value", "95% interval", f"Δ vs {first}"], rows)


def _plot_hit_curves(report: EvalReport, path: Path) -> None:
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.add_subplot()
    for name, mode in report.modes.items():
        points = [(k, hit) for k, hit in enumerate(mode.hit_curve, start=1) if hit is not None]
        axes.plot([k for k, _ in points], [hit for _, hit in points], marker="o", label=name)
    axes.set(xlabel="k", ylabel="answer hit@k", title="Answer hit@k", ylim=(0, 1.02), xticks=range(1, 11))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.savefig(path, dpi=110)


def _plot_by_type(report: EvalReport, path: Path) -> None:
    # Types without a question that has snippets (e.g. "unanswerable") have no hit rate: they get no slot.
    types = sorted(
        {
            value
            for mode in report.modes.values()
            for value, summary in mode.by_type.items()
            if summary.answer_hit_5 is not None
        }
    )
    figure = Figure(figsize=(max(6.0, 1.3 * len(types) + 2), 4.5), layout="constrained")
    axes = figure.add_subplot()
    width = 0.8 / len(report.modes)
    for index, (name, mode) in enumerate(report.modes.items()):
        slots = [slot for slot, value in enumerate(types) if value in mode.by_type]
        offset = (index - (len(report.modes) - 1) / 2) * width
        heights = [mode.by_type[types[slot]].answer_hit_5 or 0.0 for slot in slots]
        axes.bar([slot + offset for slot in slots], heights, width=width, label=name)
    first = next(iter(report.modes.values()))
    labels = [
        f"{value}\n(n={first.by_type[value].n_with_snippets})" if value in first.by_type else value
        for value in types
    ]
    axes.set_xticks(range(len(types)), labels)
    axes.set(ylabel="answer hit@5", title="Answer hit@5 by question type", ylim=(0, 1.02))
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="lower right")
    figure.savefig(path, dpi=110)


def _plot_top_scores(report: EvalReport, path: Path) -> None:
    # Score scales differ between retrievers (cosine, BM25): one panel each, with its own y axis.
    figure = Figure(figsize=(3.2 * len(report.modes) + 1, 4.5), layout="constrained")
    panels = figure.subplots(1, len(report.modes), squeeze=False)[0]
    for axes, (name, mode) in zip(panels, report.modes.items(), strict=True):
        for slot, (answerable, color, marker) in enumerate(
            ((True, "tab:blue", "o"), (False, "tab:red", "x"))
        ):
            scores = [
                result.top_score
                for result in mode.questions
                if result.answerable is answerable and result.top_score is not None
            ]
            # A fixed horizontal spread keeps equal scores visible without randomness in the output.
            spread = [slot + (index % 9 - 4) * 0.04 for index in range(len(scores))]
            axes.scatter(spread, scores, color=color, marker=marker, alpha=0.6)
        axes.set_xticks([0, 1], ["answerable", "unanswerable"])
        axes.set_xlim(-0.6, 1.6)
        axes.set_title(name)
        axes.grid(axis="y", alpha=0.3)
    panels[0].set_ylabel("top passage score")
    figure.suptitle("Top passage score per question")
    figure.savefig(path, dpi=110)


def write_json(report: EvalReport, path: Path) -> Path:
    path.write_text(json.dumps(report.to_document(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def write_markdown(report: EvalReport, path: Path) -> Path:
    path.write_text(render_markdown(report), encoding="utf-8")
    return path


def write_plots(report: EvalReport, out_dir: Path) -> list[Path]:
    """hit@k curves, per-type bars and top-score strips, as PNG files in `out_dir`."""
    paths = [out_dir / HIT_CURVE_PLOT, out_dir / BY_TYPE_PLOT, out_dir / TOP_SCORE_PLOT]
    for plot, path in zip((_plot_hit_curves, _plot_by_type, _plot_top_scores), paths, strict=True):
        plot(report, path)
    return paths


def write_report(report: EvalReport, out_dir: Path) -> list[Path]:
    """JSON, Markdown and plots into `out_dir` (created if missing); returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [write_json(report, out_dir / JSON_NAME), write_markdown(report, out_dir / MARKDOWN_NAME)]
    paths += write_plots(report, out_dir)
    logger.info("Wrote evaluation report to %s", out_dir)
    return paths
