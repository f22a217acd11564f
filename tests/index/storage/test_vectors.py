"""The vector index seam (index/storage/vectors.py): the same behaviour checked through `VectorIndex` for each
kind of index, against exact numpy search on vectors with the structure of text (not uniform noise, which
no graph index handles like embeddings)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest

import index.storage.vectors as vectors_module
from index.storage.vectors import (
    DEFAULT_HNSW_SPEC,
    FLAT_MAX_SCALARS,
    FaissVectorIndex,
    IndexSpec,
    VectorFileError,
    VectorIndex,
    choose_spec,
    fit_to_size,
    ivf_lists,
    ivf_spec,
)

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample" / "info-industry-monitor-2020-12.txt"
DIMENSION = 64
COUNT = 2000
K = 10

FLAT = IndexSpec()
HNSW_FP16 = DEFAULT_HNSW_SPEC
HNSW_SQ8 = DEFAULT_HNSW_SPEC.model_copy(update={"storage": "sq8"})
HNSW_FP32 = DEFAULT_HNSW_SPEC.model_copy(update={"storage": "fp32", "m": 16})
# Half the lists scanned: approximate, as at scale (the default would scan all of so few).
IVF_FP16 = ivf_spec(COUNT).model_copy(update={"nprobe": ivf_lists(COUNT) // 2})
IVF_SQ8 = IVF_FP16.model_copy(update={"storage": "sq8"})
IVF_FP32 = IVF_FP16.model_copy(update={"storage": "fp32"})
SPECS = [FLAT, HNSW_FP32, HNSW_FP16, HNSW_SQ8, IVF_FP32, IVF_FP16, IVF_SQ8]
SPEC_IDS = [spec.describe() for spec in SPECS]
# How far a stored vector may be from the one added, per storage (unit vectors of DIMENSION floats).
TOLERANCE = {"fp32": 0.0, "fp16": 1e-3, "sq8": 2e-2}


def _text_vectors(count: int, seed: int, sentences_from: slice) -> np.ndarray:
    """Chunks of ~300 characters of nearby sentences of the sample report, as hashed character 1-2-gram
    counts projected by a fixed Gaussian matrix and normalised (bench/vectors.py does the same at scale)."""
    text = SAMPLE.read_text("utf-8")
    pieces = ("".join(piece.split()) for piece in re.split(r"(?<=[。！？；\n])", text))
    sentences = [sentence for sentence in pieces if len(sentence) >= 4]
    sentences = sentences[sentences_from]
    projection = np.random.default_rng(7).standard_normal((4096, DIMENSION)).astype(np.float32)
    rows = np.zeros((len(sentences), DIMENSION), dtype=np.float32)
    for row, sentence in enumerate(sentences):
        grams = [sentence[i : i + n] for n in (1, 2) for i in range(len(sentence) - n + 1)]
        buckets = [zlib.crc32(gram.encode()) % 4096 for gram in grams]
        rows[row] = projection[buckets].sum(axis=0)
    lengths = np.array([len(s) for s in sentences])
    rng = np.random.default_rng(seed)
    offsets = rng.random((count, 21)).argsort(axis=1) - 10  # up to 21 sentences within ±10 of an anchor
    picks = np.clip(rng.integers(0, len(sentences), count)[:, None] + offsets, 0, len(sentences) - 1)
    chars = lengths[picks]
    weights = (np.cumsum(chars, axis=1) - chars < 300).astype(np.float32)  # until ~300 characters
    out = np.einsum("cp,cpd->cd", weights, rows[picks])
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread() -> Iterator[None]:
    """Small indexes build faster on one thread than on two busy cores (OpenMP threads wait on each other)."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(previous)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, vectors, queries): ids not 0..n-1 (the index must map them), queries from other sentences."""
    base = _text_vectors(COUNT, seed=1, sentences_from=slice(0, -150))
    queries = _text_vectors(40, seed=2, sentences_from=slice(-150, None))
    ids = np.arange(COUNT, dtype=np.int64) * 7 + 1000
    return ids, base, queries


