"""Smoke run of the keyword-candidates benchmark (bench/keyword_top.py) at a small size: copies of the
bundled sample report and the dev questions, so it needs no ../shared. The large sizes are run by hand
(docs/PERF.md); this checks that the benchmark runs and that its yardstick holds: `top` with a budget
that covers every posting is the full read exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "keyword_top.py"
EVERYTHING = 10**9


def test_a_budget_covering_every_posting_answers_as_the_full_read_and_a_tiny_one_does_not(
    tmp_path: Path,
) -> None:
    report = tmp_path / "keyword_top.json"
    command = [
        sys.executable, str(SCRIPT),
        "--corpus", "sample",
        "--chunks", "2000",
        "--queries", "30",
        "--budget", "1", str(EVERYTHING),
        "--json", str(report),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(report.read_text())
    assert figures["corpus"] == "sample" and figures["chunks"] == 2000
    rows = {row["variant"]: row for row in figures["rows"]}
    assert set(rows) == {"full", "top, budget 1", f"top, budget {EVERYTHING:,}"}
    covering = rows[f"top, budget {EVERYTHING:,}"]
    assert covering["exact"] == 1.0 and covering["recall_min"] == 1.0 and covering["recall10_min"] == 1.0
    assert covering["mean_error_max"] < 1e-6 and covering["spread_error_max"] < 1e-6
    tiny = rows["top, budget 1"]
    assert tiny["exact"] < 1.0 and 0.0 <= tiny["recall"] <= 1.0
    for row in rows.values():
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["max_ms"]
    assert "recall@limit" in done.stdout
