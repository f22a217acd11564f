"""Choose the answerable thresholds: per script, the confidence below which only 5% of answerable questions fall.

    python scripts/calibrate_answerable.py QUESTIONS.jsonl --corpus PATH [--corpus PATH ...] [--share 0.05]

Prints each script's confidence percentiles for answerable and unanswerable questions, the chosen
thresholds (set them as CITEQA_ANSWERABLE_THRESHOLD_CJK / _OTHER) and the shares they flag.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from eval.cli import load_resources
from eval.questions import load_questions
from index.search import is_cjk
from service.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("questions", type=Path)
    parser.add_argument("--corpus", type=Path, action="append", required=True)
    parser.add_argument(
        "--share", type=float, default=0.05, help="answerable share allowed below the threshold"
    )
    args = parser.parse_args()
    resources = load_resources(Settings(), args.corpus)
    try:
        rows = [
            (is_cjk(q.question), q.answerable, resources.searcher.search(q.question, top_k=1).confidence)
            for q in load_questions(args.questions)
        ]
    finally:
        resources.close()
    report = {}
    for script, cjk in (("cjk", True), ("other", False)):
        answerable = np.array([c for s, a, c in rows if s == cjk and a])
        unanswerable = np.array([c for s, a, c in rows if s == cjk and not a])
        if not answerable.size:
            continue
        threshold = float(np.quantile(answerable, args.share, method="lower"))
        report[script] = {
            "threshold": round(threshold, 4),
            "answerable": {
                "n": int(answerable.size),
                "p5": round(float(np.percentile(answerable, 5)), 4),
                "min": round(float(answerable.min()), 4),
            },
            "unanswerable": sorted(round(float(c), 4) for c in unanswerable),
            "flagged_answerable": round(float((answerable < threshold).mean()), 4),
            "flagged_unanswerable": round(float((unanswerable < threshold).mean()), 4)
            if unanswerable.size
            else None,
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
