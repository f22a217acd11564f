"""Smoke run of the HTTP concurrency benchmark (bench/http_concurrency.py): two short-lived `citeqa serve`
processes (batching on and off) over a one-article index, 1 and 2 clients for two seconds each. The
real 60-second runs are made by hand (docs/PERF.md); this checks that the benchmark works and reports
every figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.bench, pytest.mark.model, pytest.mark.server]

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "http_concurrency.py"

ARTICLE = (
    "工信部年底密集调研前沿科技行业，加快推动5G产业高质量发展。近一个月里，工信部系统开展了逾10次调研。\n"
    "Qualcomm opened an AI innovation lab in Tianjin to help local companies develop intelligent products.\n"
)


def test_a_short_run_reports_every_cell_and_ratio(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "article.txt").write_text(ARTICLE, encoding="utf-8")
    report = tmp_path / "report.json"
    command = [
        sys.executable, str(SCRIPT),
        "--seconds", "2",
        "--clients", "1", "2",
        "--batch-wait-ms", "2", "0",
        "--in-process-searches", "5",
        "--questions", str(REPO_ROOT / "tests" / "data" / "seed_dev.jsonl"),
        "--corpus", str(corpus),
        "--cache-dir", str(tmp_path / "index"),
        "--json", str(report),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(report.read_text())
    cells = {(cell["batch_wait_ms"], cell["clients"]): cell for cell in result["cells"]}
    assert set(cells) == {(2.0, 1), (2.0, 2), (0.0, 1), (0.0, 2)}
    for cell in cells.values():
        assert cell["errors"] == 0, cell["first_errors"]
        assert cell["requests"] > 0 and cell["qps"] > 0
        assert 0 < cell["p50_ms"] <= cell["p95_ms"]
    assert result["in_process"]["searches"] == 5 and result["in_process"]["p50_ms"] > 0
    for server in result["servers"]:
        assert server["ready_s"] > 0 and server["translator_s"] >= server["ready_s"]
        assert set(server["ratios"]) == {
            "clients",
            "qps_scaling",
            "p95_most_over_p50_one",
            "http_p50_over_in_process_p50",
        }
    assert result["machine"]["nproc"] >= 1 and len(result["machine"]["loadavg_start"]) == 3
    assert "| batch wait (ms) | torch threads | clients |" in done.stdout
