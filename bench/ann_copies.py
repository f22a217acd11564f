"""IVF or HNSW for which vectors (issue 14): recall@10 against exact search on `bench/scale.py`'s vectors.

`bench/scale.py` fills its indexes with copies of the extbench corpus, each copy's vectors the text's plus
a little noise of its own (`TextHashEncoder`): a passage has as many near-copies as there are copies of
the corpus (about 330 at 1M chunks). This script builds those vectors without a store (chunks, or the
sentences of the chunks as ingest splits them), asks the extbench questions (their noiseless vectors, as
the bench asks them), and measures, one FAISS index at a time, recall@10 against an exact search of the
same fp32 vectors (a result counts when its exact score reaches the exact 10th best: ties are not
misses) and the time of a search (one thread):

- IVF (`IndexIVFScalarQuantizer`, codes of the vectors themselves, as `FaissVectorIndex` builds it) with
  `--lists` lists at each `--nprobe`;
- HNSW (`IndexHNSWSQ`, M 32, efConstruction 100) at each `--ef-search`, unless `--no-hnsw`.

    .venv/bin/python bench/ann_copies.py --units chunks --count 1000000 --lists 4096 --no-hnsw
    .venv/bin/python bench/ann_copies.py --units sentences --count 66572 --lists 1024 --storage sq8

Not a test: at 1M vectors building HNSW takes tens of minutes; IVF's k-means one to two.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import faiss
import numpy as np
from scale import DEFAULT_EXTBENCH, DIMENSION, TIE_TOLERANCE, TextHashEncoder, load_corpus

from citeqa.settings import get_settings
from index.chunking import Chunker, sentence_spans

K = 10
QUANTIZERS = {"fp16": faiss.ScalarQuantizer.QT_fp16, "sq8": faiss.ScalarQuantizer.QT_8bit}


def unit_texts(extbench: Path, units: str) -> list[str]:
    """The texts of one copy of the corpus: its chunks, or their distinct sentences."""
    settings = get_settings()
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    texts: list[str] = []
    for document in load_corpus("extbench", extbench, seed=2018).documents:
        chunks = chunker.split(document)
        if units == "chunks":
            texts.extend(chunk.text for chunk in chunks)
        else:
            spans = [span for chunk in chunks for span in sentence_spans(chunk)]
            texts.extend(dict.fromkeys(document.text[span.char_start : span.char_end] for span in spans))
    return texts


def copies(texts: Sequence[str], count: int) -> Iterator[np.ndarray]:
    """`count` vectors: the texts copy after copy, each copy salted as bench/scale.py salts it."""
    encoder = TextHashEncoder()
    made, copy = 0, 0
    while made < count:
        encoder.salt = f"copy-{copy}"
        batch = texts[: count - made]
        yield encoder.encode_passages(batch)
        made, copy = made + len(batch), copy + 1


def recall(found: np.ndarray, vectors: np.ndarray, queries: np.ndarray, kth: np.ndarray) -> float:
    scores = np.einsum("qd,qkd->qk", queries, vectors[np.maximum(found, 0)])
    hits = [(scores[q][found[q] >= 0] >= kth[q] - TIE_TOLERANCE).sum() for q in range(len(queries))]
    return float(np.mean(hits)) / K


def timed_search(index: faiss.Index, queries: np.ndarray) -> tuple[np.ndarray, float]:
    faiss.omp_set_num_threads(1)
    started = time.perf_counter()
    found = np.stack([index.search(query[None, :], K)[1][0] for query in queries])
    return found, (time.perf_counter() - started) * 1000 / len(queries)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", choices=["chunks", "sentences"], default="chunks")
    parser.add_argument("--count", type=int, default=1_000_000, help="vectors (default 1,000,000)")
    parser.add_argument("--storage", choices=sorted(QUANTIZERS), default="fp16")
    parser.add_argument("--lists", type=int, default=4096, help="IVF lists (default 4,096)")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--ef-search", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--no-hnsw", action="store_true", help="IVF only (HNSW takes long to build at 1M)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--offset", type=int, default=0, help="skip this many questions: a held-out slice")
    parser.add_argument("--extbench", type=Path, default=DEFAULT_EXTBENCH)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    texts = unit_texts(args.extbench, args.units)
    vectors = np.ascontiguousarray(np.concatenate(list(copies(texts, args.count))), dtype=np.float32)
    queries = TextHashEncoder().encode_queries(
        load_corpus("extbench", args.extbench, 2018).questions[args.offset : args.offset + args.queries]
    )
    print(
        f"{len(vectors):,} {args.units} vectors ({len(texts):,} texts a copy), {len(queries)} questions, "
        f"{faiss.omp_get_max_threads()} threads to build ({time.perf_counter() - started:.0f} s)"
    )
    exact = faiss.IndexFlatIP(DIMENSION)
    exact.add(vectors)
    kth = exact.search(queries, K)[0][:, -1]
    qtype = QUANTIZERS[args.storage]

    threads = faiss.omp_get_max_threads()
    ivf = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(DIMENSION), DIMENSION, args.lists, qtype, faiss.METRIC_INNER_PRODUCT, False
    )
    began = time.perf_counter()
    rng = np.random.default_rng(0)
    ivf.train(vectors[rng.choice(len(vectors), min(len(vectors), 64 * args.lists), replace=False)])
    ivf.add(vectors)
    print(f"IVF trained and filled in {time.perf_counter() - began:.0f} s\n")
    print("| index | recall@10 | ms a search |\n|---|---:|---:|")
    for nprobe in args.nprobe:
        ivf.nprobe = nprobe
        found, ms = timed_search(ivf, queries)
        print(
            f"| ivf(lists={args.lists}, nprobe={nprobe})/{args.storage} | {recall(found, vectors, queries, kth):.3f} | {ms:.2f} |"
        )
    faiss.omp_set_num_threads(threads)
    if args.no_hnsw:
        return
    graph = faiss.IndexHNSWSQ(DIMENSION, qtype, 32, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = 100
    graph.train(vectors)
    graph.add(vectors)
    for ef_search in args.ef_search:
        graph.hnsw.efSearch = ef_search
        found, ms = timed_search(graph, queries)
        print(
            f"| hnsw(M=32, efC=100, efS={ef_search})/{args.storage} | {recall(found, vectors, queries, kth):.3f} | {ms:.2f} |"
        )


if __name__ == "__main__":
    main()
