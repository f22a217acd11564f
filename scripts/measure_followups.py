"""How often a follow-up question retrieves the right article, with and without the conversation's context.

For each pair of tests/data/followups.jsonl, the follow-up is searched twice: alone (what a search box does)
and as the query `index.followups.retrieval_query` builds from both turns (what POST /v1/chat does). A pair
counts as found at k when a passage of its gold article is among the top k.

    .venv/bin/python scripts/measure_followups.py              # the real embedded model, sample index
    .venv/bin/python scripts/measure_followups.py --data-dir var/index   # reuse an index holding the sample
    .venv/bin/python scripts/measure_followups.py --k 3 --pairs data/eval/followups2-tune.jsonl

Without --data-dir the sample report is indexed into a temporary folder first (a minute or two on CPU).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from citeqa.settings import get_settings
from citeqa.wiring import Resources
from index.followups import retrieval_query
from index.search import Searcher

logger = logging.getLogger(__name__)

PAIRS_FILE = Path(__file__).resolve().parent.parent / "tests" / "data" / "followups.jsonl"


PairKind = Literal["followup", "new_topic"]


class FollowupPair(BaseModel):
    """A question, the next question of the same user, and the article the second one is about.

    `followup` pairs need the first question to be understood; `new_topic` pairs must be left alone.
    """

    first: str
    followup: str
    gold_title: str
    kind: PairKind


class Figures(BaseModel):
    """Pairs whose gold article is in the top 1 / top k, searched alone and with context."""

    pairs: int
    rewritten: int
    alone_top1: int
    alone_topk: int
    context_top1: int
    context_topk: int
    k: int


def load_pairs(path: Path = PAIRS_FILE, kind: PairKind = "followup") -> list[FollowupPair]:
    pairs = [FollowupPair.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]
    return [pair for pair in pairs if pair.kind == kind]


def measure(searcher: Searcher, pairs: Sequence[FollowupPair], k: int = 5) -> Figures:
    counts = dict.fromkeys(("rewritten", "alone_top1", "alone_topk", "context_top1", "context_topk"), 0)
    for pair in pairs:
        built = retrieval_query([pair.first, pair.followup])
        counts["rewritten"] += built.rewritten
        for name, query in (("alone", pair.followup), ("context", built.query)):
            titles = [p.citation.title for p in searcher.search(query, top_k=k).passages]
            counts[f"{name}_top1"] += titles[:1] == [pair.gold_title]
            counts[f"{name}_topk"] += pair.gold_title in titles
            logger.debug("%s %r -> %s", name, query, titles[:1])
    return Figures(pairs=len(pairs), k=k, **counts)


def _report(label: str, figures: Figures) -> None:
    n = figures.pairs
    logger.info("%s: %d pairs, %d rewritten by the rules", label, n, figures.rewritten)
    for name, top1, topk in (
        ("follow-up alone  ", figures.alone_top1, figures.alone_topk),
        ("with context     ", figures.context_top1, figures.context_topk),
    ):
        logger.info(
            "  %s top-1 %d/%d (%.0f%%)   top-%d %d/%d (%.0f%%)",
            *(name, top1, n, 100 * top1 / n, figures.k, topk, n, 100 * topk / n),
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, help="An index that holds the sample report.")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument(
        "--pairs", type=Path, action="append", help=f"A pairs file (repeatable; default {PAIRS_FILE.name})."
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    with tempfile.TemporaryDirectory() as scratch:
        settings = get_settings().model_copy(update={"data_dir": args.data_dir or Path(scratch) / "index"})
        resources = Resources.load(settings)
        try:
            if resources.collection().store.counts()[0] == 0:
                resources.collection().indexer.ingest_paths([settings.sample_corpus])
            logger.info("model %s, index %s", resources.encoder.name, settings.data_dir)
            searcher = resources.collection().searcher
            for path in args.pairs or [PAIRS_FILE]:
                _report(f"{path.name}: follow-ups", measure(searcher, load_pairs(path), args.k))
                _report(
                    f"{path.name}: new topics (must not be rewritten)",
                    measure(searcher, load_pairs(path, kind="new_topic"), args.k),
                )
        finally:
            resources.close()


if __name__ == "__main__":
    main()
