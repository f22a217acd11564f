"""Scale benchmark (issue 14): how search, writes, ingest, memory and disk grow with the number of chunks.

Builds synthetic indexes of N chunks through the public API (`IndexStore.open`, `Indexer.add`), then
measures each index in a fresh serving-like subprocess. Run `.venv/bin/python bench/scale.py --help` for
what is measured and how.

Vectors come from a free deterministic encoder (`TextHashEncoder`) derived from the text as
`bench/vectors.py` derives its vectors: hashed character 1- and 2-gram counts (65,536 buckets) projected
to 384 dimensions by a fixed Gaussian matrix. So only the store and the ranking cost time, yet the vectors
have the structure of text: questions are near the passages they were written about, as a real model's
are, and an approximate index's recall is measured on vectors like embeddings rather than on uniformly
random directions (its worst case). Each copy of the corpus adds its own small random component to every
passage vector, so copies of a passage are similar (cosine ≈ 0.8), not identical.

Text: the extbench corpus (`../shared/bench/extbench/corpus.jsonl`) repeated as often as needed. It is
adapted from CMRC 2018 (Cui et al., EMNLP 2019, https://github.com/ymcui/cmrc2018) and XQuAD (Artetxe,
Ruder & Yogatama 2019, https://github.com/google-deepmind/xquad), both under CC BY-SA 4.0. Without
../shared the bundled sample report (`data/sample/`) is repeated instead.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from scipy import sparse

from citeqa.settings import get_settings
from citeqa.wiring import limit_blas_threads, load_encoder, load_translator
from index.chunking import Chunker
from index.documents import Document
from index.ingest import COMMIT_EVERY_CHUNKS, Indexer
from index.readers import read_path
from index.search import CandidateCounts, Searcher
from index.storage.documents import DATABASE_FILE, DocumentStore
from index.store import FORMAT_VERSION, IndexStore, Manifest

logger = logging.getLogger("bench.scale")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXTBENCH = PROJECT_ROOT.parent / "shared" / "bench" / "extbench"
EXTBENCH_QUESTION_FILES = ("queries.jsonl", "queries_xquad_zh.jsonl", "queries_xquad_en.jsonl")
SAMPLE_DIR = PROJECT_ROOT / "data" / "sample"
# The sample report's dev questions (a copy of ../shared/eval/seed_dev.jsonl kept in the repository).
SAMPLE_QUESTIONS = PROJECT_ROOT / "tests" / "data" / "seed_dev.jsonl"
DEFAULT_CACHE = PROJECT_ROOT / "var" / "bench"

# Bump when what a cached index holds changes in a way the record's other fields do not capture.
BENCH_FORMAT = 3
RECORD_FILE = "bench-record.json"
DIMENSION = 384  # that of the embedded multilingual-e5-small, so the real model can query these indexes
TOP_K = 5  # the passages a search returns by default (Searcher.search, the CLI and the chat)
RECALL_K = 10
SLICES = 10
PROBE_PREFIX = "bench-probe-"
PROBE_CHARS = 250  # the "small document" added before timing the first search after a write
# Exact scores this close count as a tie at the k-th place: either neighbour is a correct answer.
TIE_TOLERANCE = 1e-5


# -- the encoder -------------------------------------------------------------------------------------

BUCKETS = 1 << 16  # hashed character n-gram buckets, as in bench/vectors.py
NGRAM_KEY = 0x5EED_0001  # keys of the n-gram hash and of the projection's rows: fixed, so vectors are too
PROJECTION_KEY = 0x5EED_0002
# A copy of a passage gets normalise(p + NOISE·r): p the unit vector of its text, r a unit vector keyed by
# (salt, text). In 384 dimensions r is nearly orthogonal to p and to another copy's r, so two copies have
# cosine 1 / (1 + NOISE²) = 0.8 with each other and 1 / sqrt(1 + NOISE²) ≈ 0.89 with p (the vector of a
# query of the same text). 0.8 keeps the copies of a passage each other's nearest neighbours, far above
# what other passages share (extbench chunks: median cosine 0.16, 99th percentile 0.35), as
# near-duplicate documents are in a real collection; yet apart, so that a top 10 is not a pile of exact
# ties (recall ill-defined) and an approximate index's graph is not the degenerate one that identical
# vectors make.
NOISE = 0.5
_GOLDEN = 0x9E3779B97F4A7C15


class TextHashEncoder:
    """Unit vectors of `DIMENSION` float32s derived from the text: free, deterministic, with text structure.

    As bench/vectors.py builds its vectors: each text (whitespace removed) becomes hashed character 1- and
    2-gram counts in BUCKETS buckets, projected to `DIMENSION` by a fixed Gaussian matrix (row b drawn
    from a counter-based generator keyed by b, so a call computes only the rows its texts use), then
    normalised. Texts sharing characters and character pairs get close vectors, so a question is near the
    passages it was written about (extbench's questions were), as a real model's question vectors are;
    unigrams give the texts of one language a common part, as an encoder's vectors have. (Uniformly
    random directions would be the worst case for an approximate index, and unlike embeddings.)

    Queries get that vector as it is. A passage gets NOISE times a unit vector keyed by `salt` (set per copy
    of the corpus by the builder) and its text added, then is normalised again: copies of one passage are
    distinct (cosine ≈ 0.8) but similar, and a question stays nearest the copies of its passage.

    Each distinct text's noiseless vector is remembered (1.5 KiB each): copies of the corpus repeat the
    same texts, so a build projects only the first copy's (extbench: ~20,000 chunks and sentences, ~30
    MiB), and a serving process that encodes its questions up front finds them during the timed searches.
    So the encoder stays nearly free and ingest and search costs are the store's and the ranking's; its
    time is still measured (`seconds`, `cpu_seconds`) and subtracted from ingest.
    """

    def __init__(self, dimension: int = DIMENSION, salt: str = "") -> None:
        self._dimension = dimension
        self.salt = salt
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self._known: dict[str, np.ndarray] = {}  # text -> its unit vector, noiseless

    @property
    def name(self) -> str:
        return f"bench-text-hash-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        started, cpu_started = time.perf_counter(), time.process_time()
        vectors = self._text_vectors(texts)
        self.seconds += time.perf_counter() - started
        self.cpu_seconds += time.process_time() - cpu_started
        return vectors

    def encode_passages(
        self, texts: Sequence[str], on_progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        started, cpu_started = time.perf_counter(), time.process_time()
        seeds = np.fromiter(
            (
                int.from_bytes(
                    hashlib.blake2b(f"{self.salt}\x1f{text}".encode(), digest_size=8).digest(), "little"
                )
                for text in texts
            ),
            dtype=np.uint64,
            count=len(texts),
        )
        noise = _normalised(_gaussians(seeds, self._dimension))
        vectors = _normalised(self._text_vectors(texts) + np.float32(NOISE) * noise)
        self.seconds += time.perf_counter() - started
        self.cpu_seconds += time.process_time() - cpu_started
        if on_progress:
            on_progress(len(texts))
        return vectors

    def _text_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """The noiseless unit vector of each text (n × dimension float32), projecting those not seen yet."""
        new = list(dict.fromkeys(text for text in texts if text not in self._known))
        if new:
            self._known.update(zip(new, _normalised(self._project(new)), strict=True))
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        return np.stack([self._known[text] for text in texts])

    def _project(self, texts: Sequence[str]) -> np.ndarray:
        """Each text's hashed character 1- and 2-gram counts times the projection (float32, not normalised)."""
        compact = ["".join(text.split()) for text in texts]
        lengths = np.fromiter(map(len, compact), dtype=np.int64, count=len(compact))
        codes = np.frombuffer("".join(compact).encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(
            np.uint64
        )
        text_of = np.repeat(np.arange(len(compact)), lengths)
        # A bigram starts at every position but the last of its text. Code points fit in 21 bits; bit 42
        # keeps a bigram's key apart from every unigram's.
        has_next = np.ones(len(codes), dtype=bool)
        has_next[np.cumsum(lengths)[lengths > 0] - 1] = False
        starts = np.flatnonzero(has_next)
        keys = np.concatenate(
            [codes, (codes[starts] << np.uint64(21)) | codes[starts + 1] | np.uint64(1 << 42)]
        )
        buckets = (_splitmix64(keys ^ np.uint64(NGRAM_KEY)) % np.uint64(BUCKETS)).astype(np.int64)
        # Only the projection rows of the buckets these texts use are computed.
        used = np.flatnonzero(np.bincount(buckets, minlength=BUCKETS))
        column = np.zeros(BUCKETS, dtype=np.int64)
        column[used] = np.arange(len(used))
        counts = sparse.csr_matrix(
            (
                np.ones(len(buckets), dtype=np.float32),
                (np.concatenate([text_of, text_of[starts]]), column[buckets]),
            ),
            shape=(len(compact), len(used)),
        )
        rows = _gaussians(
            _splitmix64(used.astype(np.uint64) ^ np.uint64(PROJECTION_KEY << 32)), self._dimension
        )
        return np.asarray(counts @ rows, dtype=np.float32)


def _gaussians(seeds: np.ndarray, dimension: int) -> np.ndarray:
    """One row of `dimension` independent standard normals (float32) per uint64 seed: counter-based, so a
    row depends on its seed alone (splitmix64 of seed + counter, then Box-Muller)."""
    pairs = (dimension + 1) // 2
    counters = np.arange(1, pairs + 1, dtype=np.uint64) * np.uint64(_GOLDEN)
    bits = _splitmix64(seeds[:, None] + counters[None, :])
    # Two 24-bit uniforms from each 64-bit draw; Box-Muller makes two independent normals of them.
    scale = np.float32(2.0**-24)
    first = (bits >> np.uint64(40)).astype(np.float32) * scale
    second = ((bits >> np.uint64(8)) & np.uint64(0xFFFFFF)).astype(np.float32) * scale
    radius = np.sqrt(np.float32(-2.0) * np.log1p(-first))
    angle = np.float32(2.0 * np.pi) * second
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=1)[:, :dimension]


