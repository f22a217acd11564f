"""Vector index benchmark (issue 14): when exact search stops being fast enough, and which HNSW replaces it.

For each size n it builds `index.storage.vectors.FaissVectorIndex` indexes of n vectors (dimension 384, that
of the embedded model) and measures, per index and efSearch:

- search p50 / p95 for one question (k=10), wall clock and CPU time of the searching thread, with FAISS on
  one thread (one question per search, as the server runs them; CPU time is what a quiet machine's wall
  clock would be, and stays comparable when other processes load the machine);
- build time (FAISS on `--build-threads` threads), and the index's size (its serialised bytes, which is
  what it holds in memory: codes, graph links, levels);
- recall@10 against exact search on the same vectors, for two query sets (below); a returned vector counts
  when its exact score reaches the exact 10th best (ties at the cut are not misses).

Then, on the default approximate index of the larger sizes: searches restricted to `allowed` sets of
several sizes, scored exactly vs through the filtered graph (where to switch), and searches with 15% of
the vectors removed (tombstones), and save/load times.

Vectors have the structure of text, not of noise (uniformly random 384-d vectors are the worst case for a
graph index and unlike embeddings). They are built from real text: the extbench corpus
(`../shared/bench/extbench/corpus.jsonl`, adapted from CMRC 2018 and XQuAD, CC BY-SA 4.0), or the bundled
sample report (`data/sample/`) without it. The text is split into sentences; each sentence becomes hashed
character 1- and 2-gram counts (65,536 buckets) projected to 384 dimensions by a fixed Gaussian matrix;
a "chunk" is ~300 characters of sentences drawn from a neighbourhood of ±20 sentences around a random
anchor (so chunks of the same passage share sentences, as overlapping chunks and related documents do),
its vector the normalised sum of its sentences'. Unigrams as well as bigrams: with bigrams alone, two
texts sharing no bigram are nearly orthogonal, pairwise cosines centre on 0 and the principal components
are nearly flat (the noise-like worst case again); with unigrams the cosines centre on ~0.3 and the
spectrum decays, closer to a sentence encoder's (`--ngrams 2` measures the bigram-only case).

Queries, 200 of each (`--queries`):
- related: new chunks drawn the same way from the indexed sentences: questions about indexed text, whose
  nearest chunks are clearly nearer than the rest;
- held-out: chunks of documents left out of the index (5%): questions the collection does not answer,
  whose top 10 are weak matches with scores close together, the hardest case for an approximate index.

The 1M set is the corpus's 14,431 sentences recombined a million times (each in ~500 chunks): denser
clusters of similar chunks than a real million-chunk collection, so its recall is a pessimistic figure.

Run: `.venv/bin/python bench/vectors.py` (10k, 50k, 100k, 300k: 34 minutes on the 2 cores while other
work loaded them); `--sizes 1000000` for 1M (1.5 GB of vectors plus the indexes; 11 minutes quiet with
`--only-default`, 29 busy with the sq8 variant too). Sizes up to `--grid-max` (100k) get the whole grid
(M 16/32 × fp32/fp16/sq8, and efConstruction 40 for one), up to `--storage-max` (300k) M=32 ×
fp32/fp16/sq8, larger ones the default and its sq8 variant; `--only-default` builds the default alone.
`--json FILE` writes every figure.

Measured 2026-12-01 (2-core AMD EPYC, faiss 1.15.1): flat/fp32 CPU p50 ms (recall 1), and the default HNSW
(M=32, efC=100, fp16) at several efSearch, as CPU p50 ms · recall@10 related · held-out. 10k and 50k come
from the busy run, the rest from a quiet one, where wall clock equalled CPU time:

| n | flat | efS 64 | efS 128 | efS 256 (default) | efS 1024 |
|---|---|---|---|---|---|
| 10k | 1.05 | 0.19 · 0.998 · 0.954 | 0.30 · 1.000 · 0.991 | 0.49 · 1.000 · 0.997 | 1.79 · 1.000 · 1.000 |
| 50k | 4.62 | 0.34 · 1.000 · 0.876 | 0.61 · 1.000 · 0.948 | 1.11 · 1.000 · 0.990 | 3.40 · 1.000 · 1.000 |
| 100k | 9.93 | 0.31 · 1.000 · 0.818 | 0.44 · 1.000 · 0.911 | 0.85 · 1.000 · 0.965 | 3.39 · 1.000 · 0.998 |
| 300k | 28.97 | 0.34 · 0.995 · 0.678 | 0.51 · 1.000 · 0.798 | 0.74 · 1.000 · 0.877 | 3.41 · 1.000 · 0.983 |
| 1M | 89.94 | 0.41 · 0.957 · 0.450 | 0.66 · 0.981 · 0.587 | 1.05 · 0.996 · 0.723 | 3.18 · 0.996 · 0.892 |

Hence (the reasons in detail are beside the constants of index/storage/vectors.py): flat up to 50,000
vectors of 384 dimensions (where its p50 passes ~5 ms), then HNSW M=32, efConstruction 100, efSearch 256,
fp16 storage (1,040 bytes a vector; recall as fp32's; build 35 s per 100k, 219 s for 1M, quiet); sq8
(656 bytes, related recall ≤ 0.995) when memory counts most; `allowed` sets up to 20,000 vectors scored
exactly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import platform
import re
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from scipy import sparse

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:  # run as a script: make `index` importable
    sys.path.insert(0, str(PROJECT_ROOT))

import index.storage.vectors as vectors_module  # noqa: E402
from index.storage.vectors import DEFAULT_HNSW_SPEC, FaissVectorIndex, IndexSpec  # noqa: E402

logger = logging.getLogger("bench.vectors")

DEFAULT_EXTBENCH = PROJECT_ROOT.parent / "shared" / "bench" / "extbench" / "corpus.jsonl"
SAMPLE_DIR = PROJECT_ROOT / "data" / "sample"
DIMENSION = 384
BUCKETS = 1 << 16
WINDOW_CHARS = 300
NEIGHBOURHOOD = 20  # sentences either side of a chunk's anchor that its sentences are drawn from
PICK = 16  # sentences drawn per chunk at most (it stops at WINDOW_CHARS)
HELD_OUT_SHARE = 0.05
K = 10
TIE_TOLERANCE = 1e-5
EF_SEARCH = (32, 64, 128, 256, 512, 1024)
ALLOWED_SIZES = (1_000, 5_000, 20_000, 50_000, 100_000, 200_000)
TOMBSTONE_SHARE = 0.15
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;\n])")


# -- vectors from text -------------------------------------------------------------------------------


def load_texts(corpus: Path | None) -> tuple[str, list[str]]:
    """(what, texts): the extbench documents, or the bundled sample report's paragraphs."""
    path = corpus if corpus is not None else DEFAULT_EXTBENCH
    if path.exists():
        texts = [json.loads(line)["text"] for line in path.read_text("utf-8").splitlines() if line.strip()]
        return str(path), texts
    if corpus is not None:
        raise SystemExit(f"No corpus at {corpus}")
    files = sorted(file for file in SAMPLE_DIR.rglob("*.txt"))
    texts = [part for file in files for part in file.read_text("utf-8").split("\n\n") if part.strip()]
    return str(SAMPLE_DIR), texts


