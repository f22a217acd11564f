"""Evaluation question files (JSONL): one question per line, validated as `EvalQuestion`."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from citeqa.errors import QuestionFileError


class EvalQuestion(BaseModel):
    """One evaluation question. Empty gold lists mean the corpus holds no answer (unanswerable)."""

    # Unknown keys are refused: a misspelt `gold_title` would otherwise turn a question unanswerable silently.
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    lang: str = Field(min_length=1)
    type: str | None = None
    gold_titles: list[str] = Field(default_factory=list)
    gold_doc_ids: list[str] = Field(default_factory=list)
    answer_snippets: list[str] = Field(default_factory=list)

    @field_validator("gold_titles", "answer_snippets")
    @classmethod
    def _no_blank_strings(cls, values: list[str]) -> list[str]:
        # Matching ignores whitespace, so a blank snippet or title would match every passage.
        if any(not value.strip() for value in values):
            raise ValueError("holds a blank string; remove it")
        return values

    @model_validator(mode="after")
    def _snippets_need_gold(self) -> EvalQuestion:
        if self.answer_snippets and not self.answerable:
            raise ValueError(
                "answer_snippets are given but gold_titles and gold_doc_ids are empty: "
                "name the gold article(s), or empty the snippets for an unanswerable question"
            )
        return self

    @property
    def answerable(self) -> bool:
        return bool(self.gold_titles or self.gold_doc_ids)


def load_questions(path: Path) -> list[EvalQuestion]:
    """All questions of a JSONL file, in file order; blank lines are skipped.

    Raises QuestionFileError naming the file and line of the first bad line, or a duplicated id.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise QuestionFileError(f"Cannot read question file '{path}': {error}") from error
    questions: list[EvalQuestion] = []
    seen: dict[str, int] = {}
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            question = EvalQuestion.model_validate(json.loads(line))
        except json.JSONDecodeError as error:
            raise QuestionFileError(f"{path}:{line_number}: not valid JSON ({error.msg})") from error
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in problem['loc']) or 'line'}: {problem['msg']}"
                for problem in error.errors()
            )
            raise QuestionFileError(f"{path}:{line_number}: not a valid question ({problems})") from error
        if question.id in seen:
            raise QuestionFileError(
                f"{path}:{line_number}: id '{question.id}' was already used on line {seen[question.id]}"
            )
        seen[question.id] = line_number
        questions.append(question)
    if not questions:
        raise QuestionFileError(f"Question file '{path}' holds no question")
    return questions