def _normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; a zero row (a text of whitespace only) stays zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, np.float32(1.0))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    # uint64 array arithmetic wraps modulo 2**64, which is what the mixer relies on.
    x = x + np.uint64(_GOLDEN)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


# -- the corpus --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    kind: str
    """"extbench" or "sample"."""
    paths: list[Path]
    sha256: str
    documents: list[Document]
    questions: list[str]


def load_corpus(kind: str, extbench: Path, seed: int) -> Corpus:
    """The base documents and the questions; `auto` takes extbench when it is there, else the sample."""
    corpus_file = extbench / "corpus.jsonl"
    if kind == "extbench" or (kind == "auto" and corpus_file.exists()):
        if not corpus_file.exists():
            raise SystemExit(f"No extbench corpus at {corpus_file} (pass --extbench DIR or --corpus sample).")
        kind, paths = "extbench", [corpus_file]
        questions = _interleaved_questions([extbench / name for name in EXTBENCH_QUESTION_FILES], seed)
    else:
        paths = sorted(file for file in SAMPLE_DIR.rglob("*") if file.is_file())
        questions = _interleaved_questions([SAMPLE_QUESTIONS] if SAMPLE_QUESTIONS.exists() else [], seed)
        kind = "sample"
    documents: list[Document] = []
    for path in paths:
        result = read_path(path)
        for problem in result.problems:
            logger.warning("Skipped %s:%s: %s", problem.source, problem.line, problem.message)
        documents.extend(result.documents)
    if not questions:  # no question file: the opening words of some documents stand in
        questions = [document.text[:40] for document in documents[:200]]
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\x00" + path.read_bytes())
    return Corpus(kind, paths, digest.hexdigest(), documents, questions)


def _interleaved_questions(files: Sequence[Path], seed: int) -> list[str]:
    """Every question of the files, each file shuffled (fixed seed), then taken in turn from each, so
    that any prefix mixes the files (extbench: CMRC zh, XQuAD zh, XQuAD en) in equal parts."""
    rng = np.random.default_rng(seed)
    lists = []
    for path in files:
        questions = [
            json.loads(line)["question"] for line in path.read_text("utf-8").splitlines() if line.strip()
        ]
        lists.append([questions[i] for i in rng.permutation(len(questions))])
    mixed = []
    for position in range(max((len(items) for items in lists), default=0)):
        mixed.extend(items[position] for items in lists if position < len(items))
    return mixed


def copy_of(document: Document, copy: int) -> Document:
    """Copy `copy` of a base document: copy 0 is the original; others get their own doc_id and title."""
    if copy == 0:
        return document
    return document.model_copy(
        update={"doc_id": f"{document.doc_id}~{copy}", "title": f"{document.title} [{copy}]".strip()}
    )


def build_plan(
    documents: Sequence[Document], chunk_counts: Sequence[int], target: int
) -> Iterator[tuple[int, list[Document], int]]:
    """(copy, documents, their chunks) for each `Indexer.add` call until `target` chunks are planned.

    A call holds about COMMIT_EVERY_CHUNKS chunks of one copy, as `Indexer.add` batches a large upload
    (one commit per call), so each call's time is one commit's, and the encoder's salt is per call."""
    if not any(chunk_counts):
        raise SystemExit("The corpus yields no chunks.")
    planned, copy = 0, 0
    while planned < target:
        group: list[Document] = []
        group_chunks = 0
        for document, chunks in zip(documents, chunk_counts, strict=True):
            if chunks == 0:
                continue
            group.append(copy_of(document, copy))
            group_chunks += chunks
            planned += chunks
            if group_chunks >= COMMIT_EVERY_CHUNKS or planned >= target:
                yield copy, group, group_chunks
                group, group_chunks = [], 0
                if planned >= target:
                    return
        if group:
            yield copy, group, group_chunks
        copy += 1


