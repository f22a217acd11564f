"""Keyword index at scale (issue 14): search latency and the cost of a write as the index grows.

Builds `index.storage.keywords.KeywordIndex` over synthetic chunks in a SQLite file of its own: terms drawn
Zipf-like (p ∝ 1/rank) from a vocabulary of made-up Chinese words, about 60 a chunk, added in
transactions of 512 chunks (as `citeqa ingest` commits), each followed by `compact`, then measures:

- search: a 3-term Chinese question (terms drawn with the same Zipf law) and a question of 3 concepts of 2
  alternatives each, caches dropped before each search; p50/p95/max, and the candidates returned;
- a write: adding one 10-chunk document (transaction and commit included), the compaction after it, and
  removing one; the first search after the write;
- a purge after removing 1% of the chunks: in one call without a budget, and the calls (and their times)
  it takes with the default budget (`COMPACT_BUDGET` postings read a call).

    .venv/bin/python bench/keywords.py --chunks 10000 100000

Not a test: it takes minutes at 100k chunks. Ingest throughput here is the keyword index's alone.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from index.lexical import Alternative, Concept, Keywords
from index.storage.keywords import SCHEMA, Compaction, KeywordIndex

CHINESE = "".join(chr(code) for code in range(0x4E00, 0x4E00 + 3000))
DOCUMENT_CHUNKS = 10


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")  # as the store
    db.executescript(SCHEMA)
    return db


def write(db: sqlite3.Connection, action: Callable[[sqlite3.Connection], object]) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        action(db)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


class Corpus:
    """Made-up Chinese words and Zipf-like draws of them."""

    def __init__(self, vocabulary: int, terms_per_chunk: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        words: set[str] = set()
        while len(words) < vocabulary:
            length = int(self.rng.choice([1, 2, 2, 2, 3, 4]))
            words.add("".join(CHINESE[i] for i in self.rng.integers(0, len(CHINESE), length)))
        spelled = sorted(words)
        self.words = [spelled[i] for i in self.rng.permutation(len(spelled))]  # ranks unrelated to spelling
        weights = 1.0 / np.arange(1, vocabulary + 1)
        self.cumulative = np.cumsum(weights / weights.sum())
        self.terms_per_chunk = terms_per_chunk

    def draw(self, n: int) -> list[str]:
        ranks = np.minimum(np.searchsorted(self.cumulative, self.rng.random(n)), len(self.words) - 1)
        return [self.words[rank] for rank in ranks]

    def chunk(self) -> list[str]:
        return self.draw(int(self.rng.integers(self.terms_per_chunk // 2, self.terms_per_chunk * 3 // 2 + 1)))

    def document(self, first_id: int) -> list[tuple[int, list[str]]]:
        return [(first_id + i, self.chunk()) for i in range(DOCUMENT_CHUNKS)]


def build(
    db: sqlite3.Connection, index: KeywordIndex, corpus: Corpus, start: int, chunks: int, batch: int
) -> tuple[float, float]:
    """Chunks `start`…`chunks` in transactions of `batch` chunks, each followed by `compact` (as ingest
    commits, `index.ingest.COMMIT_EVERY_CHUNKS`); seconds taken, wall and CPU (drawing the chunks excluded)."""
    db.execute("PRAGMA synchronous = NORMAL")  # building only: the measured writes run with FULL
    seconds, cpu = 0.0, 0.0
    for first in range(start, chunks, batch):
        chunk_ids = range(first, min(first + batch, chunks))
        transaction = [(chunk_id, corpus.chunk()) for chunk_id in chunk_ids]
        wall, cpu_ms = timed(
            lambda transaction=transaction: write(
                db, lambda db: (index.add_many(db, transaction), index.compact(db))
            )
        )
        seconds, cpu = seconds + wall / 1000, cpu + cpu_ms / 1000
    db.execute("PRAGMA synchronous = FULL")
    return seconds, cpu


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """Milliseconds taken by `action`: wall clock, and CPU of this process (what a busy machine inflates
    the first with, not the second; fsyncs count in the first only)."""
    began, began_cpu = time.perf_counter(), time.process_time()
    action()
    return (time.perf_counter() - began) * 1000, (time.process_time() - began_cpu) * 1000


def percentiles(values: list[tuple[float, float]]) -> str:
    ordered = sorted(wall for wall, _ in values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    cpu = statistics.median(cpu for _, cpu in values)
    return (
        f"p50 {statistics.median(ordered):7.2f}  p95 {p95:7.2f}  max {ordered[-1]:7.2f}  (CPU p50 {cpu:6.2f})"
    )


def measure(
    db: sqlite3.Connection,
    index: KeywordIndex,
    corpus: Corpus,
    chunks: int,
    rounds: int,
    args: argparse.Namespace,
) -> None:
    term_times, concept_times, found = [], [], []
    for _ in range(args.queries):
        keywords = Keywords(terms=corpus.draw(3))
        index.invalidate()
        term_times.append(timed(lambda keywords=keywords: found.append(index.search(keywords)[0].size)))
        words = corpus.draw(6)
        concepts = [
            Concept(
                f"c{i}",
                (Alternative(words[2 * i], (words[2 * i],), 1.0), Alternative("", (words[2 * i + 1],), 0.6)),
            )
            for i in range(3)
        ]
        index.invalidate()
        concept_times.append(timed(lambda concepts=concepts: index.search(Keywords(concepts=concepts))))
    common = Keywords(terms=corpus.words[:3])
    index.invalidate()
    worst, _ = timed(lambda: index.search(common))
    print(f"  search, 3 terms (ms)        {percentiles(term_times)}   candidates p50 {int(np.median(found))}")
    print(f"  search, 3 concepts (ms)     {percentiles(concept_times)}")
    print(f"  search, 3 commonest terms   {worst:7.2f} ms ({index.search(common)[0].size} candidates)")

    add_times, compact_times, remove_times, first_search = [], [], [], []
    next_id = 10_000_000 + 100 * chunks  # ids of their own at each size
    for _ in range(args.cycles):
        document = corpus.document(next_id)
        next_id += DOCUMENT_CHUNKS
        add_times.append(timed(lambda document=document: write(db, lambda db: index.add_many(db, document))))
        compact_times.append(timed(lambda: write(db, index.compact)))
        keywords = Keywords(terms=corpus.draw(3))
        index.search(keywords)
        write(db, lambda db, chunk_id=next_id: index.add(db, chunk_id, corpus.chunk()))  # a new stamp
        next_id += 1
        first_search.append(timed(lambda keywords=keywords: index.search(keywords)))
        remove_times.append(
            timed(lambda document=document: write(db, lambda db: index.remove(db, [c for c, _ in document])))
        )
    print(f"  add a 10-chunk document (ms) {percentiles(add_times)}")
    print(f"  compact after it (ms)        {percentiles(compact_times)}")
    print(f"  remove it (ms)               {percentiles(remove_times)}")
    print(f"  first search after a write   {percentiles(first_search)}")

    gone = list(range(2 * rounds, chunks, 100))  # ids no earlier round removed
    removal, _ = timed(lambda: write(db, lambda db: index.remove(db, gone)))
    times: list[tuple[float, float]] = []
    reports: list[Compaction] = []
    while not reports or not reports[-1].purged:
        times.append(timed(lambda: write(db, lambda db: reports.append(index.compact(db, purge=True)))))
    print(
        f"  remove 1% ({len(gone)} chunks) {removal:.0f} ms; purge: {len(times)} compact calls, {percentiles(times)}"
    )
    gone = list(range(2 * rounds + 1, chunks, 100))
    write(db, lambda db: index.remove(db, gone))
    whole, whole_cpu = timed(lambda: write(db, lambda db: index.compact(db, purge=True, budget=None)))
    print(f"  remove 1% more; purge in one call without a budget: {whole:.0f} ms (CPU {whole_cpu:.0f})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--vocabulary", type=int, default=50_000)
    parser.add_argument("--terms", type=int, default=60, help="terms per chunk, on average")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=30, help="documents added and removed per size")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--batch", type=int, default=512, help="chunks per transaction while building")
    args = parser.parse_args()
    corpus = Corpus(args.vocabulary, args.terms, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "keywords.sqlite3"
        db = connect(path)
        index = KeywordIndex(db)
        built = 0
        for rounds, chunks in enumerate(sorted(args.chunks)):
            seconds, cpu = build(db, index, corpus, built, chunks, args.batch)
            size = path.stat().st_size + Path(f"{path}-wal").stat().st_size
            blocks = db.execute(
                "SELECT COUNT(*), MAX(c) FROM (SELECT COUNT(*) c FROM keyword_blocks GROUP BY term_id)"
            )
            terms, most = blocks.fetchone()
            print(
                f"{chunks} chunks (the last {chunks - built} added at {(chunks - built) / seconds:.0f} chunks/s, "
                f"{(chunks - built) / cpu:.0f} per CPU second, in transactions of {args.batch}; "
                f"{size / 2**20:.0f} MB on disk, "
                f"{terms} terms, at most {most} blocks a term)"
            )
            built = chunks
            tables = db.execute(
                "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
            ).fetchall()
            print("  on disk (MB): " + ", ".join(f"{name} {size / 2**20:.1f}" for name, size in tables[:6]))
            measure(db, index, corpus, chunks, rounds, args)
            write(db, lambda db: index.compact(db, budget=None))  # the next size starts compacted
        db.close()


if __name__ == "__main__":
    main()
