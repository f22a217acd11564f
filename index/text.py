"""Text rules shared by indexing, search, follow-ups and highlighting: scripts, words, stopwords.

Written once here so that what counts as Chinese, as a word, or as a word not worth looking for is the
same in keyword search, in the translation of questions, in follow-up rewriting and in the marking of a
question's words in passages.
"""

from __future__ import annotations

import logging
import re

import jieba
from bm25s.stopwords import STOPWORDS_EN

jieba.setLogLevel(logging.WARNING)

# CJK Unified Ideographs, Extension A and the Compatibility Ideographs.
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Question words, and the verbs and prepositions that end a Chinese question's subject (…是多少, …有多少, …在哪里).
CHINESE_QUESTION_WORDS = _words(
    "什么 多少 哪 哪些 哪里 哪个 哪家 几 如何 怎么 怎样 为什么 为何 是否 何时 多久 多大 吗 呢 是 有 在"
)
# Not worth marking in a passage: question words and the commonest particles and conjunctions.
CHINESE_STOPWORDS = CHINESE_QUESTION_WORDS | _words("的 了 和 与 及")
# bm25s's English list, question words and auxiliaries, and the placeholders of dictionary glosses
# ("to tell sb sth"): words that name nothing a passage could be about.
ENGLISH_STOPWORDS = frozenset(STOPWORDS_EN) | _words(
    """about all also any been being can could did do does e each etc from g had has have how its many may
    might more most much one oneself other s sb should some someone something sth than very was were what
    when where which who whom why would"""
)
# How a question is put to someone, not what it asks about ("Please tell me …"). Not stopwords for
# translation, where "US" may be the United States.
ENGLISH_REQUEST_WORDS = _words("please tell me us i so whose")


def has_chinese(text: str) -> bool:
    return CJK.search(text) is not None


def is_cjk(text: str) -> bool:
    """Whether a text is mainly Chinese: at least as many Chinese characters as Latin words
    ("Apple的iPhone 12销量" is Chinese, "How many 5G基站?" is not)."""
    cjk = len(CJK.findall(text))
    return cjk > 0 and cjk >= len(_LATIN_WORD.findall(text))


# A capitalised Latin word of four letters or more, not part of a hyphenated compound: how a Chinese question
# names a company or product in English ("Qualcomm的…", "China Unicom副总经理…"). All-capital acronyms (IDC,
# TWS) and compounds (Micro-LED) are left out: articles write those as they are.
_ENGLISH_NAME = re.compile(r"(?<![A-Za-z-])[A-Z][a-z]{3,}(?![A-Za-z-])")


def english_names(text: str) -> list[str]:
    """The capitalised English words of a mainly Chinese text ("Apple的iPhone销量" -> ["Apple"])."""
    return _ENGLISH_NAME.findall(text)


def terms(text: str) -> list[str]:
    """jieba words (accurate mode), lowercased, keeping only those with a letter, digit or CJK character:
    the words keyword search indexes and looks for."""
    return [word.lower() for word in jieba.lcut(text) if any(char.isalnum() for char in word)]


def question_terms(question: str) -> list[str]:
    """Words of a question worth marking in a passage, longest first: Chinese words of two or more
    characters, Latin words and numbers, without stopwords."""
    found = {term.strip() for term in terms(question) if len(term.strip()) >= 2 or term.strip().isdigit()}
    return sorted(
        (term for term in found if term not in CHINESE_STOPWORDS | ENGLISH_STOPWORDS | ENGLISH_REQUEST_WORDS),
        key=len,
        reverse=True,
    )
