"""CPU time of `Searcher.search` per question with the question's vector already cached (issue 12).

What a search costs after encoding is Python under one GIL; with many clients it, not the model, bounds
throughput (docs/PERF.md, "Concurrent questions"). Process CPU time is measured rather than wall time, so
that a shared machine's load inflates it less. Run it once per checkout to compare two versions in turns:

    PYTHONPATH=. .venv/bin/python bench/search_cpu.py --data-dir var/bench/http-sample
    PYTHONPATH=../old .venv/bin/python bench/search_cpu.py --data-dir var/bench/http-sample   # another checkout

The index is read from `--data-dir` (bench/http_concurrency.py builds one of the sample report there).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_QUESTIONS = [
    REPO_ROOT / "tests" / "data" / "seed_dev.jsonl",
    REPO_ROOT / "data" / "eval" / "dev2-tune.jsonl",
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="CITEQA_DATA_DIR of an index.")
    parser.add_argument("--questions", type=Path, nargs="+", default=DEFAULT_QUESTIONS, help="JSONL files.")
    parser.add_argument("--repeats", type=int, default=2, help="Timed passes over the questions.")
    args = parser.parse_args()

    from citeqa.settings import Settings
    from citeqa.wiring import Resources

    questions = [json.loads(line)["question"] for path in args.questions for line in path.open()]
    settings = Settings(data_dir=args.data_dir, query_batch_wait_ms=0, query_cache_size=len(questions) + 1)
    resources = Resources.load(settings)
    try:
        searcher = resources.collection().searcher
        for question in questions:  # untimed: fills the question cache and builds the translator
            searcher.search(question, top_k=5)
        times = []
        for _ in range(args.repeats):
            for question in questions:
                started = time.process_time()
                searcher.search(question, top_k=5)
                times.append((time.process_time() - started) * 1000)
    finally:
        resources.close()
    times.sort()
    summary = {
        "searches": len(times),
        "cpu_ms_p50": round(times[len(times) // 2], 2),
        "cpu_ms_p95": round(times[int(0.95 * len(times))], 2),
        "cpu_ms_mean": round(sum(times) / len(times), 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
