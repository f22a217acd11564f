"""Vector search behind an interface: exact while it is fast enough, approximate (IVF) past a measured size.

`VectorIndex` is what a store needs from a vector backend (a second backend, e.g. Milvus, implements the
same protocol); `FaissVectorIndex` is the in-process FAISS implementation, with `save`/`load` to one file.
`choose_spec` says which index a collection of a given size should have; `fit_to_size` rebuilds an index
under that spec from its own vectors, which the store does on load and on reindex.

Ids are the caller's int64 ids (≥ 0; FAISS uses -1 for "no result"). Scores are inner products: cosine
similarity when the vectors are normalised, as every encoder of this project makes them.

The thresholds and defaults below were measured with `bench/vectors.py` (the table and the reasons are in
its docstring and in the report of issue 14); change them only with a new measurement.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import faiss
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

# -- measured thresholds (bench/vectors.py, 2-core machine, dimension 384) ------------------------------

# A flat search reads every vector: CPU p50 1.0 ms at 10k vectors, 4.6 ms at 50k, 9.9 ms at 100k, 29 ms at
# 300k, 90 ms at 1M (fp32, 384 dimensions, one thread; ~0.1 µs a vector, so the threshold is in n·d).
# 50,000 vectors of 384 dimensions is where it passes ~5 ms (8.7 ms wall on the machine when busy); HNSW
# there answers in ~1 ms with recall@10 1.000 (related queries).
FLAT_MAX_SCALARS = 50_000 * 384
# Once approximate, go back to flat only below this share of the threshold: a collection that hovers
# around the threshold must not rebuild its graph (~20 s at the threshold, more when busy) every other write.
FLAT_RETURN_SHARE = 0.5
# Allowed sets of at most this many scalars (|allowed|·d) are scored exactly, larger ones through the
# filtered graph. Exact costs ~0.3-0.7 µs a vector (random reads of their codes: 1,000 in 0.4-0.6 ms,
# 20,000 in 7-15 ms); the filtered graph 16-23 ms while the set is a small share (its beam widened up to
# MAX_EF_SEARCH), with recall falling below ~1% of the index (0.76 for 1,000 of 1M, 0.98 for 5,000).
# Measured crossover (bench/vectors.py, "allowed" table): ~15,000 vectors at 100k, 20,000-50,000 at 300k
# and 1M; 20,000 at 384 dimensions.
EXACT_SUBSET_MAX_SCALARS = 20_000 * 384
# An HNSW index rebuilds itself once removed vectors reach this share of its nodes: tombstones still
# route searches (15% removed: recall of related queries unchanged, p50 unchanged), but they cost memory
# and widen the beam. A rebuild is a full build (3.7 minutes for 1M vectors here, quiet), so a store with
# large indexes may prefer compact_share=1.0 and `rebuilt()` in the background.
COMPACT_SHARE = 0.2
# An exact search among `allowed` scans every code in place (skipping the others) once they are at least
# 1/SCAN_SHARE of the index; below, it copies the chosen codes, which costs more per vector but not per index.
SCAN_SHARE = 8
# The largest efSearch a filtered search raises itself to (tombstones or a large `allowed` set).
MAX_EF_SEARCH = 4096
# Scalar quantiser training: at most this many vectors (evenly spread) are read for the per-dimension
# ranges; below SQ_MARGIN_BELOW vectors the ranges are widened by SQ_MARGIN of their width on each side,
# because extremes seen in a small sample understate those of the vectors added later (which would be
# clipped).
SQ_TRAIN_SAMPLE = 65_536
SQ_MARGIN_BELOW = 10_000
SQ_MARGIN = 0.1
# Vectors decoded and re-added per step when rebuilding: bounds the extra memory of a rebuild.
REBUILD_BATCH = 65_536
# IVF (the approximate index `choose_spec` picks): about 8·√n inverted lists (FAISS's guidance is 4-16·√n),
# a power of two, at most IVF_MAX_LISTS (k-means on 64 vectors a list costs ~1 minute for 4,096 lists of
# 384 dimensions here) and at least IVF_TRAIN_PER_LIST training vectors a list (FAISS warns below 39).
# An index is rebuilt with more lists once its size calls for IVF_REGROW times as many (it grew ~16×): a
# graph built at the threshold (1,024 lists) is rebuilt once, at ~262,000 vectors (4,096).
IVF_LISTS_PER_ROOT = 8
IVF_MAX_LISTS = 4096
IVF_TRAIN_PER_LIST = 39
IVF_TRAIN_SAMPLE_PER_LIST = 64
IVF_REGROW = 4
# Lists an IVF search scans, chosen on bench/ann_copies.py's first 200 extbench questions (recall@10 of chunk
# vectors at 100,001 with 1,024 lists: 0.943 at 32, 0.965 at 64; at 1M with 4,096 lists: 0.989 at 32,
# 0.994 at 64, 1.8 ms) and checked on the next 200 (100k: 0.954 at 32, 0.972 at 64; 1M: 0.996, 0.998).
# HNSW, M 32, efSearch 256, got 0.953 at 100k and 0.737 at 1M on the same vectors (docs/PERF.md).
IVF_NPROBE = 64
# The largest nprobe a filtered search widens itself to.
MAX_NPROBE = 4096

FILE_MAGIC = b"CITEQA-VECTORS\n"
FILE_FORMAT = 1

_QUANTIZERS = {"sq8": faiss.ScalarQuantizer.QT_8bit, "fp16": faiss.ScalarQuantizer.QT_fp16}


class IndexSpec(BaseModel):
    """Which index to build and how: what the store records in its manifest.

    `m`, `ef_construction` and `ef_search` matter only for `kind="hnsw"`, `lists` and `nprobe` only for
    `kind="ivf"` (flat ignores them all). The defaults are those measured best for this project's vectors
    (bench/vectors.py, bench/scale.py): recall@10 ≥ 0.98 against exact search at the lowest latency.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["flat", "hnsw", "ivf"] = "flat"
    storage: Literal["fp32", "sq8", "fp16"] = Field(
        default="fp32",
        description="How vectors are stored: fp32 exact; fp16 half the memory, scores within ~1e-3 (recall "
        "as fp32's); sq8 a quarter, scores within ~1e-2 (recall@10 at most ~0.995 of exact).",
    )
    m: int = Field(default=32, ge=4, le=128, description="HNSW links per node (memory: 8·m bytes a vector).")
    ef_construction: int = Field(default=100, ge=8, le=2048, description="HNSW build-time beam width.")
    ef_search: int = Field(default=256, ge=1, le=MAX_EF_SEARCH, description="HNSW search beam width.")
    lists: int = Field(default=1, ge=1, le=65_536, description="IVF inverted lists (k-means centroids).")
    nprobe: int = Field(default=IVF_NPROBE, ge=1, le=MAX_NPROBE, description="IVF lists a search scans.")

    def describe(self) -> str:
        if self.kind == "flat":
            return f"flat/{self.storage}"
        if self.kind == "ivf":
            return f"ivf(lists={self.lists}, nprobe={self.nprobe})/{self.storage}"
        return f"hnsw(M={self.m}, efC={self.ef_construction}, efS={self.ef_search})/{self.storage}"