def slice_rates(steps: Sequence[tuple[int, float]], slices: int = SLICES) -> list[float]:
    """Chunks per second in each of `slices` equal slices of the build, from (chunks, seconds) per step.

    A step that straddles a slice boundary counts in both slices, in proportion to its chunks."""
    total = sum(chunks for chunks, _ in steps)
    chunks_in = [0.0] * slices
    seconds_in = [0.0] * slices
    start = 0
    for chunks, seconds in steps:
        end = start + chunks
        for i in range(slices):
            overlap = min(end, total * (i + 1) / slices) - max(start, total * i / slices)
            if overlap > 0:
                chunks_in[i] += overlap
                seconds_in[i] += seconds * overlap / chunks
        start = end
    return [c / s if s > 0 else math.nan for c, s in zip(chunks_in, seconds_in, strict=True)]


# -- building (or reusing) an index ------------------------------------------------------------------


def manifest_for(encoder: TextHashEncoder, chunker: Chunker) -> Manifest:
    return Manifest(model=encoder.name, dimension=encoder.dimension, chunking=chunker.settings)


def record_key(target: int, corpus: Corpus, chunker: Chunker) -> dict[str, Any]:
    """What a cached index must match to be reused (besides the code that built it)."""
    return {
        "bench_format": BENCH_FORMAT,
        "target_chunks": target,
        "corpus": {"kind": corpus.kind, "sha256": corpus.sha256},
        "encoder": TextHashEncoder().name,
        "encoder_noise": NOISE,
        "chunking": chunker.settings.model_dump(),
        "store_format": FORMAT_VERSION,
        "commit_every_chunks": COMMIT_EVERY_CHUNKS,
    }


def code_fingerprint() -> dict[str, Any]:
    """The code an index was built by: git HEAD, and a hash of index/ as it is on disk (uncommitted edits
    included, since the figures are those of the working tree)."""
    digest = hashlib.sha256()
    for path in sorted((PROJECT_ROOT / "index").rglob("*.py")):
        digest.update(path.relative_to(PROJECT_ROOT).as_posix().encode() + b"\x00" + path.read_bytes())
    head = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        head = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    return {"git_head": head, "index_source_sha256": digest.hexdigest()}


def ensure_index(
    directory: Path,
    target: int,
    corpus: Corpus,
    chunker: Chunker,
    *,
    rebuild: bool,
    reuse_stale: bool,
    max_build_seconds: float,
    console: Console,
) -> dict[str, Any]:
    """The record of an index of `target` chunks in `directory`: reused when its record matches, else built."""
    key, code = record_key(target, corpus, chunker), code_fingerprint()
    record = _read_record(directory)
    if record is not None and not rebuild and record.get("key") == key and record.get("complete"):
        if record.get("code") == code:
            logger.info("Reusing %s (built %s)", directory, record["built_at"])
            return {**record, "reused": True}
        if reuse_stale:
            logger.warning(
                "Reusing %s although index/ changed since it was built (--reuse-stale): its ingest figures "
                "are those of the code that built it (%s).",
                directory,
                record["code"],
            )
            return {**record, "reused": True}
        logger.info("index/ changed since %s was built: rebuilding (--reuse-stale keeps it).", directory)
    elif record is not None and not rebuild:
        logger.info("The index in %s is incomplete or was built for other settings: rebuilding.", directory)
    _clear(directory)
    return _build(directory, target, corpus, chunker, key, code, max_build_seconds, console)


