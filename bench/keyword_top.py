"""Keyword candidates at scale (issue 14): `KeywordIndex.top` against reading every posting list.

Builds a keyword index of its own (no vectors) from real text: the chunks of the extbench corpus, copied
as `bench/scale.py` copies it (each copy's title numbered) until it holds `--chunks` chunks, then asks the
extbench questions as search asks them (Chinese questions as terms; English ones as translated concepts)
and compares, per question and side by side in one run:

- `full`: `KeywordIndex.search` (every posting list of the question read) and the best `--limit` of it;
- `top`: `KeywordIndex.top` at each `--budget` (postings read in full; the rest looked up).

For each it prints the time (p50/p95/max), the share of questions answered exactly, the recall of the
exact top `--limit` (ties counted), and the relative error of BM25's mean and spread over the index (the
background hybrid ranking z-scores against).

    .venv/bin/python bench/keyword_top.py --chunks 200000 --budget 50000 200000 1000000

Not a test: building takes minutes (about 2,000 chunks/s).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from keywords import connect, write
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from scale import DEFAULT_EXTBENCH, Corpus, copy_of, load_corpus

from citeqa.settings import get_settings
from citeqa.wiring import load_translator
from index.chunking import Chunker, matching_text
from index.lexical import Keywords
from index.storage.keywords import KeywordIndex
from index.text import is_cjk, terms

BATCH = 512  # chunks a transaction, as ingest commits
TIE_TOLERANCE = 1e-4


def chunk_texts(corpus: Corpus) -> Iterator[str]:
    """The text each chunk of the corpus is matched by, copy after copy (as `bench/scale.py` copies it)."""
    settings = get_settings()
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    split = [(document, chunker.split(document)) for document in corpus.documents]
    for copy in itertools.count():
        for document, chunks in split:
            named = copy_of(document, copy)
            for chunk in chunks:
                yield matching_text(named, chunk)


def build(db: sqlite3.Connection, target: int, corpus: Corpus, console: Console) -> float | None:
    """Grow the index to `target` chunks (the chunks it lacks, in order); chunks/s (tokenising included),
    or None when it had them all."""
    index = KeywordIndex(db)
    start = index.chunk_count()
    if start >= target:
        return None
    texts = itertools.islice(chunk_texts(corpus), start, target)
    chunks = enumerate(map(terms, texts), start=start)
    started = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("building", total=target, completed=start)
        while batch := list(itertools.islice(chunks, BATCH)):
            write(db, lambda db, batch=batch: (index.add_many(db, batch), index.compact(db)))
            progress.advance(task, len(batch))
    return (target - start) / (time.perf_counter() - started)


def questions(corpus: Corpus, count: int, offset: int = 0) -> list[Keywords]:
    """`count` of the corpus' questions from the `offset`-th (extbench: CMRC zh, XQuAD zh, XQuAD en in
    turn) as search asks them."""
    translator = load_translator(get_settings())
    asked = []
    for question in corpus.questions[offset : offset + count]:
        if is_cjk(question):
            asked.append(Keywords(terms=terms(question)))
        elif translator is not None:
            asked.append(Keywords(concepts=translator.translate(question, with_source_words=False)))
    return [keywords for keywords in asked if keywords.terms or keywords.concepts]


def recall(ids: np.ndarray, scores: np.ndarray, by_id: dict[int, float], exact: np.ndarray, k: int) -> float:
    """The share of the exact top `k` (by `exact`, the full scores) among the best `k` of `ids` by
    `scores`, chunks tied with the exact `k`-th counting as found."""
    wanted = min(k, exact.size)
    if not wanted:
        return 1.0
    kth = float(np.partition(exact, exact.size - wanted)[exact.size - wanted])
    chosen = ids[np.argsort(-scores, kind="stable")[:k]].tolist()
    return sum(by_id.get(chunk, 0.0) >= kth - TIE_TOLERANCE for chunk in chosen) / wanted


def measure(
    db: sqlite3.Connection, asked: Sequence[Keywords], budgets: Sequence[int], limit: int
) -> dict[str, dict[str, list[float]]]:
    full = KeywordIndex(db)
    chunks = full.chunk_count()
    variants = {f"top, budget {budget:,}": KeywordIndex(db, read_budget=budget) for budget in budgets}
    figures: dict[str, dict[str, list[float]]] = {
        name: {"ms": [], "exact": [], "recall": [], "recall10": [], "mean": [], "spread": []}
        for name in ["full", *variants]
    }
    for keywords in asked:
        began = time.perf_counter()
        ids, scores = full.search(keywords)
        best = ids if ids.size <= limit else ids[np.argpartition(-scores, limit - 1)[:limit]]
        figures["full"]["ms"].append((time.perf_counter() - began) * 1000)
        del best  # what a search keeps; timed only
        mean = float(scores.sum(dtype=np.float64)) / chunks
        spread = max(float((scores.astype(np.float64) ** 2).sum()) / chunks - mean**2, 0.0) ** 0.5
        by_id = dict(zip(ids.tolist(), scores.tolist(), strict=True))
        for name, index in variants.items():
            began = time.perf_counter()
            found = index.top(keywords, limit)
            elapsed = (time.perf_counter() - began) * 1000
            row = figures[name]
            row["ms"].append(elapsed)
            row["exact"].append(float(found.exact))
            row["recall"].append(recall(found.ids, found.scores, by_id, scores, limit))
            row["recall10"].append(recall(found.ids, found.scores, by_id, scores, 10))
            row["mean"].append(abs(found.mean - mean) / mean if mean else 0.0)
            row["spread"].append(abs(found.spread - spread) / spread if spread else 0.0)
    return figures


def summary(figures: dict[str, dict[str, list[float]]]) -> list[dict[str, float | str]]:
    """One row of figures per variant."""
    rows: list[dict[str, float | str]] = []
    for name, row in figures.items():
        ms = sorted(row["ms"])
        rows.append(
            {"variant": name, "p50_ms": statistics.median(ms), "p95_ms": ms[int(0.95 * (len(ms) - 1))]}
        )
        rows[-1]["max_ms"] = ms[-1]
        if name != "full":
            rows[-1] |= {
                "exact": statistics.mean(row["exact"]),
                "recall": statistics.mean(row["recall"]),
                "recall_min": min(row["recall"]),
                "recall10": statistics.mean(row["recall10"]),
                "recall10_min": min(row["recall10"]),
                "mean_error_p50": statistics.median(row["mean"]),
                "mean_error_max": max(row["mean"]),
                "spread_error_p50": statistics.median(row["spread"]),
                "spread_error_max": max(row["spread"]),
            }
    return rows


def report(rows: Sequence[dict[str, float | str]], title: str, console: Console) -> None:
    table = Table(title=title)
    columns = ["variant", "p50 ms", "p95 ms", "max ms", "exact", "recall@limit (min)", "recall@10 (min)"]
    for column in [*columns, "mean err p50/max", "spread err p50/max"]:
        table.add_column(column, justify="left" if column == "variant" else "right")
    for row in rows:
        times = [f"{row[key]:.1f}" for key in ("p50_ms", "p95_ms", "max_ms")]
        if "exact" not in row:
            table.add_row(str(row["variant"]), *times, "", "", "", "", "")
            continue
        table.add_row(
            str(row["variant"]),
            *times,
            f"{row['exact']:.2f}",
            f"{row['recall']:.3f} ({row['recall_min']:.2f})",
            f"{row['recall10']:.3f} ({row['recall10_min']:.2f})",
            f"{row['mean_error_p50']:.1%} / {row['mean_error_max']:.1%}",
            f"{row['spread_error_p50']:.1%} / {row['spread_error_max']:.1%}",
        )
    console.print(table)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=200_000, help="chunks in the index (default 200,000)")
    parser.add_argument(
        "--budget",
        type=int,
        nargs="+",
        default=[200_000, 1_000_000],
        help="read budgets of `top` to compare (default 200,000 and 1,000,000)",
    )
    parser.add_argument("--limit", type=int, default=200, help="candidates wanted (default 200, search's)")
    parser.add_argument("--queries", type=int, default=300, help="questions asked (default 300)")
    parser.add_argument(
        "--offset",
        type=int,
        default=0,
        help="skip this many questions first: choose a budget on one slice, report it on another",
    )
    parser.add_argument(
        "--corpus",
        choices=["auto", "extbench", "sample"],
        default="auto",
        help="the text copied: extbench (with its questions) or the bundled sample report (with the dev "
        "questions); auto takes extbench when it is there",
    )
    parser.add_argument("--extbench", type=Path, default=DEFAULT_EXTBENCH, help="the extbench folder")
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the index in this SQLite file (grown to --chunks if smaller) instead of a temporary one",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args(argv)
    console = Console(width=160)
    corpus = load_corpus(args.corpus, args.extbench, seed=2018)
    with tempfile.TemporaryDirectory() as folder:
        db = connect(args.keep or Path(folder) / "keywords.sqlite3")
        db.execute("PRAGMA synchronous = OFF")  # a throwaway index
        rate = build(db, args.chunks, corpus, console)
        if rate is not None:
            console.print(f"built to {args.chunks:,} chunks at {rate:,.0f} chunks/s")
        asked = questions(corpus, args.queries, args.offset)
        chunks = KeywordIndex(db).chunk_count()
        rows = summary(measure(db, asked, args.budget, args.limit))
        db.close()
    report(rows, f"{corpus.kind}: {len(asked)} questions over {chunks:,} chunks, top {args.limit}", console)
    if args.json:
        args.json.write_text(json.dumps({"corpus": corpus.kind, "chunks": chunks, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