def split_sentences(texts: Sequence[str]) -> list[str]:
    sentences = []
    for text in texts:
        for piece in _SENTENCE_END.split(text):
            compact = "".join(piece.split())
            if len(compact) >= 4:
                sentences.append(compact)
    return sentences


def sentence_vectors(sentences: Sequence[str], ngrams: Sequence[int], seed: int) -> np.ndarray:
    """Hashed character n-gram counts of each sentence, projected to DIMENSION by a fixed Gaussian
    matrix (not normalised: a chunk's vector is the sum of its sentences', normalised then)."""
    rows, columns = [], []
    for row, sentence in enumerate(sentences):
        for n in ngrams:
            for start in range(len(sentence) - n + 1):
                rows.append(row)
                columns.append(zlib.crc32(sentence[start : start + n].encode()) % BUCKETS)
    counts = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, columns)), shape=(len(sentences), BUCKETS)
    )
    projection = np.random.default_rng(seed).standard_normal((BUCKETS, DIMENSION), dtype=np.float32)
    return np.asarray(counts @ projection, dtype=np.float32)


def chunk_vectors(sentences: np.ndarray, lengths: np.ndarray, n: int, seed: int) -> np.ndarray:
    """`n` normalised chunk vectors: ~WINDOW_CHARS of sentences drawn around random anchors."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, sentences.shape[1]), dtype=np.float32)
    pick = min(PICK, 2 * NEIGHBOURHOOD + 1)
    for start in range(0, n, 4096):
        batch = min(4096, n - start)
        anchors = rng.integers(0, len(sentences), batch)
        offsets = rng.random((batch, 2 * NEIGHBOURHOOD + 1)).argsort(axis=1)[:, :pick] - NEIGHBOURHOOD
        chosen = np.clip(anchors[:, None] + offsets, 0, len(sentences) - 1)
        chars = lengths[chosen]
        before = np.cumsum(chars, axis=1) - chars
        weights = (before < WINDOW_CHARS).astype(np.float32)
        block = np.einsum("bp,bpd->bd", weights, sentences[chosen])
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + batch] = block
    return out


@dataclass(frozen=True)
class Dataset:
    base: np.ndarray
    """Chunk vectors; the index of size n holds the first n (chunks are drawn independently)."""
    queries: dict[str, np.ndarray]
    sentences: int


def make_dataset(texts: Sequence[str], n: int, queries: int, ngrams: Sequence[int], seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    held_out = set(rng.permutation(len(texts))[: max(1, int(len(texts) * HELD_OUT_SHARE))].tolist())
    indexed = split_sentences([text for i, text in enumerate(texts) if i not in held_out])
    other = split_sentences([text for i, text in enumerate(texts) if i in held_out])
    indexed_vectors = sentence_vectors(indexed, ngrams, seed)
    other_vectors = sentence_vectors(other, ngrams, seed)
    indexed_lengths = np.array([len(s) for s in indexed])
    other_lengths = np.array([len(s) for s in other])
    return Dataset(
        base=chunk_vectors(indexed_vectors, indexed_lengths, n, seed + 1),
        queries={
            "related": chunk_vectors(indexed_vectors, indexed_lengths, queries, seed + 2),
            "held-out": chunk_vectors(other_vectors, other_lengths, queries, seed + 3),
        },
        sentences=len(indexed),
    )


# -- measuring ---------------------------------------------------------------------------------------


def exact_top(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions, kth score) of the exact top k for each query, in blocks to bound memory."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(base), 200_000):
        scores = queries @ base[start : start + 200_000].T
        take = min(k, scores.shape[1])
        top = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        best_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        best_rows = np.concatenate([best_rows, top + start], axis=1)
        keep = np.argsort(-best_scores, axis=1)[:, :k]
        best_scores = np.take_along_axis(best_scores, keep, axis=1)
        best_rows = np.take_along_axis(best_rows, keep, axis=1)
    return best_rows, best_scores[:, -1]


def recall(found: Sequence[np.ndarray], base: np.ndarray, queries: np.ndarray, kth: np.ndarray) -> float:
    """Share of the exact top K found: a returned row counts when its exact score reaches the K-th."""
    hits = []
    for query, rows, cut in zip(queries, found, kth, strict=True):
        scores = base[rows] @ query if len(rows) else np.zeros(0)
        hits.append(min(int((scores >= cut - TIE_TOLERANCE).sum()), K) / K)
    return float(np.mean(hits))


def timed_searches(
    index: FaissVectorIndex, queries: np.ndarray, allowed: np.ndarray | None = None
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(ids found, wall ms, CPU ms) of one search per query, after two warm-up searches."""
    for query in queries[:2]:
        index.search(query, K, allowed)
    found, wall, cpu = [], [], []
    for query in queries:
        cpu_start, wall_start = time.thread_time(), time.perf_counter()
        ids, _ = index.search(query, K, allowed)
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.thread_time() - cpu_start)
        found.append(ids)
    return found, np.array(wall) * 1000, np.array(cpu) * 1000