def _read_record(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None


def _clear(directory: Path) -> None:
    if not directory.exists():
        return
    # Only a folder this benchmark made (or an index) is removed: a mistyped --cache-dir must not cost data.
    if not (
        (directory / RECORD_FILE).exists()
        or (directory / DATABASE_FILE).exists()
        or not any(directory.iterdir())
    ):
        raise SystemExit(f"{directory} exists and is not a benchmark index; choose another --cache-dir.")
    shutil.rmtree(directory)


def _build(
    directory: Path,
    target: int,
    corpus: Corpus,
    chunker: Chunker,
    key: dict[str, Any],
    code: dict[str, Any],
    max_build_seconds: float,
    console: Console,
) -> dict[str, Any]:
    encoder = TextHashEncoder()
    chunk_counts = [len(chunker.split(document)) for document in corpus.documents]
    _warm_up_ingest(corpus.documents[:20], chunker)
    # Per Indexer.add call: chunks, then wall and CPU seconds with the encoder's excluded. For this mostly
    # single-threaded work, CPU time (of the whole process) stays closer to a quiet machine's wall time than
    # the wall time does when other processes share the cores (contention inflates it too, less); the wall
    # time also holds the fsyncs' waits.
    steps: list[tuple[int, float, float]] = []
    documents = chunks = 0
    stopped = False
    started = time.perf_counter()
    store = IndexStore.open(directory, manifest_for(encoder, chunker))
    try:
        indexer = Indexer(store, encoder, chunker)
        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("chunks · {task.fields[rate]} chunks/s (embedding excluded)"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"build {target:,}", total=target, rate="–")
            for copy, group, _ in build_plan(corpus.documents, chunk_counts, target):
                encoder.salt = f"copy-{copy}"
                encoded_before, encoded_cpu_before = encoder.seconds, encoder.cpu_seconds
                call_started, cpu_started = time.perf_counter(), time.process_time()
                results = indexer.add(group)
                wall, cpu = time.perf_counter() - call_started, time.process_time() - cpu_started
                added = sum(result.chunks for result in results)
                if any(result.status != "added" for result in results):
                    raise RuntimeError(f"{directory}: a planned document was already in the index.")
                steps.append(
                    (
                        added,
                        wall - (encoder.seconds - encoded_before),
                        cpu - (encoder.cpu_seconds - encoded_cpu_before),
                    )
                )
                documents += len(results)
                chunks += added
                progress.update(task, advance=added, rate=f"{added / max(steps[-1][1], 1e-9):,.0f}")
                if max_build_seconds and time.perf_counter() - started > max_build_seconds:
                    stopped = True
                    logger.warning(
                        "Build of %s stopped by --max-build-seconds at %d chunks.", directory, chunks
                    )
                    break
    finally:
        store.close()
    record = {
        "key": key,
        "code": code,
        "complete": not stopped,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "documents": documents,
        "chunks": chunks,
        "build_seconds": round(time.perf_counter() - started, 2),
        "store_seconds": round(sum(wall for _, wall, _ in steps), 2),
        "store_cpu_seconds": round(sum(cpu for _, _, cpu in steps), 2),
        "encoder_seconds": round(encoder.seconds, 2),
        "commits": len(steps),
        "ingest_slices_chunks_per_s": [
            round(rate, 1) for rate in slice_rates([(n, wall) for n, wall, _ in steps])
        ],
        "ingest_slices_chunks_per_cpu_s": [
            round(rate, 1) for rate in slice_rates([(n, cpu) for n, _, cpu in steps])
        ],
        "steps": [[n, round(wall, 4), round(cpu, 4)] for n, wall, cpu in steps],
        "loadavg_after": os.getloadavg(),
    }
    temporary = directory / f".{RECORD_FILE}.tmp"
    temporary.write_text(json.dumps(record, indent=1))
    os.replace(temporary, directory / RECORD_FILE)
    return {**record, "reused": False}


def _warm_up_ingest(documents: Sequence[Document], chunker: Chunker) -> None:
    # What the ingest path loads on first use (jieba's dictionary, ~1 s) would otherwise be charged to the
    # first slice of the build, and at 10k chunks that is a large part of it.
    with tempfile.TemporaryDirectory(prefix="bench-warmup-") as folder:
        encoder = TextHashEncoder()
        store = IndexStore.open(Path(folder), manifest_for(encoder, chunker))
        try:
            Indexer(store, encoder, chunker).add(documents)
        finally:
            store.close()


def disk_usage(directory: Path) -> dict[str, float]:
    """Bytes on disk of the index folder (apparent sizes), in MiB: all, the SQLite files, the rest."""
    sizes = {"total": 0, "sqlite": 0}
    for path in directory.rglob("*"):
        if path.is_file() and path.name != RECORD_FILE:
            size = path.stat().st_size
            sizes["total"] += size
            if ".sqlite3" in path.name:
                sizes["sqlite"] += size
    return {
        "total_mib": sizes["total"] / 2**20,
        "sqlite_mib": sizes["sqlite"] / 2**20,
        "other_mib": (sizes["total"] - sizes["sqlite"]) / 2**20,
    }


# -- measuring in a serving-like process -------------------------------------------------------------


def run_worker(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run `measure_serving(spec)` in a fresh process, so that its peak RSS is that of a server that opens
    the index and answers questions, not the build's."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        spec_path, out_path = Path(folder) / "spec.json", Path(folder) / "out.json"
        spec_path.write_text(json.dumps({**spec, "out": str(out_path)}))
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_path)]
        subprocess.run(command, check=True, timeout=timeout_s, cwd=PROJECT_ROOT)
        return json.loads(out_path.read_text())


def measure_serving(spec: dict[str, Any]) -> dict[str, Any]:
    """Open the index, search, write, search again, check recall, then search with the real model."""
    settings = get_settings()
    encoder = TextHashEncoder()
    chunker = Chunker(**spec["chunking"])
    questions: list[str] = spec["questions"]
    max_seconds: float = spec["max_seconds"]
    result: dict[str, Any] = {"rss_start_mib": _vm_hwm_mib()}
    limit_blas_threads()  # as a server does (citeqa.wiring.Resources)
    # Every question's vector is computed now, a few at a time (little memory), so that the timed searches
    # only look it up: "encoding excluded" then excludes the encoding.
    for start in range(0, len(questions), 32):
        encoder.encode_queries(questions[start : start + 32])

    started, cpu_started = time.perf_counter(), time.process_time()
    store = IndexStore.open(Path(spec["index"]), manifest_for(encoder, chunker))
    result["open_s"] = time.perf_counter() - started
    result["open_cpu_s"] = time.process_time() - cpu_started
    result["documents"], result["chunks"] = store.counts()
    result["vector_counts"] = store.vector_counts()
    result["vector_indexes"] = {
        kind: vector_spec.describe() for kind, vector_spec in store.vector_specs().items()
    }
    started = time.perf_counter()
    translator = load_translator(settings) if spec["translator"] else None
    result["translator_load_s"] = time.perf_counter() - started
    weights = settings.ranking_weights()
    searcher = Searcher(store, encoder, weights, translator)
    indexer = Indexer(store, encoder, chunker)
    _remove_probes(store)

    # The first search of a fresh process. The store builds nothing lazily: opening it loaded the vector
    # checkpoints (chunks.vectors, sentences.vectors) and replayed what they lacked, and the keyword
    # postings are read from SQLite. What is left: jieba's dictionary (~1 s, unless the translator loaded
    # it), the keyword index's cached totals, and SQLite pages read for the first time.
    started, cpu_started = time.perf_counter(), time.process_time()
    searcher.search(questions[0], top_k=TOP_K, mode="hybrid")
    result["first_search_s"] = time.perf_counter() - started
    result["first_search_cpu_s"] = time.process_time() - cpu_started
    # Warm-up questions are others than the timed ones, so that nothing a search may cache flatters them.
    searches = spec["searches"]
    timed, warmup = questions[:searches], questions[searches : searches + spec["warmup"]]
    for question in warmup:
        searcher.search(question, top_k=TOP_K, mode="hybrid")
    result["excluded"] = _timed_searches(searcher, timed, max_seconds)
    result["rss_search_mib"] = _vm_hwm_mib()

    probe = Document.model_validate(spec["probe"])
    encoder.salt = "probe"
    result["writes"] = _measure_writes(
        store, indexer, searcher, probe, questions, spec["write_reps"], max_seconds
    )
    result["rss_writes_mib"] = _vm_hwm_mib()

    result["recall"] = _measure_recall(
        store,
        encoder.encode_queries(questions[: spec["recall_queries"]]),
        Path(spec["index"]),
        max_seconds,
        [(parameter, value) for parameter in BEAM_PREFIX for value in spec.get(parameter, ())],
    )

    result["included"] = None
    if spec["model"]:
        started = time.perf_counter()
        model = load_encoder(settings)
        result["model_load_s"] = time.perf_counter() - started
        if model.dimension != store.manifest.dimension:
            logger.warning(
                "The configured model has dimension %d, the bench index %d: encoding-included search skipped.",
                model.dimension,
                store.manifest.dimension,
            )
        else:
            real = Searcher(store, model, weights, translator)
            # Each timed question is encoded once, untimed, first: a server that has run a while has seen
            # inputs of every length, and torch may prepare work per input shape. Nothing caches vectors.
            _timed(lambda question: model.encode_queries([question]), timed, max_seconds)
            for question in warmup:
                real.search(question, top_k=TOP_K, mode="hybrid")
            # The embedding alone, to tell the model's share of an encoding-included search.
            result["encode_only"] = _timed(
                lambda question: model.encode_queries([question]), timed, max_seconds
            )
            result["included"] = _timed_searches(real, timed, max_seconds)
        result["rss_with_model_mib"] = _vm_hwm_mib()
    store.close()
    result["loadavg_end"] = os.getloadavg()
    return result