# The approximate spec `choose_spec` picks past the threshold (bench/vectors.py, k=10, one thread):
# - efSearch 256: the smallest with recall@10 ≥ 0.98 on related queries at 1M with a margin (128: 0.981,
#   256: 0.996; 1.000 at every smaller size), for ~1.1 ms CPU at 1M. Held-out queries (no near neighbour)
#   get 0.99 at 50k but 0.72 at 1M: 0.98 there needs efSearch > 1024 (> 3.4 ms); `tune` if they matter.
# - fp16 storage: recall equal to fp32's (±0.002) at every size and efSearch where both were measured (up to
#   300k), 1,040 bytes a vector instead of 1,808, and faster (0.92 vs 1.01 ms at 300k). sq8 (656 bytes)
#   tops out at 0.995 on related queries (0.986 at 1M) and loses more on held-out ones: the choice when
#   memory counts most (`choose_spec(..., storage="sq8")`, e.g. sentence vectors, 5-6 per chunk).
# - M=32 over 16: better recall per efSearch on hard queries (held-out at 100k, ef 256: 0.965 vs 0.947) for
#   128 bytes a vector more; efConstruction 100 over FAISS's 40: held-out 0.965 vs 0.910 at 100k for about
#   1.7x the build time (fp16: 35 s for 100k, 94 s for 300k, 219 s for 1M on 2 quiet cores; 2-3x busy).
DEFAULT_HNSW_SPEC = IndexSpec(kind="hnsw", storage="fp16", m=32, ef_construction=100, ef_search=256)


def ivf_lists(n_vectors: int) -> int:
    """The inverted lists an IVF index of `n_vectors` vectors gets (see IVF_LISTS_PER_ROOT)."""
    wanted = min(
        IVF_LISTS_PER_ROOT * math.sqrt(max(n_vectors, 1)), IVF_MAX_LISTS, n_vectors / IVF_TRAIN_PER_LIST
    )
    return 1 << max(0, math.floor(math.log2(max(wanted, 1))))


def ivf_spec(
    n_vectors: int, storage: Literal["fp32", "sq8", "fp16"] = "fp16", current: IndexSpec | None = None
) -> IndexSpec:
    """The IVF index for `n_vectors` vectors: `current` while it is IVF with enough lists (IVF_REGROW), else
    one of `ivf_lists(n_vectors)` lists (with `current`'s nprobe if it was IVF)."""
    lists = ivf_lists(n_vectors)
    if current is not None and current.kind == "ivf":
        return current if lists < IVF_REGROW * current.lists else current.model_copy(update={"lists": lists})
    return IndexSpec(kind="ivf", storage=storage, lists=lists)