def serialized_mib(index: FaissVectorIndex) -> float:
    """The bytes FAISS writes for the index (codes, graph, levels): what it holds in memory."""
    total = 0

    def count(chunk: bytes) -> None:
        nonlocal total
        total += len(chunk)

    writer = faiss.PyCallbackIOWriter(count)
    faiss.write_index(index._index, writer)  # the bench may look inside: it measures the FAISS part
    del writer
    return total / 2**20


@contextlib.contextmanager
def faiss_threads(count: int) -> Iterator[None]:
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def grid(n: int, grid_max: int, storage_max: int, only_default: bool = False) -> list[IndexSpec]:
    """The HNSW indexes to build at size n (efSearch is varied on each without rebuilding): the whole
    grid up to `grid_max`, M=32 with each storage up to `storage_max`, then the default and its sq8."""
    storages = ("fp32", "fp16", "sq8")
    if only_default:
        return [DEFAULT_HNSW_SPEC]
    if n <= grid_max:
        shapes = [(m, s, 100) for m in (16, 32) for s in storages] + [(32, "fp32", 40)]
    elif n <= storage_max:
        shapes = [(32, s, 100) for s in storages]
    else:
        shapes = [(DEFAULT_HNSW_SPEC.m, "sq8", DEFAULT_HNSW_SPEC.ef_construction)]
    specs = [
        DEFAULT_HNSW_SPEC.model_copy(update={"m": m, "storage": s, "ef_construction": efc})
        for m, s, efc in shapes
    ]
    return specs if DEFAULT_HNSW_SPEC in specs else [*specs, DEFAULT_HNSW_SPEC]