def _timed(call: Callable[[str], object], questions: Sequence[str], max_seconds: float) -> dict[str, Any]:
    """Wall and CPU time (of the whole process) of `call` per question, in ms, until the questions or
    `max_seconds` run out."""
    times: list[float] = []
    cpu_times: list[float] = []
    phase_started = time.perf_counter()
    for question in questions:
        started, cpu_started = time.perf_counter(), time.process_time()
        call(question)
        times.append((time.perf_counter() - started) * 1000)
        cpu_times.append((time.process_time() - cpu_started) * 1000)
        if time.perf_counter() - phase_started > max_seconds:
            logger.warning(
                "Phase stopped by --max-seconds after %d of %d questions.", len(times), len(questions)
            )
            break
    values, cpu = np.array(times), np.array(cpu_times)
    return {
        "n": len(times),
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "mean_ms": float(values.mean()),
        "max_ms": float(values.max()),
        "cpu_p50_ms": float(np.percentile(cpu, 50)),
        "cpu_p95_ms": float(np.percentile(cpu, 95)),
    }


def _timed_searches(searcher: Searcher, questions: Sequence[str], max_seconds: float) -> dict[str, Any]:
    return _timed(
        lambda question: searcher.search(question, top_k=TOP_K, mode="hybrid"), questions, max_seconds
    )


def _remove_probes(store: IndexStore) -> None:
    # A run killed between adding and deleting its probe leaves it behind; the index must hold N chunks.
    for summary in store.list_documents():
        if summary.doc_id.startswith(PROBE_PREFIX):
            logger.info("Removing a probe document left by an interrupted run: %s", summary.doc_id)
            store.delete(summary.doc_id)


def _measure_writes(
    store: IndexStore,
    indexer: Indexer,
    searcher: Searcher,
    probe: Document,
    questions: Sequence[str],
    reps: int,
    max_seconds: float,
) -> dict[str, Any]:
    """Add a small document, time the next search, delete the document: `reps` times.

    The probe is deleted again so that the cached index keeps its size for the next run."""
    add_s, search_s, search_cpu_s, delete_s = [], [], [], []
    phase_started = time.perf_counter()
    for rep in range(reps):
        document = probe.model_copy(
            update={"doc_id": f"{PROBE_PREFIX}{rep}", "title": f"{probe.title} probe {rep}"}
        )
        started = time.perf_counter()
        indexer.add([document])
        add_s.append(time.perf_counter() - started)
        question = questions[rep % len(questions)]
        started, cpu_started = time.perf_counter(), time.process_time()
        searcher.search(question, top_k=TOP_K, mode="hybrid")
        search_s.append(time.perf_counter() - started)
        search_cpu_s.append(time.process_time() - cpu_started)
        started = time.perf_counter()
        store.delete(document.doc_id)
        delete_s.append(time.perf_counter() - started)
        if time.perf_counter() - phase_started > max_seconds:
            logger.warning("Write phase stopped by --max-seconds after %d of %d repetitions.", rep + 1, reps)
            break
    searcher.search(questions[0], top_k=TOP_K, mode="hybrid")  # leave the process as warm as it was
    return {
        "n": len(add_s),
        "first_search_after_add_s": float(np.median(search_s)),
        "first_search_after_add_cpu_s": float(np.median(search_cpu_s)),
        "add_small_document_s": float(np.median(add_s)),
        "delete_small_document_s": float(np.median(delete_s)),
        "all_first_search_after_add_s": search_s,
    }


def _store_top_k(store: IndexStore, queries: np.ndarray, k: int, kind: str) -> tuple[list[np.ndarray], float]:
    """The ids of the `k` chunks (or sentences) the store's own vector search finds for each query, all in
    one snapshot (`IndexStore.nearest_chunks` / `nearest_sentences`, as a search asks for its candidates),
    and the ms a query took."""
    found = []
    started = time.perf_counter()
    with store.snapshot():
        for query in queries:
            if kind == "chunks":
                ids, _ = store.nearest_chunks(query, k)
            else:
                ids, _, _ = store.nearest_sentences(query, k)
            found.append(np.asarray(ids, dtype=np.int64))
    return found, (time.perf_counter() - started) * 1000 / max(len(queries), 1)


# The search parameters --ef-search and --nprobe set, and the prefix of their figures' keys.
BEAM_PREFIX = {"ef_search": "ef", "nprobe": "np"}
BEAM_LABEL = {"ef": "efSearch", "np": "nprobe"}


def _measure_recall(
    store: IndexStore,
    queries: np.ndarray,
    directory: Path,
    max_seconds: float,
    beams: Sequence[tuple[str, int]] = (),
) -> dict[str, Any]:
    """recall@10 of the chunk and of the sentence vector searches (see `_recall`), asked for 10 and asked
    for as many as a search's candidates (`CandidateCounts`): with the indexes' own search parameters, then
    with each of `beams` ((parameter, value): efSearch for HNSW, nprobe for IVF; each also timed), against
    one exact pass."""
    result: dict[str, Any] = {}
    candidates = CandidateCounts()
    own = store.vector_specs()
    for kind, prefix, wanted in (
        ("chunks", "", candidates.chunks),
        ("sentences", "sentence_", candidates.sentences),
    ):
        lists: dict[str, list[np.ndarray]] = {}
        store_ms: dict[str, float] = {}
        for beam in (None, *beams):
            label = ""
            if beam is not None:
                parameter, value = beam
                store.tune_search(**{parameter: value})
                label = f"{BEAM_PREFIX[parameter]}{value}_"
            lists[f"{label}recall_at_10"], store_ms[f"{label}ms_per_query"] = _store_top_k(
                store, queries, RECALL_K, kind
            )
            lists[f"{label}candidate_recall_at_10"], _ = _store_top_k(store, queries, wanted, kind)
        if beams:
            store.tune_search(ef_search=own[kind].ef_search, nprobe=own[kind].nprobe)
        figures = _recall(kind, queries, directory, max_seconds, lists)
        result[f"{prefix}recall_at_10"] = figures.pop("recall_at_10")
        result[f"{prefix}candidate_recall_at_10"] = figures.pop("candidate_recall_at_10")
        result[kind] = {**figures, **store_ms, "candidates": wanted, "own_spec": own[kind].describe()}
    return result


