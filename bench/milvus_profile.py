"""Where a Milvus search spends its time, in this process, against the local backend (issue 10).

Indexes the sample report into a local index folder and into a `milvus-lite server` started for the run,
with the fake encoder (tests/fakes.py: no model, so the stores' time is what is measured) and the CC-CEDICT
translator. Then it asks every question of `--questions` on both, in each mode, and counts the questions
whose top 5 passages differ; times `--timed` hybrid searches on each (everything read once already); and
prints a cProfile of those on Milvus, the `--lines` costliest calls by cumulative time.

    PYTHONPATH=. .venv/bin/python bench/milvus_profile.py
    PYTHONPATH=. .venv/bin/python bench/milvus_profile.py --modes hybrid --timed 30 --lines 40
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from bench.http_concurrency import REPO_ROOT, free_port, read_questions
from index.chunking import Chunker
from index.ingest import Indexer
from index.milvus.connection import Connection
from index.milvus.store import MilvusStore
from index.report import parse_report
from index.search import RankingWeights, Searcher
from index.store import IndexStore, Manifest
from index.translation import cc_cedict_translator
from tests.fakes import FakeEncoder
from tests.milvus_server import milvus_lite_server

SAMPLE = REPO_ROOT / "data" / "sample" / "info-industry-monitor-2020-12.txt"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--questions", type=Path, nargs="+", default=[REPO_ROOT / "tests" / "data" / "seed_dev.jsonl"]
    )
    parser.add_argument("--modes", nargs="+", default=["hybrid", "lexical", "dense"])
    parser.add_argument("--timed", type=int, default=30, help="Hybrid searches timed on each backend.")
    parser.add_argument("--lines", type=int, default=30, help="Lines of the profile printed.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    questions = read_questions(args.questions)
    documents = parse_report(SAMPLE.read_text(encoding="utf-8"), SAMPLE.name)
    encoder, chunker = FakeEncoder(), Chunker()
    manifest = Manifest(model=encoder.name, dimension=encoder.dimension, chunking=chunker.settings)
    translator = cc_cedict_translator()
    with tempfile.TemporaryDirectory(prefix="citeqa-milvus-profile-") as scratch:
        root = Path(scratch)
        with milvus_lite_server(root / "milvus-data", free_port(), root / "milvus.log") as uri:
            connection = Connection(uri)
            stores = {
                "local": IndexStore.open(root / "local", manifest),
                "milvus": MilvusStore.open(connection, f"profile-{uuid.uuid4().hex[:8]}", manifest),
            }
            for store in stores.values():
                Indexer(store, encoder, chunker).add(documents)
            searchers = {
                name: Searcher(store, encoder, RankingWeights(), translator) for name, store in stores.items()
            }
            for mode in args.modes:
                differ = 0
                for question in questions:
                    tops = [
                        [
                            (p.citation.doc_id, p.citation.char_start)
                            for p in searcher.search(question, 5, mode=mode).passages
                        ]
                        for searcher in searchers.values()
                    ]
                    differ += tops[0] != tops[1]
                print(f"{mode}: top 5 differs for {differ} of {len(questions)} questions")
            timed = questions[: args.timed]
            for name, searcher in searchers.items():
                started = time.perf_counter()
                for question in timed:
                    searcher.search(question, 5)
                print(f"{name}: {(time.perf_counter() - started) / len(timed) * 1000:.1f} ms a hybrid search")
            profile = cProfile.Profile()
            profile.enable()
            for question in timed:
                searchers["milvus"].search(question, 5)
            profile.disable()
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.lines)
            print(out.getvalue())
            for store in stores.values():
                store.close()
            connection.close()


if __name__ == "__main__":
    main()