def measure_index(
    index: FaissVectorIndex, data: Dataset, n: int, truth: dict[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, Any]:
    wall_all, cpu_all, recalls = [], [], {}
    for name, queries in data.queries.items():
        found, wall, cpu = timed_searches(index, queries)
        recalls[name] = recall(found, data.base[:n], queries, truth[name][1])
        wall_all.append(wall)
        cpu_all.append(cpu)
    wall, cpu = np.concatenate(wall_all), np.concatenate(cpu_all)
    return {
        "p50_ms": float(np.percentile(wall, 50)),
        "p95_ms": float(np.percentile(wall, 95)),
        "cpu_p50_ms": float(np.percentile(cpu, 50)),
        "cpu_p95_ms": float(np.percentile(cpu, 95)),
        "recall_related": recalls["related"],
        "recall_held_out": recalls["held-out"],
    }


def measure_allowed(index: FaissVectorIndex, data: Dataset, n: int, seed: int) -> list[dict[str, Any]]:
    """Searches restricted to random `allowed` sets: scored exactly vs through the filtered graph."""
    rng = np.random.default_rng(seed)
    queries = data.queries["related"][:100]
    rows = []
    saved = vectors_module.EXACT_SUBSET_MAX_SCALARS
    try:
        for size in (s for s in ALLOWED_SIZES if s <= n // 2):
            allowed = np.sort(rng.choice(n, size, replace=False)).astype(np.int64)
            _, kth = exact_top(data.base[allowed], queries, K)
            row: dict[str, Any] = {"n": n, "allowed": size}
            for mode, threshold in (("exact", math.inf), ("graph", 0)):
                vectors_module.EXACT_SUBSET_MAX_SCALARS = threshold
                found, wall, cpu = timed_searches(index, queries, allowed)
                positions = [np.searchsorted(allowed, ids) for ids in found]
                row[f"{mode}_p50_ms"] = float(np.percentile(wall, 50))
                row[f"{mode}_cpu_p50_ms"] = float(np.percentile(cpu, 50))
                row[f"{mode}_recall"] = recall(positions, data.base[allowed], queries, kth)
            rows.append(row)
    finally:
        vectors_module.EXACT_SUBSET_MAX_SCALARS = saved
    return rows


def measure_tombstones(index: FaissVectorIndex, data: Dataset, n: int, seed: int) -> dict[str, Any]:
    """Remove TOMBSTONE_SHARE of the vectors (below the compaction share) and search what remains."""
    rng = np.random.default_rng(seed)
    removed = rng.choice(n, int(n * TOMBSTONE_SHARE), replace=False).astype(np.int64)
    started = time.perf_counter()
    index.remove(removed)
    remove_s = time.perf_counter() - started
    live = np.setdiff1d(np.arange(n), removed)
    result: dict[str, Any] = {"n": n, "removed": len(removed), "remove_s": remove_s}
    found_removed = 0
    for name, queries in data.queries.items():
        _, kth = exact_top(data.base[live], queries, K)
        found, wall, cpu = timed_searches(index, queries)
        found_removed += sum(int(np.isin(ids, removed).sum()) for ids in found)
        result[f"recall_{name}"] = recall(found, data.base[:n], queries, kth)
        result[f"p50_ms_{name}"] = float(np.percentile(wall, 50))
        result[f"cpu_p50_ms_{name}"] = float(np.percentile(cpu, 50))
    result["removed_returned"] = found_removed
    return result


def measure_files(index: FaissVectorIndex, directory: Path) -> dict[str, Any]:
    path = directory / "vectors.idx"
    started = time.perf_counter()
    index.save(path)
    save_s = time.perf_counter() - started
    started = time.perf_counter()
    loaded = FaissVectorIndex.load(path)
    load_s = time.perf_counter() - started
    size = path.stat().st_size / 2**20
    path.unlink()
    del loaded
    return {"save_s": save_s, "load_s": load_s, "file_mib": size}


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    deadline = started + args.max_minutes * 60
    source, texts = load_texts(args.corpus)
    sizes = sorted(args.sizes)
    data = make_dataset(texts, sizes[-1], args.queries, args.ngrams, args.seed)
    logger.info(
        "%s: %d sentences indexed, %d chunk vectors, %d queries per set (%.1f s)",
        source,
        data.sentences,
        len(data.base),
        args.queries,
        time.perf_counter() - started,
    )
    results: dict[str, Any] = {"indexes": [], "allowed": [], "tombstones": [], "files": []}
    ids = np.arange(sizes[-1], dtype=np.int64)
    for n in sizes:
        truth = {name: exact_top(data.base[:n], queries, K) for name, queries in data.queries.items()}
        approximate = grid(n, args.grid_max, args.storage_max, args.only_default)
        specs = [IndexSpec(storage=s) for s in ("fp32", "fp16", "sq8")] + approximate
        default_index = None
        for spec in specs:
            if time.perf_counter() > deadline:
                logger.warning("--max-minutes reached: %s at n=%d skipped", spec.describe(), n)
                continue
            with faiss_threads(args.build_threads):
                built = time.perf_counter()
                index = FaissVectorIndex.from_vectors(ids[:n], data.base[:n], spec)
                build_s = time.perf_counter() - built
            memory = serialized_mib(index)
            searches = [spec.ef_search] if spec.kind == "flat" else list(EF_SEARCH)
            for ef in searches:
                index.tune(ef_search=ef)
                with faiss_threads(1):
                    figures = measure_index(index, data, n, truth)
                row = {"n": n, "spec": index.spec.describe(), "kind": spec.kind, "storage": spec.storage}
                row |= {"m": spec.m, "ef_construction": spec.ef_construction, "ef_search": ef}
                row |= {"build_s": build_s, "index_mib": memory, "bytes_per_vector": memory * 2**20 / n}
                row |= figures
                results["indexes"].append(row)
                logger.info("n=%d %s: %s", n, index.spec.describe(), _brief(row))
            index.tune(ef_search=spec.ef_search)
            if spec == DEFAULT_HNSW_SPEC:
                default_index = index
            else:
                del index
        if default_index is not None and n >= args.extras_min and time.perf_counter() < deadline:
            with faiss_threads(1):
                results["allowed"].extend(measure_allowed(default_index, data, n, args.seed))
            with tempfile.TemporaryDirectory(dir=args.tmp) as directory, faiss_threads(args.build_threads):
                results["files"].append({"n": n, **measure_files(default_index, Path(directory))})
            with faiss_threads(1):
                results["tombstones"].append(measure_tombstones(default_index, data, n, args.seed))
        del default_index
    results["seconds"] = time.perf_counter() - started
    results["source"] = source
    return results


def _brief(row: dict[str, Any]) -> str:
    return (
        f"efS={row['ef_search']} p50 {row['p50_ms']:.2f} ms (cpu {row['cpu_p50_ms']:.2f}) "
        f"recall {row['recall_related']:.3f}/{row['recall_held_out']:.3f} build {row['build_s']:.1f}s"
    )


# -- the report --------------------------------------------------------------------------------------


def print_tables(results: dict[str, Any]) -> None:
    print("\n### Search (k=10, one thread) and build\n")
    print(
        "| n | index | build s | MiB | B/vector | p50 ms | p95 ms | CPU p50 ms | CPU p95 ms "
        "| recall@10 related | recall@10 held-out |"
    )
    print("|" + "---|" * 11)
    for r in results["indexes"]:
        print(
            f"| {r['n']:,} | {r['spec']} | {r['build_s']:.1f} | {r['index_mib']:.0f} | "
            f"{r['bytes_per_vector']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['cpu_p50_ms']:.2f} | "
            f"{r['cpu_p95_ms']:.2f} | {r['recall_related']:.3f} | {r['recall_held_out']:.3f} |"
        )
    if results["allowed"]:
        print(f"\n### Search among allowed ids ({DEFAULT_HNSW_SPEC.describe()}, related queries)\n")
        print("| n | allowed | exact p50 ms | exact CPU p50 ms | graph p50 ms | graph CPU p50 ms ", end="")
        print("| graph recall |")
        print("|" + "---|" * 7)
        for r in results["allowed"]:
            print(
                f"| {r['n']:,} | {r['allowed']:,} | {r['exact_p50_ms']:.2f} | {r['exact_cpu_p50_ms']:.2f} | "
                f"{r['graph_p50_ms']:.2f} | {r['graph_cpu_p50_ms']:.2f} | {r['graph_recall']:.3f} |"
            )
    if results["tombstones"]:
        print(f"\n### {TOMBSTONE_SHARE:.0%} removed (tombstones), {DEFAULT_HNSW_SPEC.describe()}\n")
        print("| n | removed | remove s | p50 ms | CPU p50 ms | recall related | recall held-out ", end="")
        print("| removed returned |")
        print("|" + "---|" * 8)
        for r in results["tombstones"]:
            print(
                f"| {r['n']:,} | {r['removed']:,} | {r['remove_s']:.3f} | {r['p50_ms_related']:.2f} | "
                f"{r['cpu_p50_ms_related']:.2f} | {r['recall_related']:.3f} | {r['recall_held-out']:.3f} | "
                f"{r['removed_returned']} |"
            )
    if results["files"]:
        print(f"\n### Save and load ({DEFAULT_HNSW_SPEC.describe()})\n")
        print("| n | file MiB | save s | load s |")
        print("|---|---|---|---|")
        for r in results["files"]:
            print(f"| {r['n']:,} | {r['file_mib']:.0f} | {r['save_s']:.2f} | {r['load_s']:.2f} |")


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "loadavg": os.getloadavg(),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(s) for s in text.split(",")],
        default=[10_000, 50_000, 100_000, 300_000],
        help="index sizes, comma-separated (default 10000,50000,100000,300000)",
    )
    parser.add_argument("--queries", type=int, default=200, help="queries per set (default 200)")
    parser.add_argument(
        "--ngrams",
        type=lambda text: [int(s) for s in text.split(",")],
        default=[1, 2],
        help="character n-grams hashed (default 1,2; '2' for the bigram-only stress case)",
    )
    parser.add_argument("--grid-max", type=int, default=100_000, help="full grid up to this size")
    parser.add_argument(
        "--storage-max", type=int, default=300_000, help="M=32 with every storage up to this size"
    )
    parser.add_argument(
        "--only-default", action="store_true", help="build only the default HNSW (and flat) at each size"
    )
    parser.add_argument("--extras-min", type=int, default=50_000, help="allowed/tombstone/file runs from")
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--max-minutes", type=float, default=90.0, help="stop building indexes after this")
    parser.add_argument("--corpus", type=Path, default=None, help="a corpus.jsonl (default: extbench)")
    parser.add_argument("--tmp", type=Path, default=None, help="where save/load writes its file")
    parser.add_argument("--seed", type=int, default=2018)
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    info = machine()
    results = run(args)
    info["loadavg_end"] = os.getloadavg()
    results["machine"] = info
    results["command"] = ["bench/vectors.py", *(argv if argv is not None else sys.argv[1:])]
    print_tables(results)
    print(
        f"\n{info['nproc']} cores, faiss {info['faiss']}, load average {info['loadavg'][0]:.1f} at the "
        f"start and {info['loadavg_end'][0]:.1f} at the end; {results['seconds'] / 60:.1f} minutes; "
        f"vectors from {results['source']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