def _recall(
    kind: str, queries: np.ndarray, directory: Path, max_seconds: float, lists: dict[str, list[np.ndarray]]
) -> dict[str, Any]:
    """For each list of ids per query in `lists`, the share of the exact top 10 it holds (recall@10 for a
    list of 10), against exact search over the vectors the document store holds (the source of truth the
    vector indexes are built from), read in batches so that a million-chunk index need not fit in memory
    twice. A returned unit counts as found when its exact score reaches the exact 10th best (within
    TIE_TOLERANCE), so that ties at the cut do not count as misses."""
    started = time.perf_counter()
    best = np.full((len(queries), RECALL_K), -np.inf, dtype=np.float32)  # the exact top scores so far
    returned_scores = {
        name: [np.full(len(ids), -np.inf, dtype=np.float32) for ids in listed]
        for name, listed in lists.items()
    }
    total = 0
    documents = DocumentStore.open(directory)
    try:
        with documents.reading():
            for ids, vectors in documents.vectors_after(kind, 0):
                scores = queries @ vectors.T
                best = np.partition(np.concatenate([best, scores], axis=1), -RECALL_K, axis=1)[:, -RECALL_K:]
                for name, listed in lists.items():
                    for query, returned in enumerate(listed):
                        rows = np.minimum(np.searchsorted(ids, returned), len(ids) - 1)
                        here = ids[rows] == returned
                        returned_scores[name][query][here] = scores[query, rows[here]]
                total += len(ids)
                if time.perf_counter() - started > max_seconds:
                    logger.warning("Recall of %s stopped by --max-seconds after %d vectors.", kind, total)
                    break
    finally:
        documents.close()
    if total == 0:
        return {"queries": 0, "exact_vectors": 0, **{name: math.nan for name in lists}}
    k = min(RECALL_K, total)
    kth = np.sort(best, axis=1)[:, -k]
    return {
        "queries": len(queries),
        "exact_vectors": total,
        **{
            name: float(
                np.mean(
                    [
                        min(int((scores >= threshold - TIE_TOLERANCE).sum()), k) / k
                        for scores, threshold in zip(listed_scores, kth, strict=True)
                    ]
                )
            )
            for name, listed_scores in returned_scores.items()
        },
    }


def _vm_hwm_mib() -> float:
    """Peak resident memory of this process so far (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


# -- the report --------------------------------------------------------------------------------------

# (key, label): the rows of the table, one column per index size; the JSON rows carry the same keys.
METRICS: list[tuple[str, str]] = [
    ("chunks", "chunks"),
    ("documents", "documents"),
    ("build_s", "build time (s, embedding included)"),
    ("ingest_first_slice", "ingest, first 10% (chunks/s, embedding excluded)"),
    ("ingest_last_slice", "ingest, last 10% (chunks/s, embedding excluded)"),
    ("ingest_first_slice_cpu", "ingest, first 10% (chunks per CPU-second)"),
    ("ingest_last_slice_cpu", "ingest, last 10% (chunks per CPU-second)"),
    ("search_excluded_p50_ms", "search p50, encoding excluded (ms)"),
    ("search_excluded_p95_ms", "search p95, encoding excluded (ms)"),
    ("search_excluded_cpu_p50_ms", "search p50, encoding excluded, CPU time (ms)"),
    ("search_excluded_cpu_p95_ms", "search p95, encoding excluded, CPU time (ms)"),
    ("search_included_p50_ms", "search p50, encoding included (ms)"),
    ("search_included_p95_ms", "search p95, encoding included (ms)"),
    ("first_search_after_write_s", "first search after adding a document (s, median)"),
    ("first_search_after_write_cpu_s", "first search after adding a document, CPU time (s, median)"),
    ("add_small_document_s", "adding one small document (s, median)"),
    ("open_s", "open the index in a fresh process (s)"),
    ("first_search_s", "first search of a fresh process (s)"),
    ("peak_rss_mib", "peak RSS of the serving process (MiB)"),
    ("disk_mib", "index on disk (MiB)"),
    ("vector_indexes", "vector indexes"),
    ("recall_at_10", "recall@10, chunk vectors vs exact"),
    ("sentence_recall_at_10", "recall@10, sentence vectors vs exact"),
    ("candidate_recall_at_10", "exact top 10 of chunk vectors among the 200 candidates"),
    ("sentence_candidate_recall_at_10", "exact top 10 of sentence vectors among the 400 candidates"),
    ("loadavg_1min", "machine load average (1 min) when measuring began"),
]


def make_row(record: dict[str, Any], disk: dict[str, float], served: dict[str, Any] | None) -> dict[str, Any]:
    slices, cpu_slices = record["ingest_slices_chunks_per_s"], record["ingest_slices_chunks_per_cpu_s"]
    row: dict[str, Any] = {key: None for key, _ in METRICS}
    row.update(
        chunks=record["chunks"],
        documents=record["documents"],
        build_s=record["build_seconds"],
        ingest_first_slice=slices[0],
        ingest_last_slice=slices[-1],
        ingest_first_slice_cpu=cpu_slices[0],
        ingest_last_slice_cpu=cpu_slices[-1],
        ingest_slices_chunks_per_s=slices,
        ingest_slices_chunks_per_cpu_s=cpu_slices,
        disk_mib=disk["total_mib"],
        disk=disk,
        build=record,
        serving=served,
    )
    if served is None:
        return row
    included = served.get("included")
    row.update(
        search_excluded_p50_ms=served["excluded"]["p50_ms"],
        search_excluded_p95_ms=served["excluded"]["p95_ms"],
        search_excluded_cpu_p50_ms=served["excluded"]["cpu_p50_ms"],
        search_excluded_cpu_p95_ms=served["excluded"]["cpu_p95_ms"],
        search_included_p50_ms=included["p50_ms"] if included else None,
        search_included_p95_ms=included["p95_ms"] if included else None,
        first_search_after_write_s=served["writes"]["first_search_after_add_s"],
        first_search_after_write_cpu_s=served["writes"]["first_search_after_add_cpu_s"],
        add_small_document_s=served["writes"]["add_small_document_s"],
        open_s=served["open_s"],
        first_search_s=served["first_search_s"],
        # Before the model is loaded: the memory of serving with this store, whichever encoder it has.
        peak_rss_mib=served["rss_writes_mib"],
        vector_indexes=", ".join(f"{kind} {kind_of}" for kind, kind_of in served["vector_indexes"].items()),
        recall_at_10=served["recall"]["recall_at_10"],
        sentence_recall_at_10=served["recall"]["sentence_recall_at_10"],
        candidate_recall_at_10=served["recall"].get("candidate_recall_at_10"),
        sentence_candidate_recall_at_10=served["recall"].get("sentence_candidate_recall_at_10"),
        loadavg_1min=served["loadavg_start"][0],
    )
    return row


def _format(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, str):
        return value
    if key in ("chunks", "documents"):
        return f"{value:,}"
    if key.endswith("recall_at_10"):
        return f"{value:.3f}"
    if key == "loadavg_1min":
        return f"{value:.1f}"
    if key.endswith("_ms"):
        return f"{value:.1f}"
    if key.endswith("_s"):
        return f"{value:.2f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.0f}"


def print_tables(rows: Sequence[dict[str, Any]], output: str, console: Console) -> None:
    sizes = [f"{row['build']['key']['target_chunks']:,}" for row in rows]
    slice_labels = [f"{10 * i}–{10 * (i + 1)}%" for i in range(SLICES)]
    main = [(label, [_format(key, row[key]) for row in rows]) for key, label in METRICS]
    slices = [
        (
            label,
            [
                f"{_format('rate', row['ingest_slices_chunks_per_s'][i])} "
                f"({_format('rate', row['ingest_slices_chunks_per_cpu_s'][i])})"
                for row in rows
            ],
        )
        for i, label in enumerate(slice_labels)
    ]
    slices_title = "ingest per 10% slice: chunks/s (chunks per CPU-second), embedding excluded"
    tables = [("metric", main), (slices_title, slices)]
    beams = _beam_lines(rows)
    if beams:
        tables.append(("HNSW search beam (efSearch): chunks / sentences", beams))
    if output == "markdown":
        for title, lines in tables:
            print(f"| {title} | " + " | ".join(f"N = {size}" for size in sizes) + " |")
            print("|---|" + "---:|" * len(sizes))
            for label, values in lines:
                print(f"| {label} | " + " | ".join(values) + " |")
            print()
        return
    for title, lines in [("Scale benchmark", main), *tables[1:]]:
        table = Table(title=title)
        table.add_column("metric" if lines is main else "slice of the build" if lines is slices else "beam")
        for size in sizes:
            table.add_column(f"N = {size}", justify="right")
        for label, values in lines:
            table.add_row(label, *values)
        console.print(table)


def _beam_lines(rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """Recall and time of the vector searches at each --ef-search or --nprobe, "chunks / sentences" per size."""
    measured = [row["serving"]["recall"] if row.get("serving") else {} for row in rows]
    beams = sorted(
        {
            (key[:2], int(key[2:].split("_")[0]))
            for figures in measured
            for key in figures.get("chunks", {})
            if key[:2] in BEAM_LABEL and key[2:3].isdigit()
        }
    )
    lines = []
    for prefix, beam in beams:
        for key, label, spec in (
            ("recall_at_10", "recall@10", ".3f"),
            ("candidate_recall_at_10", "exact top 10 among the candidates", ".3f"),
            ("ms_per_query", "ms per vector search (k=10)", ".2f"),
        ):
            values = []
            for figures in measured:
                pair = [
                    figures.get(kind, {}).get(f"{prefix}{beam}_{key}") for kind in ("chunks", "sentences")
                ]
                values.append(" / ".join("–" if value is None else format(value, spec) for value in pair))
            lines.append((f"{BEAM_LABEL[prefix]} {beam}: {label}", values))
    return lines


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "memory_gib": round(memory_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "loadavg_start": os.getloadavg(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# -- the command line --------------------------------------------------------------------------------

DESCRIPTION = """\
Scale benchmark for issue 14: builds synthetic indexes of N chunks and measures search, writes, ingest,
memory and disk at each size, so that versions of the store can be compared (docs/PERF.md).

