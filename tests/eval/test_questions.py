from __future__ import annotations

import json
from pathlib import Path

import pytest

from citeqa.errors import QuestionFileError
from eval.questions import load_questions


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _line(**fields) -> str:
    question = {
        "id": "q1",
        "question": "多少？",
        "lang": "zh",
        "gold_titles": ["A"],
        "answer_snippets": ["1"],
    }
    return json.dumps(question | fields, ensure_ascii=False)


def test_load_questions_reads_every_line_in_order_and_skips_blank_lines(tmp_path):
    path = _write(
        tmp_path / "q.jsonl",
        [_line(type="numeric"), "", _line(id="q2", gold_titles=[], gold_doc_ids=[], answer_snippets=[])],
    )
    questions = load_questions(path)
    assert [question.id for question in questions] == ["q1", "q2"]
    assert questions[0].type == "numeric"
    assert (questions[0].answerable, questions[1].answerable) == (True, False)
    assert questions[1].type is None


def test_a_question_with_only_gold_doc_ids_is_answerable(tmp_path):
    path = _write(tmp_path / "q.jsonl", [_line(gold_titles=[], gold_doc_ids=["cmrc-DEV_1"])])
    assert load_questions(path)[0].answerable is True


def test_invalid_json_names_the_file_and_line(tmp_path):
    path = _write(tmp_path / "q.jsonl", [_line(), "{not json"])
    with pytest.raises(QuestionFileError, match=r"q\.jsonl:2: not valid JSON"):
        load_questions(path)


def test_a_missing_field_names_the_file_line_and_field(tmp_path):
    path = _write(tmp_path / "q.jsonl", [json.dumps({"id": "q1", "lang": "zh"})])
    with pytest.raises(
        QuestionFileError, match=r"q\.jsonl:1: not a valid question \(question: Field required"
    ):
        load_questions(path)


def test_a_misspelt_field_is_refused_rather_than_making_the_question_unanswerable(tmp_path):
    path = _write(tmp_path / "q.jsonl", [_line(gold_title=["A"])])
    with pytest.raises(QuestionFileError, match=r"gold_title: Extra inputs are not permitted"):
        load_questions(path)


def test_snippets_without_a_gold_article_are_refused(tmp_path):
    path = _write(tmp_path / "q.jsonl", [_line(gold_titles=[])])
    with pytest.raises(QuestionFileError, match=r"q\.jsonl:1: .*answer_snippets are given but gold_titles"):
        load_questions(path)


def test_a_blank_snippet_is_refused_because_it_would_match_every_passage(tmp_path):
    path = _write(tmp_path / "q.jsonl", [_line(answer_snippets=["ok", " \n"])])
    with pytest.raises(QuestionFileError, match=r"answer_snippets: Value error, holds a blank string"):
        load_questions(path)


def test_a_repeated_id_names_both_lines(tmp_path):
    path = _write(tmp_path / "q.jsonl", [_line(), _line(id="q2"), _line()])
    with pytest.raises(QuestionFileError, match=r"q\.jsonl:3: id 'q1' was already used on line 1"):
        load_questions(path)


def test_an_empty_file_and_a_missing_file_are_errors(tmp_path):
    with pytest.raises(QuestionFileError, match="holds no question"):
        load_questions(_write(tmp_path / "empty.jsonl", [""]))
    with pytest.raises(QuestionFileError, match="Cannot read question file"):
        load_questions(tmp_path / "missing.jsonl")
