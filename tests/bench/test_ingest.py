"""Smoke run of the ingest benchmark (bench/ingest.py): every variant indexes a two-article corpus once
with the real model. The sample-report runs are made by hand (docs/PERF.md, "Ingest"); this checks that
the benchmark works, counts what each variant embeds, and reports every figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from index.chunking import Chunker, sentence_spans
from index.readers import read_path
from tests.embeddings.test_embedded import shared_model_cache

pytestmark = [pytest.mark.bench, pytest.mark.model]

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "ingest.py"

ARTICLES = {
    "5g.txt": "# 5G调研\n工信部年底密集调研前沿科技行业。近一个月里，工信部系统开展了逾10次调研！调研覆盖多个省份。\n",
    "lab.txt": "# AI lab\nQualcomm opened an AI lab in Tianjin!\nIt helps local companies develop intelligent products.\n",
}


def test_a_short_run_reports_every_variant_and_what_each_embeds(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in ARTICLES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    report = tmp_path / "report.json"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "CITEQA_MODEL_CACHE": str(shared_model_cache(tmp_path_factory)),
    }
    command = [sys.executable, str(SCRIPT), "--corpus", str(corpus), "--rounds", "1", "--json", str(report)]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)

    assert done.returncode == 0, done.stderr[-3000:]
    rows = {row["variant"]: row for row in json.loads(report.read_text())["table"]}
    assert list(rows) == ["today", "cache warm", "late", "int8", "late + int8"]
    chunks = [chunk for document in read_path(corpus).documents for chunk in Chunker().split(document)]
    sentences = sum(len(sentence_spans(chunk)) for chunk in chunks)
    assert (len(chunks), sentences) == (2, 5)
    # Today: each chunk and each sentence alone; late: one pass per chunk; warm cache: nothing.
    assert rows["today"]["texts_embedded"] == rows["int8"]["texts_embedded"] == 2 + 5
    assert rows["late"]["texts_embedded"] == rows["late + int8"]["texts_embedded"] == 2
    assert rows["cache warm"]["texts_embedded"] == 0
    assert {row["vectors"] for row in rows.values()} == {2 + 5}
    assert rows["today"]["speedup"] == 1.0
    assert "| cache warm |" in done.stdout
