"""Ingest speed (issue 12): the sample report indexed end to end by each way of embedding, side by side.

    PYTHONPATH=. .venv/bin/python bench/ingest.py --rounds 3 --json var/bench/ingest.json

Each variant indexes the corpus (default: the bundled sample report) into a new, empty index as
`citeqa ingest` does (`Resources.from_encoder` → the collection's `Indexer.ingest_paths`: read, chunk,
embed, store), with its own settings. Models are loaded once per weight kind (float32, int8) before the
clock starts, so load time is not part of any figure. Rounds repeat every variant, each round in another
order, so that a change in the machine's load falls on all of them alike; the table gives each variant's
median over the rounds and its ratio to today's path (separate sentence vectors, float32, no cache) of
the same run.

Variants:
- today: every chunk and every distinct sentence embedded on its own (1,448 texts for the sample);
- cache warm: today's settings with the embedding cache, filled beforehand by one untimed ingest of the
  same corpus into another index (what a re-ingest or a reindex with unchanged chunking meets);
- late: sentence vectors pooled from their chunk's own forward pass (CITEQA_SENTENCE_VECTORS=late);
- int8: torch's dynamic int8 weights (CITEQA_QUANTIZE=true);
- late + int8: both.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from citeqa.settings import SAMPLE_CORPUS, Settings
from citeqa.wiring import Resources, load_encoder
from embeddings.encoder import Encoder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    name: str
    settings: dict[str, Any]
    warm_cache: bool = False


VARIANTS = [
    Variant("today", {"sentence_vectors": "separate", "quantize": False, "embedding_cache_mb": 0}),
    Variant("cache warm", {"sentence_vectors": "separate", "quantize": False}, warm_cache=True),
    Variant("late", {"sentence_vectors": "late", "quantize": False, "embedding_cache_mb": 0}),
    Variant("int8", {"sentence_vectors": "separate", "quantize": True, "embedding_cache_mb": 0}),
    Variant("late + int8", {"sentence_vectors": "late", "quantize": True, "embedding_cache_mb": 0}),
]
BASELINE = VARIANTS[0].name


class CountingEncoder(Encoder):
    """The model, counting the texts it is asked to embed (a passage of late chunking counts one, and so
    does a sentence past the length limit, which it embeds alone)."""

    texts = 0

    def encode_passages(
        self, texts: Sequence[str], on_progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        self.texts += len(texts)
        return super().encode_passages(texts, on_progress)

    def encode_passage_sentences(
        self,
        texts: Sequence[str],
        sentences: Sequence[Sequence[tuple[int, int]]],
        on_progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        self.texts += len(texts)
        return super().encode_passage_sentences(texts, sentences, on_progress)


def load_counting(settings: Settings) -> CountingEncoder:
    """The configured model, loaded by `citeqa.wiring.load_encoder`, counting."""
    encoder = load_encoder(settings, encoder_class=CountingEncoder)
    assert isinstance(encoder, CountingEncoder)
    return encoder


def ingest_once(
    base: Settings, variant: Variant, encoder: CountingEncoder, corpus: Path, work: Path
) -> dict[str, Any]:
    """Index `corpus` into a new index with `variant`'s settings: wall and CPU seconds, texts embedded."""
    data_dir = Path(tempfile.mkdtemp(dir=work, prefix="index-"))
    settings = base.model_copy(
        update={**variant.settings, "data_dir": data_dir, "embedding_cache": work / "embedding-cache.sqlite3"}
    )
    encoder.texts = 0
    resources = Resources.from_encoder(settings, encoder)
    try:
        collection = resources.collection()
        wall, cpu = time.perf_counter(), time.process_time()
        report = collection.indexer.ingest_paths([corpus])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        documents, chunks = collection.store.counts()
        vectors = sum(collection.store.vector_counts().values())
    finally:
        resources.close()
        shutil.rmtree(data_dir)
    if not report.documents:
        raise SystemExit(f"No document could be read from {corpus}.")
    return {
        "variant": variant.name,
        "wall_s": wall,
        "cpu_s": cpu,
        "texts_embedded": encoder.texts,
        "documents": documents,
        "chunks": chunks,
        "vectors": vectors,
    }


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per variant: the median wall and CPU time over the rounds, texts embedded, rates, and the speed-up
    over today's path: the median of each round's ratio (a round's variants ran under about the same
    load), and the ratio of median CPU times (which the load inflates less than wall time)."""
    today = {run["round"]: run for run in runs if run["variant"] == BASELINE}
    today_cpu = statistics.median(run["cpu_s"] for run in today.values())
    rows = []
    for variant in dict.fromkeys(run["variant"] for run in runs):
        mine = [run for run in runs if run["variant"] == variant]
        wall, cpu = (
            statistics.median(run["wall_s"] for run in mine),
            statistics.median(run["cpu_s"] for run in mine),
        )
        rows.append(
            {
                "variant": variant,
                "rounds": len(mine),
                "wall_s": wall,
                "wall_s_each": [round(run["wall_s"], 2) for run in mine],
                "cpu_s": cpu,
                "texts_embedded": mine[0]["texts_embedded"],
                "texts_per_s": mine[0]["texts_embedded"] / wall,
                "vectors_per_s": mine[0]["vectors"] / wall,
                "chunks": mine[0]["chunks"],
                "vectors": mine[0]["vectors"],
                "speedup": statistics.median(today[run["round"]]["wall_s"] / run["wall_s"] for run in mine),
                "cpu_speedup": today_cpu / cpu,
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| variant | wall s (median) | each round | CPU s | texts embedded | texts/s | vectors stored/s "
        "| speed-up vs today (wall, per round) | (CPU) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['variant']} | {row['wall_s']:.2f} | {', '.join(map(str, row['wall_s_each']))} "
            f"| {row['cpu_s']:.2f} | {row['texts_embedded']:,} | {row['texts_per_s']:.1f} "
            f"| {row['vectors_per_s']:.1f} | {row['speedup']:.2f}× | {row['cpu_speedup']:.2f}× |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=SAMPLE_CORPUS, help="file or folder to index")
    parser.add_argument("--rounds", type=int, default=3, help="times each variant indexes the corpus")
    parser.add_argument(
        "--variants", nargs="+", default=[v.name for v in VARIANTS], choices=[v.name for v in VARIANTS]
    )
    parser.add_argument("--json", type=Path, help="write the runs and the table here")
    args = parser.parse_args(argv)
    if BASELINE not in args.variants:
        parser.error(f"the variants must include {BASELINE!r}: the ratios are to it")
    variants = [v for v in VARIANTS if v.name in args.variants]

    base = Settings(translate_questions=False)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    encoders = {
        quantize: load_counting(base.model_copy(update={"quantize": quantize}))
        for quantize in sorted({v.settings["quantize"] for v in variants})
    }
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="citeqa-bench-ingest-") as folder:
        work = Path(folder)
        warmed: set[bool] = set()
        for variant in variants:
            quantize = variant.settings["quantize"]
            if variant.warm_cache:
                ingest_once(base, Variant("fill", variant.settings), encoders[quantize], args.corpus, work)
            if quantize not in warmed:
                # Untimed: torch picks its kernels on the first passes of each weight kind.
                ingest_once(base, variant, encoders[quantize], args.corpus, work)
                warmed.add(quantize)
        for round_number in range(args.rounds):
            # Each round starts one variant later: every variant runs first, last and between the others.
            shift = round_number % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                run = ingest_once(base, variant, encoders[variant.settings["quantize"]], args.corpus, work)
                run["round"] = round_number
                runs.append(run)
                logger.info("round %d %s: %.2f s", round_number, variant.name, run["wall_s"])
    rows = summarise(runs)
    result = {
        "started": started,
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "corpus": str(args.corpus),
        "rounds": args.rounds,
        "runs": runs,
        "table": rows,
    }
    sys.stdout.write(markdown(rows) + "\n")
    sys.stdout.write(
        f"load average before {load_before[0]:.2f}, after {result['machine']['load_average_after'][0]:.2f}\n"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()