@pytest.fixture(scope="module")
def built(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[IndexSpec, FaissVectorIndex]:
    """One index per spec, built once; tests that write use `fresh` instead."""
    ids, base, _ = data
    return {spec: FaissVectorIndex.from_vectors(ids, base, spec) for spec in SPECS}


@pytest.fixture
def fresh(built: dict[IndexSpec, FaissVectorIndex]) -> Callable[[IndexSpec], FaissVectorIndex]:
    """A copy of the built index of a spec, for a test to write to."""
    return lambda spec: built[spec].copy()


def exact(ids: np.ndarray, base: np.ndarray, query: np.ndarray, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    scores = base @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return ids[order], scores[order]


def recall(index: VectorIndex, ids: np.ndarray, base: np.ndarray, queries: np.ndarray, **kw) -> float:
    hits = [len(set(index.search(q, K, **kw)[0]) & set(exact(ids, base, q)[0])) for q in queries]
    return sum(hits) / (K * len(queries))


def test_implements_the_protocol() -> None:
    assert isinstance(FaissVectorIndex(DIMENSION), VectorIndex)


def test_search_leaves_the_thread_count_alone(built, data) -> None:
    """A search runs FAISS on one thread (a flat scan is slower on two) and restores the setting."""
    _, _, queries = data
    faiss.omp_set_num_threads(2)
    try:
        built[FLAT].search(queries[0], K)
        built[HNSW_FP16].search(queries[0], K)
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(1)


def test_flat_search_is_exact(built, data) -> None:
    ids, base, queries = data
    index = built[FLAT]
    for query in queries:
        found, scores = index.search(query, K)
        expected, expected_scores = exact(ids, base, query)
        np.testing.assert_array_equal(found, expected)
        np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-5)


@pytest.mark.parametrize("spec", SPECS[1:], ids=SPEC_IDS[1:])
def test_approximate_recall(built, data, spec: IndexSpec) -> None:
    ids, base, queries = data
    index = built[spec]
    assert recall(index, ids, base, queries) >= 0.95
    found, scores = index.search(queries[0], K)
    assert len(found) == K and found.dtype == np.int64 and scores.dtype == np.float32
    assert (np.diff(scores) <= 1e-6).all(), "best first"


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_at_most_k_and_empty(built, data, spec: IndexSpec) -> None:
    _, _, queries = data
    assert len(built[spec].search(queries[0], COUNT + 5)[0]) == COUNT
    assert len(built[spec].search(queries[0], 0)[0]) == 0
    empty = FaissVectorIndex(DIMENSION, spec)
    found, scores = empty.search(queries[0], K)
    assert len(found) == len(scores) == len(empty) == 0


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_removed_ids_never_come_back(fresh, data, spec: IndexSpec) -> None:
    ids, base, queries = data
    index = fresh(spec)
    rng = np.random.default_rng(3)
    # Below the compaction share first (HNSW keeps tombstones), then past it (HNSW rebuilds).
    for share in (0.1, 0.25):
        removed = rng.choice(ids, int(COUNT * share), replace=False)
        held = np.isin(removed, index.ids()).sum()
        assert index.remove(removed) == held
        live = np.isin(ids, index.ids())
        assert len(index) == live.sum() == len(index.ids())
        mixed = np.concatenate([removed[:100], ids[live][:100]])
        for query in queries:
            assert not np.isin(index.search(query, K)[0], removed).any()
            assert len(index.search(query, K)[0]) == K
            assert np.isin(index.search(query, K, allowed=mixed)[0], ids[live][:100]).all()
        if spec.kind == "flat":
            for query in queries:
                np.testing.assert_array_equal(
                    index.search(query, K)[0], exact(ids[live], base[live], query)[0]
                )
        else:
            # sq8's rounding costs IVF, which ranks by the codes alone, about a point more (0.945 here).
            assert recall(index, ids[live], base[live], queries) >= (0.93 if spec == IVF_SQ8 else 0.95)
    if spec.kind != "flat":
        assert index.tombstones == 0, "past COMPACT_SHARE the index was rebuilt"
    assert index.remove(np.array([ids[0], ids[0], 5], dtype=np.int64)) <= 1, "unknown ids are ignored"
    with pytest.raises(KeyError):
        index.vectors(np.array([ids[~np.isin(ids, index.ids())][0]]))


@pytest.mark.parametrize("spec", [HNSW_FP16, IVF_SQ8], ids=["hnsw", "ivf"])
def test_approximate_indexes_keep_tombstones_below_the_compaction_share(fresh, data, spec: IndexSpec) -> None:
    ids, _, _ = data
    index = fresh(spec)
    removed = ids[: COUNT // 10]
    index.remove(removed)
    assert index.tombstones == len(removed) and len(index) == COUNT - len(removed)
    # A query equal to a removed vector still finds only live ones.
    found, _ = index.search(index.vectors(ids[COUNT // 10 : COUNT // 10 + 1])[0], K)
    assert not np.isin(found, removed).any()
    index.compact()
    assert index.tombstones == 0 and len(index) == COUNT - len(removed)
    np.testing.assert_array_equal(index.ids(), ids[COUNT // 10 :])


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_allowed_restricts_results_exactly(built, data, spec: IndexSpec, monkeypatch) -> None:
    ids, base, queries = data
    index = built[spec]
    rng = np.random.default_rng(4)
    allowed = np.sort(rng.choice(ids, 300, replace=False))
    stored = index.vectors(allowed)  # what the index holds: exact scoring is exact on these
    with_unknown = np.concatenate([allowed, [3, 5, 10**12]])
    for query in queries[:10]:
        found, scores = index.search(query, K, allowed=with_unknown)
        expected, expected_scores = exact(allowed, stored, query)
        np.testing.assert_array_equal(found, expected)
        np.testing.assert_allclose(scores, expected_scores, rtol=0, atol=1e-4)
        assert len(index.search(query, K, allowed=allowed[:3])[0]) == 3
    assert len(index.search(queries[0], K, allowed=np.array([3, 5], dtype=np.int64))[0]) == 0
    # A large allowed set through the filtered graph: still only allowed ids, and the same neighbours.
    monkeypatch.setattr(vectors_module, "EXACT_SUBSET_MAX_SCALARS", 0)
    large = np.sort(rng.choice(ids, COUNT // 3, replace=False))
    rows = np.searchsorted(ids, large)
    for query in queries:
        assert np.isin(index.search(query, K, allowed=large)[0], large).all()
    assert recall(index, large, base[rows], queries, allowed=large) >= 0.95


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_save_load_round_trip(fresh, data, spec: IndexSpec, tmp_path: Path) -> None:
    ids, _, queries = data
    index = fresh(spec)
    index.remove(ids[::20])  # HNSW: tombstones must survive the round trip
    path = tmp_path / "chunks.vectors"
    index.save(path, metadata={"generation": 7})
    loaded = FaissVectorIndex.load(path)
    assert (loaded.spec, len(loaded), loaded.tombstones) == (index.spec, len(index), index.tombstones)
    assert loaded.metadata == {"generation": 7}
    np.testing.assert_array_equal(loaded.ids(), index.ids())
    for query in queries:
        np.testing.assert_array_equal(loaded.search(query, K)[0], index.search(query, K)[0])
    np.testing.assert_array_equal(loaded.vectors(ids[1:50:4]), index.vectors(ids[1:50:4]))
    # Still writable after loading.
    loaded.remove(ids[1:3])
    loaded.add(ids[1:3], index.vectors(ids[1:3]))
    assert len(loaded) == len(index)
    assert [p.name for p in tmp_path.iterdir()] == ["chunks.vectors"], "no temporary file left"


def test_save_is_atomic(built, data, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "chunks.vectors"
    built[FLAT].save(path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(faiss, "write_index", fail)
    with pytest.raises(RuntimeError):
        built[HNSW_FP16].save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["chunks.vectors"]


def test_load_rejects_what_is_not_an_index(built, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not an index at all")
    with pytest.raises(VectorFileError):
        FaissVectorIndex.load(garbage)
    good = tmp_path / "good"
    built[HNSW_SQ8].save(good)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(good.read_bytes()[:-1000])
    with pytest.raises(VectorFileError):
        FaissVectorIndex.load(truncated)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_vectors_returns_what_was_added(built, data, spec: IndexSpec) -> None:
    ids, base, _ = data
    picked = np.array([5, 0, COUNT - 1, 17, 5])
    stored = built[spec].vectors(ids[picked])
    assert stored.shape == (len(picked), DIMENSION) and stored.dtype == np.float32
    if spec.storage == "fp32":
        np.testing.assert_array_equal(stored, base[picked])
    else:
        np.testing.assert_allclose(stored, base[picked], rtol=0, atol=TOLERANCE[spec.storage])
    with pytest.raises(KeyError):
        built[spec].vectors(np.array([ids[0], 3]))


@pytest.mark.parametrize("spec", [FLAT, HNSW_FP16, IVF_FP16], ids=["flat", "hnsw", "ivf"])
def test_add_checks_and_readds(fresh, data, spec: IndexSpec) -> None:
    ids, base, queries = data
    index = fresh(spec)
    with pytest.raises(ValueError, match="Already"):
        index.add(np.array([ids[3], 1], dtype=np.int64), base[:2])
    with pytest.raises(ValueError):
        index.add(np.array([1, 1], dtype=np.int64), base[:2])
    with pytest.raises(ValueError):
        index.add(np.array([-1], dtype=np.int64), base[:1])
    with pytest.raises(ValueError):
        index.add(np.array([1], dtype=np.int64), base[:1, :10])
    with pytest.raises(ValueError):
        index.search(queries[0][:10], K)
    assert len(index) == COUNT, "a rejected add changes nothing"
    # An id removed and added again holds its new vector, and only that one.
    index.remove(ids[:1])
    index.add(ids[:1], queries[:1])
    found, scores = index.search(queries[0], 1)
    assert found[0] == ids[0] and scores[0] == pytest.approx(1.0, abs=2e-3)
    assert (index.search(queries[0], COUNT)[0] == ids[0]).sum() == 1
    # Ids in any order (not only growing) are found.
    index.add(np.array([3, 1], dtype=np.int64), base[:2])
    np.testing.assert_allclose(index.vectors(np.array([1, 3])), base[[1, 0]], atol=TOLERANCE[spec.storage])


def test_choose_spec_by_size() -> None:
    threshold = FLAT_MAX_SCALARS // 384
    assert choose_spec(0, 384) == IndexSpec()
    assert choose_spec(threshold, 384).kind == "flat"
    assert choose_spec(threshold + 1, 384) == ivf_spec(threshold + 1)
    assert choose_spec(10_000_000, 384, storage="sq8") == IndexSpec(kind="ivf", storage="sq8", lists=4096)
    assert choose_spec(threshold + 1, 192).kind == "flat", "the cost of a scan is n·d"
    # Hysteresis: an approximate index stays so down to FLAT_RETURN_SHARE of the threshold.
    tuned = ivf_spec(threshold + 1).model_copy(update={"nprobe": 20})
    assert choose_spec(int(threshold * 0.75), 384, current=tuned) == tuned
    assert choose_spec(int(threshold * 0.4), 384, current=tuned) == IndexSpec()
    assert choose_spec(100, 384, current=IndexSpec(storage="fp16")) == IndexSpec(storage="fp16")
    # An index of the other approximate kind (of an earlier version) becomes the kind asked for.
    assert choose_spec(threshold * 2, 384, current=DEFAULT_HNSW_SPEC) == ivf_spec(threshold * 2)
    assert choose_spec(threshold * 2, 384, current=tuned, approximate="hnsw", storage="sq8") == HNSW_SQ8
    tuned_graph = HNSW_SQ8.model_copy(update={"ef_search": 64})
    assert choose_spec(10**7, 384, current=tuned_graph, approximate="hnsw") == tuned_graph
    with pytest.raises(ValueError):
        choose_spec(-1, 384)


def test_ivf_lists_grow_with_the_square_root_and_an_index_keeps_its_own_until_it_grew_16_times() -> None:
    assert [ivf_lists(n) for n in (0, 1, 100, 2_000, 50_001, 1_000_000, 10**8)] == [
        1,
        1,
        2,
        32,
        1024,
        4096,
        4096,
    ]
    assert all(
        ivf_lists(n) * vectors_module.IVF_TRAIN_PER_LIST <= max(n, 39) for n in (1, 100, 2_000, 50_001)
    )
    small = ivf_spec(60_000, "sq8").model_copy(update={"nprobe": 20})
    assert small.lists == 1024 and ivf_spec(200_000, "sq8", small) == small  # 2,048 wanted: kept
    grown = ivf_spec(300_000, "sq8", small)
    assert (grown.lists, grown.nprobe, grown.storage) == (4096, 20, "sq8")


def test_ivf_trains_on_at_least_as_many_vectors_as_lists(data) -> None:
    ids, base, _ = data
    index = FaissVectorIndex(DIMENSION, IndexSpec(kind="ivf", storage="fp16", lists=64))
    with pytest.raises(ValueError, match="at least as many vectors"):
        index.add(ids[:10], base[:10])
    assert len(index) == 0
    index.add(ids[:100], base[:100])
    index.add(ids[100:110], base[100:110])  # trained once, by the first add
    assert len(index) == 110


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (FLAT, HNSW_SQ8),
        (HNSW_FP16, FLAT),
        (HNSW_FP32, FLAT),
        (FLAT, IVF_SQ8),
        (HNSW_FP16, IVF_FP16),
        (IVF_FP32, FLAT),
    ],
)
def test_rebuilt_keeps_every_live_id(fresh, data, source: IndexSpec, target: IndexSpec) -> None:
    ids, base, queries = data
    index = fresh(source)
    index.remove(ids[::9])
    copy = index.rebuilt(target)
    assert copy.spec == target and copy.tombstones == 0
    np.testing.assert_array_equal(copy.ids(), index.ids())
    live = np.isin(ids, index.ids())
    assert recall(copy, ids[live], base[live], queries) >= 0.95
    assert len(index) == live.sum() and index.spec == source, "the original is left as it was"
    if source.storage == target.storage == "fp32":
        np.testing.assert_array_equal(copy.vectors(ids[live][:20]), base[live][:20])


def test_fit_to_size_switches_kind_at_the_threshold(fresh, data, monkeypatch) -> None:
    ids, _, _ = data
    index = fresh(FLAT)
    assert fit_to_size(index) is index
    monkeypatch.setattr(vectors_module, "FLAT_MAX_SCALARS", 1000 * DIMENSION)
    approximate = fit_to_size(index)
    assert approximate.spec == ivf_spec(COUNT)
    np.testing.assert_array_equal(approximate.ids(), ids)
    approximate.remove(ids[: COUNT - 400])  # compacts on the way
    assert len(approximate) == 400
    back = fit_to_size(approximate)
    assert back.spec.kind == "flat"
    np.testing.assert_array_equal(back.ids(), ids[COUNT - 400 :])
    # Only the search parameters differ: tuned in place, no rebuild.
    monkeypatch.setattr(vectors_module, "FLAT_MAX_SCALARS", 10 * DIMENSION)
    approximate = FaissVectorIndex.from_vectors(ids[:100], fresh(FLAT).vectors(ids[:100]), ivf_spec(100))
    approximate.tune(nprobe=1)
    assert fit_to_size(approximate) is approximate and approximate.spec.nprobe == 1
    assert (
        fit_to_size(approximate, ivf_spec(100)) is approximate
        and approximate.spec.nprobe == ivf_spec(100).nprobe
    )
    # An HNSW index of an earlier version becomes IVF.
    graph = FaissVectorIndex.from_vectors(ids[:100], fresh(FLAT).vectors(ids[:100]), HNSW_FP16)
    assert fit_to_size(graph).spec == ivf_spec(100)
