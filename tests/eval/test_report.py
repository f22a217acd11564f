from __future__ import annotations

import json

import pytest

from eval import report as report_writers
from eval.results import EvalReport
from eval.runner import build_mode_report
from tests.eval.fakes import make_result

SUMMARY_KEYS = [
    "n_questions",
    "n_answerable",
    "n_with_snippets",
    "n_multi_article",
    "answer_hit@1",
    "highlight_hit@1",
    "answer_hit@3",
    "answer_hit@5",
    "answer_hit@10",
    "answer_mrr@10",
    "ndcg@10",
    "article_hit@1",
    "article_hit@3",
    "article_hit@5",
    "article_hit@10",
    "article_full_recall@5",
    "article_full_recall@10",
    "article_full_recall_multi@5",
    "article_full_recall_multi@10",
    "article_mrr@10",
    "mean_passage_chars",
    "latency_ms",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _mode(name: str, answer_rank: int | None):
    results = [
        make_result(
            id="q1",
            lang="zh",
            type="factoid",
            answer_rank=answer_rank,
            relevant_ranks=[answer_rank] if answer_rank else [],
            article_rank=1,
            article_full_rank=1,
            top_score=0.8,
            latency_ms=5.0,
            passage_chars=[120],
        ),
        make_result(
            id="q2",
            lang="en",
            type="unanswerable",
            answerable=False,
            n_gold_articles=0,
            n_snippets=0,
            top_score=0.4,
            latency_ms=7.0,
            passage_chars=[80],
        ),
    ]
    return build_mode_report(name, "seed.jsonl", 10, results)


def _report(*modes) -> EvalReport:
    return EvalReport(questions_file="seed.jsonl", top_k=10, modes={mode.retriever: mode for mode in modes})


def test_single_mode_json_document_has_the_stable_keys(tmp_path):
    path = report_writers.write_json(_report(_mode("dense", 2)), tmp_path / "report.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    assert list(document) == [
        "retriever",
        "questions_file",
        "top_k",
        "n_questions",
        "n_answerable",
        "summary",
        "hit_curve",
        "by_lang",
        "by_type",
        "unanswerable",
        "intervals",
        "versus_first",
        "questions",
    ]
    assert (document["n_questions"], document["n_answerable"]) == (2, 1)
    assert list(document["summary"]) == SUMMARY_KEYS
    assert document["summary"]["answer_hit@1"] == 0.0
    assert document["summary"]["answer_hit@3"] == 1.0
    assert document["summary"]["latency_ms"] == {"p50": 6.0, "p95": pytest.approx(6.9)}
    assert list(document["by_lang"]) == ["en", "zh"]
    assert list(document["by_lang"]["zh"]) == SUMMARY_KEYS
    assert document["by_type"]["unanswerable"]["answer_hit@1"] is None
    assert list(document["unanswerable"]) == [
        "n_unanswerable",
        "top_score_unanswerable",
        "top_score_answerable",
        "flagged_unanswerable",
        "flagged_answerable",
    ]
    assert document["unanswerable"]["top_score_unanswerable"]["max"] == 0.4
    assert [question["id"] for question in document["questions"]] == ["q1", "q2"]
    assert document["questions"][0]["answer_rank"] == 2
    assert document["hit_curve"] == [0.0] + [1.0] * 9


def test_compare_json_document_nests_each_mode_document_under_modes(tmp_path):
    report = _report(_mode("dense", 1), _mode("bm25", None))
    document = json.loads(report_writers.write_json(report, tmp_path / "r.json").read_text(encoding="utf-8"))
    assert list(document) == ["questions_file", "top_k", "modes"]
    assert list(document["modes"]) == ["dense", "bm25"]
    assert document["modes"]["dense"] == _mode("dense", 1).model_dump(mode="json")
    assert document["modes"]["bm25"]["summary"]["answer_hit@10"] == 0.0


def test_markdown_has_one_main_row_per_mode_and_by_lang_and_by_type_rows():
    markdown = report_writers.render_markdown(_report(_mode("dense", 1), _mode("bm25", None)))
    lines = markdown.splitlines()
    assert (
        "| mode | n | answerable | hit@1 | hit@3 | hit@5 | hit@10 | highlight@1 | MRR@10 | nDCG@10 |"
        in markdown
    )
    # dense: answer at rank 1 (no highlight: –); article at rank 1; passages 120 and 80 chars; latencies 5
    # and 7 ms.
    assert (
        "| dense | 2 | 1 | 1.000 | 1.000 | 1.000 | 1.000 | – | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | – | 1.000 "
        "| 100 | 6.0 | 6.9 |" in lines
    )
    assert "| bm25 | zh | 1 | 1 | 0.000 | 0.000 | 0.000 | 1.000 |" in lines
    assert "| dense | unanswerable | 1 | 0 | – | – | – | – |" in lines
    assert "| bm25 | 1 | 0.400 | 0.400 | 0.400 | 0.800 | 0.800 | 0.800 | – | – |" in lines
    assert "![hit_at_k.png](hit_at_k.png)" in lines


def test_write_report_writes_json_markdown_and_png_plots(tmp_path):
    out_dir = tmp_path / "nested" / "out"
    paths = report_writers.write_report(_report(_mode("dense", 1), _mode("bm25", 4)), out_dir)
    assert [path.name for path in paths] == [
        "report.json",
        "report.md",
        "hit_at_k.png",
        "by_type.png",
        "top_scores.png",
    ]
    for path in paths[2:]:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert len(data) > 5_000
