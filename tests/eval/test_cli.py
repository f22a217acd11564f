"""`citeqa eval` as a user runs it: a subprocess, the real model, a four-article corpus and five questions."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eval.results import ModeReport
from index.search import SEARCH_MODES
from service import cli
from tests.conftest import REPO_ROOT, citeqa_command

DATA = REPO_ROOT / "tests" / "data" / "eval"
ARTICLES = DATA / "articles.jsonl"
QUESTIONS = DATA / "questions.jsonl"
PEERS = ["langchain", "langchain-tuned", "bm25-jieba"]
PEERS_INSTALLED = all(
    importlib.util.find_spec(name) for name in ("langchain_community", "langchain_huggingface")
)


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A wide terminal keeps rich from wrapping the one-line error message.
    env = {**os.environ, "CITEQA_DATA_DIR": str(tmp_path / "var" / "index"), "COLUMNS": "400"}
    return subprocess.run(
        citeqa_command("eval", *args), env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.model
def test_eval_compare_reports_every_mode_and_peer_and_a_second_run_reuses_the_index(tmp_path):
    out = tmp_path / "report"
    run = _run(tmp_path, str(QUESTIONS), "--corpus", str(ARTICLES), "--compare", "--json", "--out", str(out))
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    expected = [f"citeqa-{mode}" for mode in SEARCH_MODES] + (PEERS if PEERS_INSTALLED else [])
    assert list(document) == ["questions_file", "top_k", "modes"]
    assert (document["questions_file"], document["top_k"]) == (str(QUESTIONS), 10)
    assert list(document["modes"]) == expected
    for name, mode in document["modes"].items():
        assert list(mode) == list(ModeReport.model_fields)
        # Every answer sits in its own one-chunk article, named by the question's words (or, in English,
        # by an English article): each retriever ranks it first.
        summary = mode["summary"]
        assert [summary[key] for key in ("answer_hit@1", "article_hit@1", "answer_mrr@10")] == [1.0] * 3, name
        assert (mode["n_questions"], mode["n_answerable"], summary["n_with_snippets"]) == (5, 4, 4), name
        assert mode["unanswerable"]["n_unanswerable"] == 1
        assert {lang: s["n_questions"] for lang, s in mode["by_lang"].items()} == {"en": 1, "zh": 4}
        assert [q["id"] for q in mode["questions"] if not q["answerable"]] == ["q-mars"]
        # CiteQA's own answerable verdict is passed through; the peers give none.
        flags = [q["flagged_answerable"] is not None for q in mode["questions"]]
        assert flags == [name.startswith("citeqa-")] * 5
    assert (out / "report.md").read_text(encoding="utf-8").count("| citeqa-") >= len(SEARCH_MODES)
    for plot in ("hit_at_k.png", "by_type.png", "top_scores.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if not PEERS_INSTALLED:
        assert "optional extra [peers]" in run.stderr

    english = _write(tmp_path / "english.jsonl", QUESTIONS.read_text(encoding="utf-8").splitlines()[3] + "\n")
    again = _run(
        tmp_path,
        str(QUESTIONS),
        str(english),
        "--corpus",
        str(ARTICLES),
        "--mode",
        "dense",
        "--out",
        str(out),
    )
    assert again.returncode == 0, again.stderr
    assert "Reusing the cached index" in again.stderr
    rows = [line for line in again.stdout.splitlines() if "citeqa-dense" in line]
    assert [[cell.strip() for cell in row.split("│")[1:6]] for row in rows] == [
        ["citeqa-dense", "all", "5", "1.000", "1.000"],
        ["citeqa-dense", "all", "1", "1.000", "1.000"],
    ]
    assert (out / "questions" / "report.md").is_file()
    assert (out / "english" / "report.md").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl"], "Error: Cannot read question file 'missing.jsonl'"),
        (["{bad}"], "Error: {bad}:2: not valid JSON"),
        ([str(QUESTIONS), "--mode", "fuzzy"], "Error: Unknown search mode 'fuzzy'; choose one of "),
        (
            [str(QUESTIONS), "--compare"],
            "Error: The peers build their own index from the corpus files: pass --corpus",
        ),
        ([str(QUESTIONS), "--compare", "--mode", "dense"], "Error: --mode and --compare exclude each other"),
        ([str(QUESTIONS), "--corpus", "nowhere"], "Error: No such corpus file or folder: nowhere"),
        ([str(QUESTIONS), "{copy}", "--out", "x"], "Error: Question files share the name questions: "),
    ],
)
def test_eval_errors_are_one_line_without_a_traceback(tmp_path, monkeypatch, capsys, args, message):
    bad = _write(tmp_path / "bad.jsonl", QUESTIONS.read_text(encoding="utf-8").splitlines()[0] + "\n{oops\n")
    copy = _write(tmp_path / "questions.jsonl", QUESTIONS.read_text(encoding="utf-8"))
    files = {"{bad}": str(bad), "{copy}": str(copy)}
    code, stdout, stderr = _run_in_process(monkeypatch, capsys, *[files.get(arg, arg) for arg in args])
    assert code == 1
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(message.replace("{bad}", str(bad)))


def test_unknown_mode_error_lists_the_modes_the_searcher_has(monkeypatch, capsys):
    _, _, stderr = _run_in_process(monkeypatch, capsys, str(QUESTIONS), "--mode", "fuzzy")
    assert stderr.strip().endswith(f"choose one of {', '.join(SEARCH_MODES)}.")


def _run_in_process(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`citeqa eval ARGS` through the CLI's entry point, in this process: these errors come before any
    model or index is loaded, and a subprocess per case would cost seconds of imports."""
    monkeypatch.setattr(sys, "argv", ["citeqa", "eval", *args])
    # A wide terminal keeps rich from wrapping the one-line error message.
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as exited:
        cli.run()
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err
