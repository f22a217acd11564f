"""Choose the answerable thresholds: per script, the confidence below which only 5% of answerable questions fall.

    python scripts/calibrate_answerable.py QUESTIONS.jsonl --corpus PATH [--corpus PATH ...] [--share 0.05]
        [--held-out]

Prints, per script (Chinese, other), the confidences of answerable and unanswerable questions, the
threshold that flags `--share` of the answerable ones (set it as CITEQA_ANSWERABLE_THRESHOLD_CJK /
_OTHER), and the shares flagged at that threshold and at the configured one (to check on another
collection a threshold calibrated elsewhere).

`--held-out` also asks every answerable question with its gold articles left out of the search (a
filter on the other documents): a question whose answer was removed should be flagged, so this share
measures the flag on as many unanswerable questions as there are answerable ones.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from citeqa.settings import get_settings
from eval.corpus import load_resources
from eval.questions import EvalQuestion, load_questions
from index.search import Searcher, SearchFilters
from index.text import is_cjk


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("questions", type=Path)
    parser.add_argument("--corpus", type=Path, action="append", required=True)
    parser.add_argument(
        "--share", type=float, default=0.05, help="answerable share allowed below the threshold"
    )
    parser.add_argument(
        "--held-out", action="store_true", help="also ask answerable questions without their articles"
    )
    args = parser.parse_args()
    settings = get_settings()
    resources = load_resources(settings, args.corpus)
    try:
        searcher = resources.collection().searcher
        documents = [
            (summary.doc_id, summary.title) for summary in resources.collection().store.list_documents()
        ]
        rows = []
        for question in load_questions(args.questions):
            held_out = None
            others = other_documents(question, documents) if args.held_out and question.answerable else []
            if others:  # an empty filter would mean every document
                held_out = _confidence(searcher, question.question, others)
            rows.append(
                (
                    is_cjk(question.question),
                    question.answerable,
                    _confidence(searcher, question.question),
                    held_out,
                )
            )
    finally:
        resources.close()
    weights = settings.ranking_weights()
    configured = {"cjk": weights.answerable_threshold_cjk, "other": weights.answerable_threshold_other}
    report = {}
    for script, cjk in (("cjk", True), ("other", False)):
        answerable = np.array([c for s, a, c, _ in rows if s == cjk and a])
        unanswerable = np.array([c for s, a, c, _ in rows if s == cjk and not a])
        held_out = np.array([h for s, a, _, h in rows if s == cjk and h is not None])
        if not answerable.size:
            continue
        threshold = threshold_at_share(answerable, args.share)
        report[script] = {
            "n_answerable": int(answerable.size),
            "n_unanswerable": int(unanswerable.size),
            "n_held_out": int(held_out.size),
            "answerable_p5": round(float(np.percentile(answerable, 5)), 4),
            "unanswerable": sorted(round(float(c), 4) for c in unanswerable),
            "threshold": round(threshold, 4),
            "at_threshold": _flagged(threshold, answerable, unanswerable, held_out),
            "configured_threshold": configured[script],
            "at_configured_threshold": _flagged(configured[script], answerable, unanswerable, held_out),
        }
    print(json.dumps(report, indent=2))


def threshold_at_share(confidences: np.ndarray, share: float) -> float:
    """The least of the confidences at or above which all but `share` of them lie: the threshold that flags
    `share` of these answerable questions."""
    return float(np.quantile(confidences, share, method="lower"))


def _confidence(searcher: Searcher, question: str, doc_ids: list[str] | None = None) -> float:
    filters = SearchFilters(doc_ids=doc_ids) if doc_ids else None
    return searcher.search(question, top_k=1, filters=filters).confidence


def other_documents(question: EvalQuestion, documents: list[tuple[str, str]]) -> list[str]:
    gold_ids, gold_titles = set(question.gold_doc_ids), set(question.gold_titles)
    return [doc_id for doc_id, title in documents if doc_id not in gold_ids and title not in gold_titles]


def _flagged(
    threshold: float, answerable: np.ndarray, unanswerable: np.ndarray, held_out: np.ndarray
) -> dict[str, float | None]:
    def share(values: np.ndarray) -> float | None:
        return round(float((values < threshold).mean()), 4) if values.size else None

    return {
        "flagged_answerable": share(answerable),
        "flagged_unanswerable": share(unanswerable),
        "flagged_held_out": share(held_out),
    }


if __name__ == "__main__":
    main()