@runtime_checkable
class VectorIndex(Protocol):
    """Top-k inner-product search over vectors keyed by int64 ids; what a store calls.

    Implementations are not safe for concurrent writes, nor for a search during a write: the store
    serialises them.
    """

    @property
    def spec(self) -> IndexSpec: ...

    @property
    def dimension(self) -> int: ...

    def __len__(self) -> int:
        """The number of live vectors (removed ones excluded)."""
        ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add `vectors` (n × dimension, float32) under `ids` (n distinct int64 ≥ 0, none already live).

        Raises ValueError without changing anything when the shapes, ids or values are wrong."""
        ...

    def remove(self, ids: np.ndarray) -> int:
        """Remove the vectors of `ids`; ids not held are ignored. Returns how many were removed."""
        ...

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The (ids, scores) of at most `k` live vectors with the highest inner product with `query`,
        best first; only among `allowed` ids when given (ids not held are ignored)."""
        ...

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of `ids` (decoded: exact for fp32), in that order, to score candidates
        found by other signals. Raises KeyError if any id is not live."""
        ...

    def ids(self) -> np.ndarray:
        """Every live id, ascending: what a store compares with its rows to find what to add or remove."""
        ...


class VectorFileError(ValueError):
    """A vector index file that is not one, or does not hold what its header says; rebuild it instead."""


def approximate_spec(
    n_vectors: int,
    kind: Literal["ivf", "hnsw"],
    storage: Literal["fp32", "sq8", "fp16"],
    current: IndexSpec | None = None,
) -> IndexSpec:
    """The approximate index of `kind` for `n_vectors` vectors: `current` while it is of that kind (an IVF
    index until its size calls for IVF_REGROW times its lists, `ivf_spec`), else a new one."""
    if kind == "ivf":
        return ivf_spec(n_vectors, storage, current)
    if current is not None and current.kind == "hnsw":
        return current
    return DEFAULT_HNSW_SPEC.model_copy(update={"storage": storage})


def choose_spec(
    n_vectors: int,
    dimension: int,
    current: IndexSpec | None = None,
    *,
    approximate: Literal["ivf", "hnsw"] = "ivf",
    storage: Literal["fp32", "sq8", "fp16"] | None = None,
) -> IndexSpec:
    """The index a collection of `n_vectors` vectors of `dimension` should have.

    Flat (exact) while a full scan is fast enough (n·d ≤ FLAT_MAX_SCALARS: 50,000 vectors at 384
    dimensions), `approximate` past it (`approximate_spec`; which suits which vectors is measured in
    index/store.py's APPROXIMATE). With `current`, the current spec is kept as long as its kind is still
    right (so tuned parameters survive), and an approximate index becomes flat again only below
    FLAT_RETURN_SHARE of the threshold, so that sizes around it do not rebuild back and forth. `storage`
    replaces the default (fp16) for a new approximate index: "sq8" for vectors so many that memory counts
    more than the last percent of recall (sentence vectors: 5-6 per chunk).
    """
    if n_vectors < 0 or dimension <= 0:
        raise ValueError(f"Bad size: {n_vectors} vectors of dimension {dimension}")
    scalars = n_vectors * dimension
    if current is not None and current.kind != "flat":
        if scalars <= FLAT_MAX_SCALARS * FLAT_RETURN_SHARE:
            return IndexSpec()
        return approximate_spec(n_vectors, approximate, storage or current.storage, current)
    if scalars <= FLAT_MAX_SCALARS:
        return current if current is not None else IndexSpec()
    return approximate_spec(n_vectors, approximate, storage or "fp16")


def fit_to_size(index: FaissVectorIndex, spec: IndexSpec | None = None) -> FaissVectorIndex:
    """`index` itself when it already has `spec` (default: the one `choose_spec` keeps or gives for its
    size), tuned in place when only efSearch differs, else a copy rebuilt under `spec`.

    The copy is a new object (the original keeps serving until the caller swaps them); building HNSW
    costs 35 s per 100,000 vectors and 3.7 minutes for 1M on this machine, quiet (bench/vectors.py); IVF
    trains its lists on a sample first (about a minute for 4,096 lists), then adds at ~0.1 ms a vector.
    """
    if spec is None:
        spec = choose_spec(len(index), index.dimension, current=index.spec)
    if spec == index.spec:
        return index
    if spec == index.spec.model_copy(update={"ef_search": spec.ef_search, "nprobe": spec.nprobe}):
        index.tune(ef_search=spec.ef_search, nprobe=spec.nprobe)
        return index
    logger.info(
        "%d vectors: rebuilding the vector index as %s (was %s)",
        len(index),
        spec.describe(),
        index.spec.describe(),
    )
    return index.rebuilt(spec)


class FaissVectorIndex:
    """`VectorIndex` on FAISS: IndexFlatIP / IndexScalarQuantizer (flat), IndexIVFScalarQuantizer (IVF) or
    IndexHNSWFlat / IndexHNSWSQ (HNSW).

    FAISS sees positions (0, 1, 2… in the order vectors were added); this class maps them to the caller's
    ids with two arrays: `_position_ids` (position → id, -1 once removed) and the live ids sorted with
    their positions (`_sorted_ids`, `_sorted_positions`) for lookups. Arrays, not dicts: 24 bytes a vector
    instead of ~100 for Python ints, and vectorised lookups.

    Removal: a flat index drops the vectors at once (FAISS compacts its array). HNSW cannot remove a node
    from its graph (`remove_ids` is unsupported), so removed vectors become tombstones: they stay in the
    graph, still routing searches (recall holds), but a selector keeps them out of results and the beam
    is widened by their share so that k live results remain; at COMPACT_SHARE the index rebuilds itself.
    IVF keeps tombstones the same way (its direct map, which decodes a vector by position, cannot remove),
    and its compaction only re-adds the live vectors to the trained lists.
    """

    def __init__(self, dimension: int, spec: IndexSpec | None = None, *, compact_share: float | None = None):
        """An empty index. `compact_share` overrides COMPACT_SHARE (None: the default; 1.0: never compact
        on its own, e.g. to compact in the background with `compact()` instead)."""
        if dimension <= 0:
            raise ValueError(f"Bad dimension: {dimension}")
        self._dimension = dimension
        self._spec = spec if spec is not None else IndexSpec()
        self._compact_share = COMPACT_SHARE if compact_share is None else compact_share
        self._index = _new_faiss_index(dimension, self._spec)
        self._position_ids = np.zeros(0, dtype=np.int64)
        self._sorted_ids = np.zeros(0, dtype=np.int64)
        self._sorted_positions = np.zeros(0, dtype=np.int64)
        self._live_bitmap: np.ndarray | None = None  # cache of the live positions as a FAISS bitmap
        self._scratch = threading.local()  # per-thread buffers of exact searches among `allowed`
        self.metadata: dict[str, Any] = {}
        """What the caller stored with the index in its file (`save`'s `metadata`), read back by `load`."""

    # -- reading --------------------------------------------------------------------------------------

    @property
    def spec(self) -> IndexSpec:
        return self._spec

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def tombstones(self) -> int:
        """Removed vectors still in the HNSW graph (always 0 for flat)."""
        return len(self._position_ids) - len(self._sorted_ids)

    def __len__(self) -> int:
        return len(self._sorted_ids)

    def __repr__(self) -> str:
        return f"FaissVectorIndex({self._spec.describe()}, {len(self)} vectors, {self.tombstones} tombstones)"

    def ids(self) -> np.ndarray:
        return self._sorted_ids.copy()

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        keys = _as_ids(ids)
        positions, found = self._find(keys)
        if not found.all():
            raise KeyError(f"Not in the vector index: {keys[~found][:10].tolist()}")
        with _one_omp_thread():  # decoding a question's candidates: a second thread only spins
            return self._decode(positions)

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """See `VectorIndex.search`. Exact for flat, and for `allowed` sets small enough to score
        outright (EXACT_SUBSET_MAX_SCALARS); HNSW otherwise, with a beam widened by the share of nodes
        that the filter (tombstones, `allowed`) keeps out, up to MAX_EF_SEARCH."""
        vector = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        if vector.shape != (self._dimension,):
            raise ValueError(f"Query of shape {np.shape(query)}, expected ({self._dimension},)")
        if k <= 0 or len(self) == 0:
            return _empty()
        with _one_omp_thread():
            return self._search(vector, k, allowed)

    def _search(
        self, vector: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if allowed is None:
            return self._search_graph(vector, k, self._live_selector(), len(self))
        keys = _distinct(_as_ids(allowed))
        positions, found = self._find(keys)
        positions = positions[found]
        if len(positions) == 0:
            return _empty()
        if self._spec.kind == "flat" or len(positions) * self._dimension <= EXACT_SUBSET_MAX_SCALARS:
            return self._exact(vector, positions, k)
        chosen = np.zeros(len(self._position_ids), dtype=bool)
        chosen[positions] = True
        bitmap = np.packbits(chosen, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(self._position_ids), faiss.swig_ptr(bitmap))
        ids, scores = self._search_graph(vector, k, selector, len(positions))
        if len(ids) < min(k, len(positions)):
            # The filter starved the beam (a rare, very selective `allowed`): score the set exactly.
            logger.debug("Filtered HNSW search returned %d of %d: scoring exactly", len(ids), k)
            return self._exact(vector, positions, k)
        return ids, scores

    # -- writing --------------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        keys = _as_ids(ids)
        block = np.ascontiguousarray(vectors, dtype=np.float32)
        if block.ndim != 2 or block.shape != (len(keys), self._dimension):
            raise ValueError(
                f"{len(keys)} ids and vectors of shape {block.shape}: expected ({len(keys)}, "
                f"{self._dimension})"
            )
        if len(keys) == 0:
            return
        if (keys < 0).any():
            raise ValueError("Vector ids must be ≥ 0")
        if len(_distinct(keys)) != len(keys):
            raise ValueError("Duplicate ids in one add")
        if not np.isfinite(block).all():
            raise ValueError("Vectors with NaN or infinite values")
        _, held = self._find(keys)
        if held.any():
            raise ValueError(f"Already in the vector index: {keys[held][:10].tolist()}")
        self._train(block)
        start = len(self._position_ids)
        self._index.add(block)
        positions = np.arange(start, start + len(keys), dtype=np.int64)
        # Appending copies the id arrays (O(n) memcpy, ~1 ms per million ids): negligible next to the
        # FAISS insertion itself, and simpler than amortised buffers.
        self._position_ids = np.concatenate([self._position_ids, keys])
        order = np.argsort(keys, kind="stable")
        new_ids, new_positions = keys[order], positions[order]
        if len(self._sorted_ids) == 0 or new_ids[0] > self._sorted_ids[-1]:  # ids usually only grow
            self._sorted_ids = np.concatenate([self._sorted_ids, new_ids])
            self._sorted_positions = np.concatenate([self._sorted_positions, new_positions])
        else:
            at = np.searchsorted(self._sorted_ids, new_ids)
            self._sorted_ids = np.insert(self._sorted_ids, at, new_ids)
            self._sorted_positions = np.insert(self._sorted_positions, at, new_positions)
        self._live_bitmap = None

    def remove(self, ids: np.ndarray) -> int:
        keys = _distinct(_as_ids(ids))
        positions, found = self._find(keys)
        if not found.any():
            return 0
        rows = np.searchsorted(self._sorted_ids, keys[found])
        self._sorted_ids = np.delete(self._sorted_ids, rows)
        self._sorted_positions = np.delete(self._sorted_positions, rows)
        self._position_ids[positions[found]] = -1
        self._live_bitmap = None
        removed = int(found.sum())
        if self._spec.kind == "flat":
            self._drop_dead_positions()
        elif self.tombstones > self._compact_share * len(self._position_ids):
            self.compact()
        return removed

    def copy(self) -> FaissVectorIndex:
        """An independent copy (the FAISS index cloned): e.g. to write to while the original serves."""
        twin = FaissVectorIndex(self._dimension, self._spec, compact_share=self._compact_share)
        twin._index = faiss.clone_index(self._index)
        twin._position_ids = self._position_ids.copy()
        twin._sorted_ids = self._sorted_ids.copy()
        twin._sorted_positions = self._sorted_positions.copy()
        return twin

    def tune(self, ef_search: int | None = None, nprobe: int | None = None) -> None:
        """Set HNSW's search beam (efSearch) or the lists IVF scans (nprobe): search-time parameters, no
        rebuild. More: better recall, slower searches (bench/vectors.py and bench/scale.py have the
        trade-off). Recorded in `spec`."""
        update = IndexSpec(
            ef_search=self._spec.ef_search if ef_search is None else ef_search,
            nprobe=self._spec.nprobe if nprobe is None else nprobe,
        )
        self._spec = self._spec.model_copy(update={"ef_search": update.ef_search, "nprobe": update.nprobe})
        _apply_search_parameters(self._index, self._spec)

    def compact(self) -> None:
        """Drop the tombstones: rebuild the HNSW graph, or refill IVF's lists, from the live vectors (same
        spec, same training, so stored codes are reproduced exactly). HNSW costs a full build: ~35 s per
        100,000 vectors here. Nothing to do for flat, whose removals are immediate."""
        if self.tombstones == 0:
            return
        if self._spec.kind == "flat":
            self._drop_dead_positions()
            return
        started = time.perf_counter()
        dead = self.tombstones
        live_positions = np.flatnonzero(self._position_ids >= 0)
        fresh = _new_faiss_index(self._dimension, self._spec)
        _copy_training(self._index, fresh)
        for start in range(0, len(live_positions), REBUILD_BATCH):
            fresh.add(self._decode(live_positions[start : start + REBUILD_BATCH]))
        self._index = fresh
        self._renumber(live_positions)
        logger.info(
            "Compacted %s: %d tombstones dropped, %d vectors kept (%.1f s)",
            self._spec.describe(),
            dead,
            len(self),
            time.perf_counter() - started,
        )

    def rebuilt(self, spec: IndexSpec) -> FaissVectorIndex:
        """A new index under `spec` holding this one's live vectors (decoded: vectors stored as sq8 or
        fp16 keep that precision). This index is left as it was."""
        started = time.perf_counter()
        copy = FaissVectorIndex(self._dimension, spec, compact_share=self._compact_share)
        ids = self._position_ids[self._position_ids >= 0]
        live_positions = np.flatnonzero(self._position_ids >= 0)
        if copy._needs_training() and len(live_positions):
            copy._train(self._decode(_spread_sample(live_positions, copy._train_sample_size())))
        for start in range(0, len(live_positions), REBUILD_BATCH):
            chunk = slice(start, start + REBUILD_BATCH)
            copy.add(ids[chunk], self._decode(live_positions[chunk]))
        logger.info(
            "Rebuilt %d vectors as %s from %s (%.1f s)",
            len(copy),
            spec.describe(),
            self._spec.describe(),
            time.perf_counter() - started,
        )
        return copy

    @classmethod
    def from_vectors(
        cls, ids: np.ndarray, vectors: np.ndarray, spec: IndexSpec | None = None
    ) -> FaissVectorIndex:
        """An index of `vectors` under `ids`, of `spec` or else of the spec `choose_spec` gives their
        number. Quantisers train on (a sample of) all of them, which is better than on a first batch."""
        block = np.ascontiguousarray(vectors, dtype=np.float32)
        if block.ndim != 2:
            raise ValueError(f"Vectors of shape {block.shape}: expected (n, dimension)")
        index = cls(block.shape[1], spec if spec is not None else choose_spec(len(block), block.shape[1]))
        if index._needs_training() and len(block):
            index._train(block)
        for start in range(0, len(block), REBUILD_BATCH):
            chunk = slice(start, start + REBUILD_BATCH)
            index.add(np.asarray(ids)[chunk], block[chunk])
        return index

    # -- files ----------------------------------------------------------------------------------------

    def save(self, path: Path | str, metadata: dict[str, Any] | None = None) -> None:
        """Write the whole index to `path` atomically: a temporary file in the same directory, fsynced,
        then renamed over `path` (and the directory fsynced), so a crash leaves the old file or the new
        one, never a mix. Costs a full write (about the index's memory size), so a store should save at
        checkpoints, not after every commit. `metadata` (JSON-serialisable) is stored in the header and
        becomes `metadata` of the loaded index (e.g. the store's generation the file holds)."""
        target = Path(path)
        # A name of its own per process and thread: two savers must not write into one temporary file.
        temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        header = json.dumps(
            {
                "format": FILE_FORMAT,
                "dimension": self._dimension,
                "spec": self._spec.model_dump(),
                "positions": len(self._position_ids),
                "live": len(self),
                "compact_share": self._compact_share,
                "metadata": metadata or {},
            }
        ).encode()
        try:
            with open(temporary, "wb") as file:
                file.write(FILE_MAGIC)
                file.write(len(header).to_bytes(8, "little"))
                file.write(header)
                file.write(self._position_ids.astype("<i8").tobytes())
                writer = faiss.PyCallbackIOWriter(file.write)
                faiss.write_index(self._index, writer)
                del writer  # flushes its buffer into the file
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)

    @classmethod
    def load(cls, path: Path | str) -> FaissVectorIndex:
        """The index `save` wrote to `path`. Raises VectorFileError when the file is not one or does not
        hold what its header says (the caller then rebuilds from its own rows), OSError when unreadable."""
        with open(path, "rb") as file:
            if file.read(len(FILE_MAGIC)) != FILE_MAGIC:
                raise VectorFileError(f"{path}: not a vector index file")
            try:
                size = int.from_bytes(file.read(8), "little")
                header = json.loads(file.read(size))
                if header.get("format") != FILE_FORMAT:
                    raise VectorFileError(f"{path}: format {header.get('format')}, expected {FILE_FORMAT}")
                spec = IndexSpec.model_validate(header["spec"])
                dimension, count = int(header["dimension"]), int(header["positions"])
                raw = file.read(8 * count)
                if len(raw) != 8 * count:
                    raise VectorFileError(f"{path}: truncated")
                position_ids = np.frombuffer(raw, dtype="<i8").astype(np.int64)
                index = faiss.read_index(faiss.PyCallbackIOReader(file.read))
            except VectorFileError:
                raise
            except (KeyError, TypeError, ValueError, RuntimeError) as error:
                raise VectorFileError(f"{path}: unreadable vector index ({error})") from error
        loaded = cls(dimension, spec, compact_share=header.get("compact_share"))
        live = position_ids >= 0
        if (
            type(index) is not type(loaded._index)
            or index.ntotal != count
            or index.d != dimension
            or int(live.sum()) != header.get("live")
        ):
            raise VectorFileError(f"{path}: the FAISS index does not match the header")
        order = np.argsort(position_ids[live], kind="stable")
        sorted_ids = position_ids[live][order]
        if len(sorted_ids) > 1 and (np.diff(sorted_ids) == 0).any():
            raise VectorFileError(f"{path}: duplicate ids")
        _apply_search_parameters(index, spec)
        loaded._index = index
        loaded._position_ids = position_ids
        loaded._sorted_ids = sorted_ids
        loaded._sorted_positions = np.flatnonzero(live)[order]
        loaded.metadata = dict(header.get("metadata") or {})
        return loaded

    # -- internals ------------------------------------------------------------------------------------

    def _find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions, found) of `keys` among the live ids; positions are meaningless where not found."""
        if len(self._sorted_ids) == 0:
            return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
        rows = np.minimum(np.searchsorted(self._sorted_ids, keys), len(self._sorted_ids) - 1)
        return self._sorted_positions[rows], self._sorted_ids[rows] == keys

    def _storage(self) -> faiss.Index:
        """The index holding the codes by position: the flat index itself, or the HNSW graph's storage
        (IVF keeps its codes in its lists: `_decode` asks it instead)."""
        return self._index if self._spec.kind == "flat" else faiss.downcast_index(self._index.storage)

    @staticmethod
    def _codes(storage: faiss.Index) -> np.ndarray:
        """FAISS's code array as a (positions × code size) uint8 view: taken afresh each time, since an
        add may reallocate it."""
        codes = faiss.rev_swig_ptr(storage.codes.data(), storage.ntotal * storage.code_size)
        return codes.reshape(storage.ntotal, storage.code_size)

    def _decode(self, positions: np.ndarray) -> np.ndarray:
        if len(positions) == 0:
            return np.zeros((0, self._dimension), dtype=np.float32)
        if self._spec.kind == "ivf":
            return self._index.reconstruct_batch(np.ascontiguousarray(positions, dtype=np.int64))
        storage = self._storage()
        rows = self._codes(storage)[positions]
        if self._spec.storage == "fp32":
            return rows.view(np.float32).reshape(len(positions), self._dimension)
        return storage.sa_decode(rows)

    def _exact(self, vector: np.ndarray, positions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The exact top k among `positions` (live, distinct), scored from the stored codes."""
        k = min(k, len(positions))
        if self._spec.kind == "ivf":
            return self._best(positions, (self._decode(positions) @ vector).astype(np.float32), k)
        storage = self._storage()
        positions = np.sort(positions)  # reads the codes in memory order
        if len(positions) * SCAN_SHARE >= storage.ntotal:
            # A large share of the index: scan all codes in place, skipping the others (no copy at all).
            chosen = np.zeros(storage.ntotal, dtype=bool)
            chosen[positions] = True
            bitmap = np.packbits(chosen, bitorder="little")
            selector = faiss.IDSelectorBitmap(storage.ntotal, faiss.swig_ptr(bitmap))
            scores, found = storage.search(vector[None, :], k, params=faiss.SearchParameters(sel=selector))
            keep = found[0] >= 0
            return self._position_ids[found[0][keep]], scores[0][keep]
        if self._spec.storage == "fp32":
            labels = np.ascontiguousarray(positions, dtype=np.int64)
            all_scores = np.empty(len(labels), dtype=np.float32)
            storage.compute_distance_subset(
                1, faiss.swig_ptr(vector), len(labels), faiss.swig_ptr(all_scores), faiss.swig_ptr(labels)
            )
            return self._best(positions, all_scores, k)
        # Quantised codes: copy the chosen ones (a quarter or half of their float32 size) into a small flat
        # index with the same quantiser, whose scan decodes with SIMD (numpy's float16 and uint8
        # conversions are several times slower). The small index is kept per thread and refilled in place:
        # fresh buffers of megabytes cost more in page faults here than the scan itself.
        subset = self._subset_index(storage)
        subset.codes.resize(len(positions) * storage.code_size)
        target = faiss.rev_swig_ptr(subset.codes.data(), len(positions) * storage.code_size)
        np.take(self._codes(storage), positions, axis=0, out=target.reshape(len(positions), -1))
        subset.ntotal = len(positions)
        scores, found = subset.search(vector[None, :], k)
        keep = found[0] >= 0
        return self._position_ids[positions[found[0][keep]]], scores[0][keep]

    def _best(self, positions: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ids and scores of the k best of `positions` by `scores` (theirs, in order), best first."""
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(k)
        top = top[np.argsort(-scores[top], kind="stable")]
        return self._position_ids[positions[top]], scores[top]

    def _subset_index(self, storage: faiss.Index) -> faiss.IndexScalarQuantizer:
        """This thread's scratch flat index with `storage`'s quantiser (trained ranges copied each time:
        a rebuild may have changed them)."""
        subset = getattr(self._scratch, "index", None)
        if subset is None or subset.sq.qtype != storage.sq.qtype:
            subset = faiss.IndexScalarQuantizer(self._dimension, storage.sq.qtype, faiss.METRIC_INNER_PRODUCT)
            self._scratch.index = subset
        subset.sq.trained = storage.sq.trained
        subset.is_trained = True
        return subset

    def _live_selector(self) -> faiss.IDSelector | None:
        if self.tombstones == 0:
            return None
        if self._live_bitmap is None:
            self._live_bitmap = np.packbits(self._position_ids >= 0, bitorder="little")
        return faiss.IDSelectorBitmap(len(self._position_ids), faiss.swig_ptr(self._live_bitmap))

    def _search_graph(
        self, vector: np.ndarray, k: int, selector: faiss.IDSelector | None, selectable: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS search keeping only `selector`'s positions (`selectable` of them), translated to ids."""
        k = min(k, selectable)
        if self._spec.kind == "flat":
            params = None if selector is None else faiss.SearchParameters(sel=selector)
        elif self._spec.kind == "ivf":
            # As for HNSW below: a filter hides a share of each list, so scan that many more lists.
            # And scan enough lists to hold k vectors twice over, on average.
            params = faiss.SearchParametersIVF()
            widen = len(self._position_ids) / selectable
            enough = 2 * self._spec.lists * k / selectable
            params.nprobe = min(
                self._spec.lists, MAX_NPROBE, math.ceil(max(self._spec.nprobe * widen, enough))
            )
            if selector is not None:
                params.sel = selector
        else:
            # A filter hides a share of the nodes the beam visits: widen it by that share so that about
            # as many selectable nodes are compared as without the filter.
            widen = len(self._position_ids) / selectable
            params = faiss.SearchParametersHNSW()
            # FAISS keeps a beam of max(efSearch, k) anyway: k beyond MAX_EF_SEARCH is still honoured.
            params.efSearch = max(k, min(MAX_EF_SEARCH, math.ceil(max(self._spec.ef_search, k) * widen)))
            if selector is not None:
                params.sel = selector
        scores, positions = self._index.search(vector[None, :], k, params=params)
        keep = positions[0] >= 0
        ids = self._position_ids[positions[0][keep]]
        live = ids >= 0  # a selector already keeps tombstones out; this is a guard
        return ids[live], scores[0][keep][live]

    def _needs_training(self) -> bool:
        return not (self._index if self._spec.kind == "ivf" else self._storage()).is_trained

    def _train_sample_size(self) -> int:
        """How many vectors training reads (a spread sample of them): IVF's k-means wants many a list."""
        if self._spec.kind == "ivf":
            return max(SQ_TRAIN_SAMPLE, IVF_TRAIN_SAMPLE_PER_LIST * self._spec.lists)
        return SQ_TRAIN_SAMPLE

    def _train(self, block: np.ndarray) -> None:
        """Train once, on (a spread sample of) the first vectors it sees: the scalar quantiser (sq8 ranges;
        fp16 needs none), and for IVF the lists' centroids (k-means), which need at least as many vectors
        as lists."""
        if not self._needs_training():
            return
        ivf = self._spec.kind == "ivf"
        if ivf and len(block) < self._spec.lists:
            raise ValueError(
                f"An IVF index of {self._spec.lists} lists trains on at least as many vectors; got "
                f"{len(block)} (build it with from_vectors, or choose the lists with ivf_lists)"
            )
        if not ivf and self._spec.storage != "sq8":
            self._index.train(block[:1])  # nothing to learn: marks it trained
            return
        started = time.perf_counter()
        sample = block[_spread_sample(np.arange(len(block)), self._train_sample_size())]
        if self._spec.storage == "sq8":
            quantised = self._index if ivf else self._storage()
            quantised.sq.rangestat = faiss.ScalarQuantizer.RS_minmax
            quantised.sq.rangestat_arg = SQ_MARGIN if len(sample) < SQ_MARGIN_BELOW else 0.0
            if len(sample) < SQ_MARGIN_BELOW:
                logger.info(
                    "Training sq8 ranges on %d vectors only (widened by %.0f%%)", len(sample), 100 * SQ_MARGIN
                )
        self._index.train(sample)
        if ivf:
            logger.info(
                "Trained %s on %d vectors (%.1f s)",
                self._spec.describe(),
                len(sample),
                time.perf_counter() - started,
            )

    def _drop_dead_positions(self) -> None:
        """Flat only: remove the vectors of removed ids from FAISS's array, then renumber positions."""
        dead = self._position_ids < 0
        if not dead.any():
            return
        bitmap = np.packbits(dead, bitorder="little")
        self._index.remove_ids(faiss.IDSelectorBitmap(len(dead), faiss.swig_ptr(bitmap)))
        self._renumber(np.flatnonzero(~dead))

    def _renumber(self, live_positions: np.ndarray) -> None:
        """After FAISS kept `live_positions` (in order) as positions 0, 1, 2…: remap the id arrays."""
        new_position = np.full(len(self._position_ids), -1, dtype=np.int64)
        new_position[live_positions] = np.arange(len(live_positions), dtype=np.int64)
        self._position_ids = self._position_ids[live_positions]
        self._sorted_positions = new_position[self._sorted_positions]
        self._live_bitmap = None


def _new_faiss_index(dimension: int, spec: IndexSpec) -> faiss.Index:
    metric = faiss.METRIC_INNER_PRODUCT
    if spec.kind == "flat":
        if spec.storage == "fp32":
            return faiss.IndexFlatIP(dimension)
        return faiss.IndexScalarQuantizer(dimension, _QUANTIZERS[spec.storage], metric)
    if spec.kind == "ivf":
        centroids = faiss.IndexFlatIP(dimension)
        if spec.storage == "fp32":
            index = faiss.IndexIVFFlat(centroids, dimension, spec.lists, metric)
        else:
            # Codes of the vectors themselves, not of their residuals to the centroid: a code then decodes
            # on its own, as `vectors` and exact scoring need.
            qtype = _QUANTIZERS[spec.storage]
            index = faiss.IndexIVFScalarQuantizer(centroids, dimension, spec.lists, qtype, metric, False)
        # The direct map (an array: positions are added in order) finds a position's code in its list.
        index.make_direct_map(True)
        _apply_search_parameters(index, spec)
        return index
    if spec.storage == "fp32":
        index = faiss.IndexHNSWFlat(dimension, spec.m, metric)
    else:
        index = faiss.IndexHNSWSQ(dimension, _QUANTIZERS[spec.storage], spec.m, metric)
    index.hnsw.efConstruction = spec.ef_construction
    _apply_search_parameters(index, spec)
    return index


def _apply_search_parameters(index: faiss.Index, spec: IndexSpec) -> None:
    if spec.kind == "hnsw":
        index.hnsw.efSearch = spec.ef_search
    elif spec.kind == "ivf":
        index.nprobe = min(spec.nprobe, spec.lists)


@contextlib.contextmanager
def _one_omp_thread() -> Iterator[None]:
    """Run FAISS on one OpenMP thread for one question. A flat scan of 50,000 vectors takes 5 ms on one
    thread but 24 ms on two (both busy; measured on this 2-core machine, quiet), and a graph search gains
    nothing from a second thread. The setting is the calling thread's own (OpenMP keeps it per thread),
    so builds in other threads keep every core; it is restored on the way out."""
    previous = faiss.omp_get_max_threads()
    if previous == 1:
        yield
        return
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _copy_training(source: faiss.Index, target: faiss.Index) -> None:
    """Give `target` (same spec) `source`'s training (quantiser ranges; IVF's centroids), so re-encoding
    decoded codes is exact."""
    if target.is_trained:
        return
    if isinstance(source, faiss.IndexIVF):
        target.quantizer.add(source.quantizer.reconstruct_n(0, source.nlist))
        if isinstance(source, faiss.IndexIVFScalarQuantizer):
            target.sq.trained = source.sq.trained
        target.is_trained = True
        return
    source_storage = faiss.downcast_index(source.storage)
    target_storage = faiss.downcast_index(target.storage)
    target_storage.sq.trained = source_storage.sq.trained
    target_storage.is_trained = True
    target.is_trained = True


def _spread_sample(positions: np.ndarray, size: int) -> np.ndarray:
    """At most `size` of `positions`, evenly spread (deterministic; early and late vectors alike)."""
    if len(positions) <= size:
        return positions
    return positions[np.linspace(0, len(positions) - 1, size).astype(np.int64)]


def _as_ids(ids: np.ndarray) -> np.ndarray:
    keys = np.asarray(ids)
    if keys.ndim != 1:
        keys = keys.reshape(-1)
    if len(keys) and not np.issubdtype(keys.dtype, np.integer):
        raise ValueError(f"Vector ids must be integers, not {keys.dtype}")
    return keys.astype(np.int64, copy=False)


def _distinct(keys: np.ndarray) -> np.ndarray:
    """The distinct values of `keys`, ascending. Not np.unique: numpy 2.4's takes ~80 ms for 200,000 ids
    (a sort and a comparison take 3)."""
    ordered = np.sort(keys)
    if len(ordered) < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is; not every platform can open a directory.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
