"""Keyword matching: BM25 over jieba words, the exact-term signal that embeddings blur."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import bm25s
import jieba
import numpy as np

jieba.setLogLevel(logging.WARNING)

_CHINESE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def terms(text: str) -> list[str]:
    """jieba words (accurate mode), lowercased, keeping only those with a letter, digit or CJK character."""
    return [word.lower() for word in jieba.lcut(text) if any(char.isalnum() for char in word)]


class LexicalIndex:
    """BM25 (Lucene variant, k1 1.5, b 0.75) over the term lists of some chunks."""

    def __init__(self, chunk_ids: np.ndarray, term_lists: Sequence[list[str]]) -> None:
        self.chunk_ids = chunk_ids
        vocabulary = {word for words in term_lists for word in words}
        self.chinese_share = sum(bool(_CHINESE.search(word)) for word in vocabulary) / max(len(vocabulary), 1)
        self._bm25: bm25s.BM25 | None = None
        if len(term_lists):
            self._bm25 = bm25s.BM25()
            # An empty term list would be dropped by bm25s and shift the alignment with chunk_ids.
            self._bm25.index([words or [""] for words in term_lists], show_progress=False)

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """One BM25 score per chunk, aligned with `chunk_ids` (zeros when no term matches)."""
        if self._bm25 is None or not query_terms:
            return np.zeros(len(self.chunk_ids), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(query_terms), dtype=np.float32)