Indexes. The extbench corpus (../shared/bench/extbench/corpus.jsonl: CMRC 2018 + XQuAD, CC BY-SA 4.0)
is repeated until N chunks are stored; each copy's documents get their own doc_id and title suffix. Without
../shared the bundled sample report (data/sample/) is repeated (--corpus picks one). Chunking is that of the
settings (CITEQA_CHUNK_SIZE/OVERLAP). Vectors come from a free deterministic encoder derived from the text,
so that only the store and the ranking cost time: hashed character 1- and 2-gram counts projected to 384
dimensions by a fixed Gaussian matrix (as bench/vectors.py), plus, for passages, a small random part keyed
by the copy and the text, so that copies of a passage have cosine ~0.8, not 1. Questions get the n-gram
vector alone: they are near the passages they were written about.
Documents go in through Indexer.add in calls of about COMMIT_EVERY_CHUNKS chunks (one commit each).
Each index is built once into CACHE_DIR/scale-N and reused while its record matches (same N, corpus,
chunking, encoder, store format and the same index/ source); --rebuild forces a new build.

Measured per size:
  build time               wall time of the whole build, embedding included (the encoder is nearly free).
  ingest per 10% slice     chunks per second in each tenth of the build, the encoder's time subtracted.
  search p50/p95           hybrid searches (top_k 5) of extbench questions (CMRC zh, XQuAD zh and XQuAD en
                           in turn; sample: its dev questions) after a warm-up, in a fresh process that
                           opened the index as a server does (with the CC-CEDICT translator unless
                           --no-translator). "Encoding excluded": the questions are embedded by the free
                           encoder before the timed searches, which look their vectors up. "Encoding
                           included": by the configured model (citeqa.wiring.load_encoder; --no-model skips
                           it).
  first search after write a small document is added (Indexer.add), the next search is timed, the
                           document is deleted; the median of --write-reps. The add's own time is shown too.
  open, first search       opening the index in the fresh process (loading the vector checkpoints
                           chunks.vectors and sentences.vectors, replaying the writes they lack), and its
                           first search (jieba's dictionary unless the translator loaded it, first reads).
  peak RSS                 VmHWM of that process after the searches and writes, before the model is loaded
                           (the build's memory does not count).
  index on disk            bytes of the index folder: SQLite, and the vector checkpoints (saved on close).
  vector indexes           the kind of the chunk and sentence vector indexes the fresh process opened
                           (IndexStore.vector_specs): flat (exact) up to 50,000 vectors, HNSW above
                           (index.storage.vectors.choose_spec); sentences are ~5.5 per chunk.
  recall@10                the store's chunk-vector search (IndexStore.nearest_chunks) and sentence-vector
                           search (nearest_sentences) against exact numpy search over the vectors SQLite
                           holds, for the first --recall-queries questions; a unit counts when its exact
                           score reaches the exact 10th best. 1.000 while the index is flat. The XQuAD en
                           questions ask about Chinese passages, which character n-grams do not relate them
                           to: they have no near neighbour, the hard case for an approximate index.
  candidates' recall       the same, over the first 200 chunks / 400 sentences the store returns, as many as
                           a search asks each signal for (index.search.CandidateCounts).
  CPU time rows            the same in CPU time of the measuring process, all its threads. The store runs
                           each vector search on one FAISS thread, so on a quiet machine a search's CPU
                           time is close to its wall time; other processes on the cores inflate it less
                           than the wall time.
  load average             the 1-min load average when measuring began; compare only runs made at a low load.

Examples:
  .venv/bin/python bench/scale.py                                 # 10k and 100k, real model included
  .venv/bin/python bench/scale.py --chunks 10000 --json var/bench/scale.json --format markdown
  .venv/bin/python bench/scale.py --chunks 2000 --corpus sample --no-model --no-translator --searches 50
"""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/scale.py", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--chunks",
        type=int,
        nargs="+",
        default=[10_000, 100_000],
        metavar="N",
        help="index sizes in chunks (default: 10000 100000; 1000000 is possible, a long build)",
    )
    parser.add_argument(
        "--corpus",
        choices=["auto", "extbench", "sample"],
        default="auto",
        help="text to repeat: extbench, the bundled sample report, or extbench when present (default)",
    )
    parser.add_argument(
        "--extbench",
        type=Path,
        default=DEFAULT_EXTBENCH,
        help=f"extbench folder (default {DEFAULT_EXTBENCH})",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        help="where the indexes are built, as scale-N (default var/bench)",
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="build every index anew, even when a cached one matches"
    )
    parser.add_argument(
        "--reuse-stale",
        action="store_true",
        help="reuse a cached index although index/ changed since it was built (its ingest figures stay the old code's)",
    )
    parser.add_argument("--searches", type=int, default=200, help="timed searches per mode (default 200)")
    parser.add_argument(
        "--warmup", type=int, default=5, help="untimed searches before each timed series (default 5)"
    )
    parser.add_argument(
        "--write-reps",
        type=int,
        default=3,
        help="add/search/delete repetitions for the first search after a write (default 3)",
    )
    parser.add_argument(
        "--recall-queries", type=int, default=100, help="questions for recall@10 (default 100)"
    )
    parser.add_argument(
        "--ef-search",
        type=int,
        nargs="+",
        default=[],
        metavar="EF",
        help="also measure recall@10 and the time of a vector search with these HNSW search beams (a table)",
    )
    parser.add_argument(
        "--nprobe",
        type=int,
        nargs="+",
        default=[],
        metavar="N",
        help="also measure recall@10 and the time of a vector search scanning this many IVF lists (a table)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=300.0,
        help="time bound of each measuring phase (searches, writes, recall); a phase stops early past it (default 300)",
    )
    parser.add_argument(
        "--max-build-seconds",
        type=float,
        default=0.0,
        help="stop a build past this many seconds (0: no bound); a stopped build is reported but not measured or reused",
    )
    parser.add_argument(
        "--no-model", action="store_true", help="skip the encoding-included searches (no real model)"
    )
    parser.add_argument(
        "--no-translator",
        action="store_true",
        help="serve without the CC-CEDICT translator (faster start; not as served)",
    )
    parser.add_argument("--seed", type=int, default=2018, help="seed of the question order (default 2018)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write every figure as JSON to PATH")
    parser.add_argument(
        "--format", choices=["rich", "markdown"], default="rich", help="table output (default rich)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # internal: the measuring subprocess
    args = parser.parse_args(argv)
    if (
        any(n < 1 for n in [*args.chunks, *args.ef_search, *args.nprobe])
        or args.searches < 1
        or args.write_reps < 1
        or args.recall_queries < 1
    ):
        parser.error("--chunks, --searches, --write-reps, --recall-queries and --ef-search must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=True)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    if args.worker is not None:
        spec = json.loads(args.worker.read_text())
        Path(spec["out"]).write_text(json.dumps(measure_serving(spec)))
        return 0

    machine = machine_info()
    logger.info(
        "%d cores (%s), %.1f GiB RAM, load average %.2f %.2f %.2f",
        machine["nproc"],
        machine["cpu_model"],
        machine["memory_gib"],
        *machine["loadavg_start"],
    )
    corpus = load_corpus(args.corpus, args.extbench, args.seed)
    settings = get_settings()
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    logger.info(
        "Corpus %s: %d documents repeated; %d questions available",
        corpus.kind,
        len(corpus.documents),
        len(corpus.questions),
    )
    probe_source = next(document for document in corpus.documents if len(document.text) >= PROBE_CHARS)
    probe = probe_source.model_copy(update={"text": probe_source.text[:PROBE_CHARS], "page_map": []})
    rows = []
    for target in args.chunks:
        directory = args.cache_dir / f"scale-{target}"
        record = ensure_index(
            directory,
            target,
            corpus,
            chunker,
            rebuild=args.rebuild,
            reuse_stale=args.reuse_stale,
            max_build_seconds=args.max_build_seconds,
            console=console,
        )
        logger.info(
            "%s: %d chunks, %d documents, %s in %.0f s",
            directory,
            record["chunks"],
            record["documents"],
            "reused, built" if record["reused"] else "built",
            record["build_seconds"],
        )
        disk = disk_usage(directory)
        served = None
        if record["complete"]:
            spec = {
                "index": str(directory),
                "chunking": chunker.settings.model_dump(),
                # Timed questions first, then the warm-up ones; a short list (the sample's) is cycled.
                "questions": [
                    corpus.questions[i % len(corpus.questions)]
                    for i in range(max(args.searches + args.warmup, args.recall_queries))
                ],
                "searches": args.searches,
                "warmup": args.warmup,
                "write_reps": args.write_reps,
                "recall_queries": args.recall_queries,
                "ef_search": args.ef_search,
                "nprobe": args.nprobe,
                "max_seconds": args.max_seconds,
                "model": not args.no_model,
                "translator": not args.no_translator,
                "probe": probe.model_dump(),
            }
            loadavg_before = os.getloadavg()
            served = run_worker(spec, timeout_s=5 * args.max_seconds + 900)
            served["loadavg_start"] = loadavg_before
        if code_fingerprint() != record["code"]:
            logger.warning(
                "index/ changed while %s was built or measured (others editing the tree?): its figures mix code.",
                directory,
            )
        rows.append(make_row(record, disk, served))
    print_tables(rows, args.format, Console())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "benchmark": "bench/scale.py",
            "bench_format": BENCH_FORMAT,
            "command": [Path(sys.argv[0]).as_posix(), *sys.argv[1:]],
            "machine": machine,
            "code": code_fingerprint(),
            "corpus": {"kind": corpus.kind, "paths": [str(p) for p in corpus.paths], "sha256": corpus.sha256},
            "metrics": dict(METRICS),
            "rows": rows,
        }
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))
        logger.info("Wrote %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
