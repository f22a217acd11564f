from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from index.lexical import Alternative, Concept, Keywords
from index.storage.keywords import KeywordIndex
from index.text import terms
from tests.index.storage.test_keywords import connect, write

CHUNKS = [
    ["台积", "电", "收盘价", "每股", "美元"],
    ["英特尔", "发布", "量子", "芯片"],
    ["芯片", "芯片", "出货", "手机"],
    ["手机", "市场", "下滑"],
    ["电", "台", "广播"],
]


class Scored:
    """A keyword index of CHUNKS (ids 10, 11, …) whose scores come as one array aligned with CHUNKS."""

    def __init__(self, chunks: list[list[str]]) -> None:
        self.index = KeywordIndex(connect())
        write(self.index._db, lambda db: self.index.add_many(db, enumerate(chunks, start=10)))
        self.size = len(chunks)

    def scores(self, keywords: Keywords) -> np.ndarray:
        ids, found = self.index.search(keywords)
        aligned = np.zeros(self.size, dtype=np.float32)
        aligned[ids - 10] = found
        return aligned

    def match_scores(self, texts: list[str], keywords: Keywords) -> np.ndarray:
        return self.index.match_scores(texts, keywords)


@pytest.fixture
def lexical() -> Scored:
    return Scored(CHUNKS)


def single(word: str, *chinese: str) -> Concept:
    return Concept(word, tuple(Alternative(text, (text,), 1.0) for text in chinese))


def test_terms_are_lowercased_jieba_words_without_punctuation() -> None:
    assert terms("台积电收盘价每股106.39美元，5G手机！") == [
        "台积",
        "电",
        "收盘价",
        "每股",
        "106.39",
        "美元",
        "5g",
        "手机",
    ]


def test_concepts_of_one_word_each_rank_chunks_as_bm25s_ranks_the_same_terms(lexical: Scored) -> None:
    plain = lexical.scores(Keywords(terms=["芯片", "手机"]))
    structured = lexical.scores(Keywords(concepts=[single("chip", "芯片"), single("phone", "手机")]))
    assert list(np.argsort(-plain, kind="stable")) == list(np.argsort(-structured, kind="stable"))
    assert np.allclose(structured / structured.max(), plain / plain.max(), atol=1e-5)


def test_a_concept_counts_its_alternatives_as_one_term(lexical: Scored) -> None:
    # "chip or phone" as one concept matches chunks 1-3, so it is commoner than either word alone:
    # a chunk holding both words gains less than from two separate terms.
    one_concept = lexical.scores(Keywords(concepts=[single("device", "芯片", "手机")]))
    two_terms = lexical.scores(Keywords(terms=["芯片", "手机"]))
    assert set(np.flatnonzero(one_concept)) == {1, 2, 3}
    assert one_concept[2] < two_terms[2]


def test_an_alternative_of_several_index_terms_matches_only_where_all_of_them_occur(
    lexical: Scored,
) -> None:
    tsmc = Concept("tsmc", (Alternative("台积电", ("台积", "电"), 1.0),))
    assert list(np.flatnonzero(lexical.scores(Keywords(concepts=[tsmc])))) == [0]


def test_lighter_alternatives_score_less_and_unknown_words_score_nothing(lexical: Scored) -> None:
    full = lexical.scores(Keywords(concepts=[Concept("intel", (Alternative("英特尔", ("英特尔",), 1.0),))]))
    half = lexical.scores(Keywords(concepts=[Concept("intel", (Alternative("英特尔", ("英特尔",), 0.5),))]))
    assert 0 < half[1] < full[1]
    unknown = Concept("gree", (Alternative("格力", ("格力",), 1.0),))
    assert not lexical.scores(Keywords(concepts=[unknown])).any()
    assert not lexical.scores(Keywords()).any()


def test_an_empty_index_scores_nothing() -> None:
    empty = Scored([])
    assert empty.scores(Keywords(terms=["芯片"], concepts=[single("chip", "芯片")])).shape == (0,)


def test_match_scores_count_each_question_term_a_text_contains_by_its_idf(lexical: Scored) -> None:
    texts = ["英特尔发布量子芯片。", "手机市场下滑。", "天气晴朗。"]
    scores = lexical.match_scores(texts, Keywords(terms=["芯片", "下滑", "天气"]))
    # 芯片 is in two of the five chunks and 下滑 in one, so 下滑 counts for more; 天气 is not indexed.
    assert scores[1] > scores[0] > 0
    assert scores[2] == 0


def test_match_scores_count_a_concept_by_the_best_alternative_a_text_contains(lexical: Scored) -> None:
    device = Concept(
        "device",
        (
            Alternative("芯片", ("芯片",), 1.0),
            Alternative("手机", ("手机",), 0.5),
            Alternative("格力", ("格力",), 1.0),  # not in the index: ignored, as keyword search ignores it
        ),
    )
    scores = lexical.match_scores(["量子芯片和手机", "手机市场", "格力空调"], Keywords(concepts=[device]))
    assert scores[0] == pytest.approx(2 * scores[1])
    assert scores[1] > 0
    assert scores[2] == 0


def test_a_concept_pickled_by_a_process_with_another_hash_seed_finds_its_equal_in_a_dict() -> None:
    made_elsewhere = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pickle, sys\n"
            "from index.lexical import Alternative, Concept\n"
            "concept = Concept('chip', (Alternative('芯片', ('芯片',), 1.0),))\n"
            "hash(concept)\n"
            "sys.stdout.buffer.write(pickle.dumps(concept))",
        ],
        env={**os.environ, "PYTHONHASHSEED": "1"},
        capture_output=True,
        check=True,
    ).stdout
    here = single("chip", "芯片")

    assert {here: "found"}[pickle.loads(made_elsewhere)] == "found"
