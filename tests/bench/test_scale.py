"""Smoke run of the scale benchmark (bench/scale.py) at a small size: the bundled sample report, the free
text-hash encoder only (no real model, no translator), so it needs neither ../shared nor a model and
stays fast.
The large sizes are run by hand (docs/PERF.md); this only checks that the benchmark works and reports
every figure."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytestmark = pytest.mark.bench

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "scale.py"

# What the benchmark must report for each size (issue 14), whatever its table looks like.
REQUIRED = [
    "chunks",
    "documents",
    "build_s",
    "ingest_first_slice",
    "ingest_last_slice",
    "ingest_first_slice_cpu",
    "ingest_last_slice_cpu",
    "search_excluded_p50_ms",
    "search_excluded_p95_ms",
    "search_excluded_cpu_p50_ms",
    "search_excluded_cpu_p95_ms",
    "first_search_after_write_s",
    "first_search_after_write_cpu_s",
    "add_small_document_s",
    "peak_rss_mib",
    "disk_mib",
    "recall_at_10",
    "sentence_recall_at_10",
]
ENCODING_INCLUDED = ["search_included_p50_ms", "search_included_p95_ms"]


@pytest.fixture(scope="module")
def scale() -> ModuleType:
    """bench/scale.py as a module (bench/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_scale", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    folder = tmp_path_factory.mktemp("bench-scale")
    report = folder / "scale.json"
    command = [
        sys.executable,
        str(SCRIPT),
        "--chunks", "2000",
        "--corpus", "sample",
        "--no-model",
        "--no-translator",
        "--searches", "30",
        "--write-reps", "2",
        "--recall-queries", "30",
        "--max-seconds", "60",
        "--cache-dir", str(folder / "cache"),
        "--json", str(report),
        "--format", "markdown",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(report.read_text()), done.stdout


def test_smoke_run_reports_every_figure(smoke_run: tuple[dict, str]) -> None:
    report, stdout = smoke_run
    (row,) = report["rows"]
    for key in REQUIRED:
        assert isinstance(row[key], int | float) and row[key] > 0, (key, row[key])
    for key in ENCODING_INCLUDED:  # --no-model: the column is there, its value is not
        assert key in row and row[key] is None
    assert row["chunks"] >= 2000
    for slices in (row["ingest_slices_chunks_per_s"], row["ingest_slices_chunks_per_cpu_s"]):
        assert len(slices) == 10 and all(rate > 0 for rate in slices)
    # At 2,000 chunks (and ~8,800 sentences) both vector indexes are flat, exact: nothing may be missed.
    assert row["serving"]["vector_indexes"] == {"chunks": "flat/fp32", "sentences": "flat/fp32"}
    assert row["vector_indexes"] == "chunks flat/fp32, sentences flat/fp32"
    assert row["recall_at_10"] == 1.0
    assert row["sentence_recall_at_10"] == 1.0
    assert row["serving"]["recall"]["sentences"]["exact_vectors"] > row["chunks"]
    # The serving process's figures do not include the build's memory: it starts small and grows.
    assert 0 < row["serving"]["rss_start_mib"] < row["peak_rss_mib"]
    # The table names every metric, with one column for the size.
    for label in report["metrics"].values():
        assert f"| {label} |" in stdout
    assert "N = 2,000" in stdout


def test_smoke_run_leaves_the_index_at_its_size(smoke_run: tuple[dict, str]) -> None:
    # The write probes are deleted again, so that a reused index still holds the chunks its record says.
    report, _ = smoke_run
    (row,) = report["rows"]
    assert row["serving"]["chunks"] == row["chunks"]
    assert row["serving"]["documents"] == row["documents"]


PASSAGES = [
    "工信部年底密集调研前沿科技行业，加快推动5G产业高质量发展。近一个月里，工信部系统开展了逾10次调研。",
    "量子计算原型机“九章”问世，求解高斯玻色取样问题的速度比目前最快的超级计算机快一百万亿倍。",
    "Qualcomm opened an AI innovation lab in Tianjin to help local companies develop intelligent products.",
]


def test_encoder_is_deterministic_and_unit(scale: ModuleType) -> None:
    encoder = scale.TextHashEncoder()
    first = encoder.encode_passages(PASSAGES)
    assert first.shape == (3, scale.DIMENSION) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    # Another instance (nothing remembered) gives the same vectors, whatever the batch.
    np.testing.assert_array_equal(first, scale.TextHashEncoder().encode_passages(PASSAGES))
    np.testing.assert_allclose(scale.TextHashEncoder().encode_passages(PASSAGES[1:])[0], first[1], atol=1e-6)
    queries = encoder.encode_queries(PASSAGES)
    assert queries.shape == (3, scale.DIMENSION) and queries.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(queries, scale.TextHashEncoder().encode_queries(PASSAGES))
    assert encoder.seconds > 0 and encoder.cpu_seconds >= 0
    assert encoder.encode_queries([]).shape == (0, scale.DIMENSION)


def test_salted_copies_differ_but_stay_similar(scale: ModuleType) -> None:
    original = scale.TextHashEncoder(salt="copy-0").encode_passages(PASSAGES)
    for salt in ("copy-1", "copy-7"):
        copy = scale.TextHashEncoder(salt=salt).encode_passages(PASSAGES)
        cosines = np.sum(original * copy, axis=1)
        # NOISE = 0.5: 1 / (1 + 0.25) = 0.8 between copies, up to what the random parts happen to share.
        assert ((cosines > 0.6) & (cosines < 0.95)).all(), cosines
    # Copies of one passage are nearer each other than to another passage.
    assert float(original[0] @ copy[0]) > float(original[0] @ copy[1])


def test_question_is_nearest_the_passage_it_was_written_about(scale: ModuleType) -> None:
    encoder = scale.TextHashEncoder(salt="copy-3")
    passages = encoder.encode_passages(PASSAGES)
    questions = encoder.encode_queries(
        [
            "近一个月里，工信部围绕5G开展了多少次调研？",
            "“九章”比超级计算机快多少倍？",
            "Where did Qualcomm open its AI innovation lab?",
        ]
    )
    scores = questions @ passages.T
    assert (scores.argmax(axis=1) == [0, 1, 2]).all(), scores
    for row in range(3):  # by a clear margin
        assert scores[row, row] > np.delete(scores[row], row).max() + 0.1, scores
    # A passage's own text as a question: its copy is 1 / sqrt(1 + NOISE²) ≈ 0.89 from it.
    own = np.sum(encoder.encode_queries(PASSAGES) * passages, axis=1)
    np.testing.assert_allclose(own, 1 / np.sqrt(1 + scale.NOISE**2), atol=0.05)


def test_slices_split_a_step_in_proportion(scale: ModuleType) -> None:
    # 10 chunks in 1 s, then 10 chunks in 4 s: with 2 slices each is one step; with 4, each step two.
    assert scale.slice_rates([(10, 1.0), (10, 4.0)], slices=2) == [10.0, 2.5]
    assert scale.slice_rates([(10, 1.0), (10, 4.0)], slices=4) == [10.0, 10.0, 2.5, 2.5]
    # A step straddling a boundary counts in both slices.
    assert scale.slice_rates([(15, 1.5), (5, 5.0)], slices=2) == pytest.approx([10.0, 10 / 5.5])


def test_plan_groups_about_one_commit_per_call_and_stops_at_the_target(scale: ModuleType) -> None:
    documents = [scale.Document(doc_id=f"d{i}", title=f"t{i}", text="x", source="s.txt") for i in range(5)]
    counts = [200, 0, 300, 100, 250]  # 850 chunks a copy; a document without chunks is skipped
    plan = list(scale.build_plan(documents, counts, 1500))
    assert sum(chunks for _, _, chunks in plan) >= 1500
    assert [copy for copy, _, _ in plan] == [0, 0, 1, 1]
    assert [[document.doc_id for document in group] for _, group, _ in plan] == [
        ["d0", "d2", "d3"],
        ["d4"],
        ["d0~1", "d2~1", "d3~1"],
        ["d4~1"],
    ]
    assert plan[2][1][0].title == "t0 [1]"
