"""Search over HTTP on the Milvus backend against the local one (issue 10), side by side on the sample.

Indexes the sample report twice, into a local index folder and into a `milvus-lite server` started for
the run on a free loopback port. Then it starts one `citeqa serve` on each, with the same model and settings
(question batching on, the question cache off), and warms both up, the translator included. In `--rounds`
alternating turns it has one client ask `POST /v1/search` back to back for `--seconds` on each. Latency is
the client's, HTTP included; the ratio of the Milvus server's p50 to the local one's is what the issue's
target (≤ 2×) speaks of.

    PYTHONPATH=. .venv/bin/python bench/milvus_http.py                       # 2 rounds of 30 s each
    PYTHONPATH=. .venv/bin/python bench/milvus_http.py --seconds 10 --rounds 1 --json r.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.http_concurrency import (
    DEFAULT_QUESTIONS,
    REPO_ROOT,
    ensure_index,
    free_port,
    machine_info,
    percentile,
    read_questions,
    run_clients,
    start_server,
    stop_server,
    warm_up,
)
from tests.milvus_server import milvus_lite_server

RATIO_TARGET = 2.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30, help="How long each turn runs (default 30).")
    parser.add_argument(
        "--rounds", type=int, default=2, help="Turns on each server, alternating (default 2)."
    )
    parser.add_argument("--max-requests", type=int, default=20_000, help="Most requests in one turn.")
    parser.add_argument("--corpus", type=Path, default=REPO_ROOT / "data" / "sample", help="What to index.")
    parser.add_argument("--questions", type=Path, nargs="+", default=DEFAULT_QUESTIONS)
    parser.add_argument("--json", type=Path, help="Write every figure here.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    questions = read_questions(args.questions)
    with tempfile.TemporaryDirectory(prefix="citeqa-milvus-http-") as scratch:
        root = Path(scratch)
        with milvus_lite_server(root / "milvus-data", free_port(), root / "milvus.log") as uri:
            backends = {"local": {}, "milvus": {"backend": "milvus", "milvus_uri": uri}}
            for name, settings in backends.items():
                ensure_index(root / name, args.corpus, **settings)
            servers = {}
            try:
                for name, settings in backends.items():
                    started = time.perf_counter()
                    servers[name] = start_server(root / name, 2.0, 0, 0, root, **settings)
                    warm_up(servers[name], questions, started)
                latencies: dict[str, list[float]] = {name: [] for name in servers}
                turns = []
                for round_number in range(args.rounds):
                    for name, server in servers.items():
                        cell = run_clients(server, 1, args.seconds, args.max_requests, questions)
                        turns.append({"round": round_number + 1, "backend": name, **cell.__dict__})
                        latencies[name].append(cell.p50_ms)
                        print(f"round {round_number + 1} {name}: p50 {cell.p50_ms} ms, {cell.errors} errors")
            finally:
                for server in servers.values():
                    stop_server(server)
    summary = {name: {"p50_ms_median_of_turns": percentile(values, 50)} for name, values in latencies.items()}
    ratio = summary["milvus"]["p50_ms_median_of_turns"] / summary["local"]["p50_ms_median_of_turns"]
    print(
        "\n| backend | turns | p50 ms (median of turns) | p95 ms (last turn) | errors |\n|---|---:|---:|---:|---:|"
    )
    for name in servers:
        mine = [turn for turn in turns if turn["backend"] == name]
        print(
            f"| {name} | {len(mine)} | {summary[name]['p50_ms_median_of_turns']:.1f} | {mine[-1]['p95_ms']} | "
            f"{sum(turn['errors'] for turn in mine)} |"
        )
    verdict = "met" if ratio <= RATIO_TARGET else "missed"
    print(f"\nMilvus p50 / local p50: {ratio:.2f}x (target <= {RATIO_TARGET:g}x: {verdict})")
    if args.json:
        result = {"machine": machine_info(), "turns": turns, "summary": summary, "ratio": ratio}
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
