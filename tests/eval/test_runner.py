from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from citeqa.errors import EvalConfigError
from eval.questions import EvalQuestion
from eval.runner import Retrieval, Retriever, evaluate_question, run_eval
from index.search import Passage
from tests.eval.fakes import make_passage


class ScriptedRetriever:
    """Returns fixed passages per question text; remembers every call."""

    def __init__(self, name: str, answers: dict[str, Sequence[Passage] | Retrieval]) -> None:
        self.name = name
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    def retrieve(self, question: str, top_k: int) -> Sequence[Passage] | Retrieval:
        self.calls.append((question, top_k))
        return self.answers[question]


def _questions_file(tmp_path: Path) -> Path:
    rows = [
        {
            "id": "a",
            "question": "QA",
            "lang": "zh",
            "type": "factoid",
            "gold_titles": ["文章 一"],
            "answer_snippets": ["70 万"],
        },
        {
            "id": "b",
            "question": "QB",
            "lang": "en",
            "type": "multi-article",
            "gold_titles": ["文章一", "文章二"],
            "answer_snippets": ["62万"],
        },
        {
            "id": "c",
            "question": "QC",
            "lang": "zh",
            "type": "unanswerable",
            "gold_titles": [],
            "answer_snippets": [],
        },
    ]
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows), encoding="utf-8")
    return path


def test_scripted_retriever_satisfies_the_protocol():
    assert isinstance(ScriptedRetriever("x", {}), Retriever)


def test_tied_scores_keep_the_order_the_retriever_returned():
    question = EvalQuestion(id="q", question="?", lang="zh", gold_doc_ids=["d2"], answer_snippets=["答案"])
    passages = [
        make_passage(1, "无关", doc_id="d1", score=0.8),
        make_passage(2, "这是答案", doc_id="d2", score=0.8),
    ]
    result = evaluate_question(question, passages, latency_ms=3.0)
    assert (result.answer_rank, result.article_rank, result.top_score) == (2, 2, 0.8)


def test_evaluate_question_records_ranks_score_lengths_and_flag():
    question = EvalQuestion(
        id="q", question="?", lang="en", type="multi-article", gold_titles=["A", "B"], answer_snippets=["x y"]
    )
    retrieval = Retrieval(
        passages=[
            make_passage(1, "abc", title="B", score=0.9),
            make_passage(2, "xy!", title="C", score=0.4),
            make_passage(3, "-x  y-", title="A", score=0.3),
        ],
        answerable=True,
    )
    result = evaluate_question(question, retrieval, latency_ms=12.5)
    assert result.model_dump() == {
        "id": "q",
        "lang": "en",
        "type": "multi-article",
        "answerable": True,
        "n_gold_articles": 2,
        "n_snippets": 1,
        "answer_rank": 2,
        "relevant_ranks": [2, 3],
        "article_rank": 1,
        "article_full_rank": 3,
        "top_score": 0.9,
        "latency_ms": 12.5,
        "passage_chars": [3, 3, 6],
        "flagged_answerable": True,
        "highlight_hit": None,  # these passages highlight no sentence
    }


def test_an_empty_retrieval_has_no_ranks_and_no_top_score():
    question = EvalQuestion(id="q", question="?", lang="zh")
    result = evaluate_question(question, [], latency_ms=1.0)
    assert (result.answer_rank, result.article_rank, result.top_score, result.passage_chars) == (
        None,
        None,
        None,
        [],
    )


def test_run_eval_measures_each_retriever_and_warms_up_once(tmp_path):
    good = ScriptedRetriever(
        "good",
        {
            "QA": [make_passage(1, "近70万个", title="文章一", score=0.9)],
            "QB": [make_passage(1, "62万", title="文章二", score=0.8), make_passage(2, "…", title="文章一")],
            "QC": Retrieval(passages=[make_passage(1, "zz", title="其他", score=0.3)], answerable=False),
        },
    )
    bad = ScriptedRetriever("bad", {"QA": [], "QB": [], "QC": []})
    report = run_eval(_questions_file(tmp_path), [good, bad], top_k=7)
    assert list(report.modes) == ["good", "bad"]
    # One untimed warm-up call with the first question, then one call per question, all with top_k.
    assert good.calls == [("QA", 7), ("QA", 7), ("QB", 7), ("QC", 7)]
    mode = report.modes["good"]
    assert [(r.id, r.answer_rank, r.article_rank, r.article_full_rank) for r in mode.questions] == [
        ("a", 1, 1, 1),
        ("b", 1, 1, 2),
        ("c", None, None, None),
    ]
    assert all(result.latency_ms >= 0 for result in mode.questions)
    assert (mode.summary.answer_hit_1, mode.summary.article_full_recall_multi_5) == (1.0, 1.0)
    assert mode.unanswerable.flagged_unanswerable == 1.0
    assert mode.unanswerable.flagged_answerable is None
    assert list(mode.by_lang) == ["en", "zh"]
    assert report.modes["bad"].summary.answer_hit_10 == 0.0


def test_run_eval_writes_the_report_files_when_given_an_output_folder(tmp_path):
    retriever = ScriptedRetriever("only", {"QA": [], "QB": [], "QC": []})
    run_eval(_questions_file(tmp_path), [retriever], out_dir=tmp_path / "out")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "by_type.png",
        "hit_at_k.png",
        "report.json",
        "report.md",
        "top_scores.png",
    ]


@pytest.mark.parametrize(
    ("retrievers", "top_k", "message"),
    [
        ([], 10, "No retriever given"),
        ([ScriptedRetriever("x", {})], 0, "top_k is 0; it must be at least 1"),
        (
            [ScriptedRetriever("x", {}), ScriptedRetriever("x", {})],
            10,
            r"names must differ, got \['x', 'x'\]",
        ),
    ],
)
def test_run_eval_refuses_arguments_that_cannot_work(tmp_path, retrievers, top_k, message):
    with pytest.raises(EvalConfigError, match=message):
        run_eval(_questions_file(tmp_path), retrievers, top_k=top_k)
