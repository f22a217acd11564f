"""The reference the keyword index is checked against: BM25 over term lists held in memory, plain terms
scored by bm25s itself. `index.storage.keywords.KeywordIndex` must give exactly these scores over its live
chunks (tests/index/storage/test_keywords.py)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import bm25s
import numpy as np
from scipy import sparse

from index.lexical import K1, B, Concept, Keywords, best_alternative_weights, idf
from index.text import has_chinese


class ReferenceBM25:
    """BM25 (Lucene variant, k1 1.5, b 0.75) over the term lists of some chunks."""

    def __init__(self, chunk_ids: np.ndarray, term_lists: Sequence[list[str]]) -> None:
        self.chunk_ids = chunk_ids
        self._term_column: dict[str, int] = {}
        rows, columns = [], []
        for row, words in enumerate(term_lists):
            for word in words:
                rows.append(row)
                columns.append(self._term_column.setdefault(word, len(self._term_column)))
        self.chinese_share = sum(has_chinese(word) for word in self._term_column) / max(
            len(self._term_column), 1
        )
        # Term frequencies (duplicates summed), by column: what concept queries need (see concept_scores).
        self._frequencies = sparse.csc_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, columns)),
            shape=(len(term_lists), len(self._term_column)),
        )
        self._document_frequency = np.diff(self._frequencies.indptr)
        lengths = np.array([len(words) for words in term_lists], dtype=np.float32)
        self._length_norm = K1 * (
            1 - B + B * lengths / max(float(lengths.mean()) if lengths.size else 0.0, 1.0)
        )
        self._bm25: bm25s.BM25 | None = None
        # A question's concepts are looked up twice, to rank chunks and to pick each passage's sentence.
        self._concept_frequency = functools.lru_cache(maxsize=64)(self._sum_concept_frequency)
        if len(term_lists):
            self._bm25 = bm25s.BM25(k1=K1, b=B)
            # An empty term list would be dropped by bm25s and shift the alignment with chunk_ids.
            self._bm25.index([words or [""] for words in term_lists], show_progress=False)

    def scores(self, keywords: Keywords) -> np.ndarray:
        """One BM25 score per chunk, aligned with `chunk_ids` (zeros when nothing matches)."""
        total = self.concept_scores(keywords.concepts)
        if self._bm25 is not None and keywords.terms:
            total += np.asarray(self._bm25.get_scores(keywords.terms), dtype=np.float32)
        return total

    def concept_scores(self, concepts: Sequence[Concept]) -> np.ndarray:
        """BM25 of a structured query, aligned with `chunk_ids`: each concept counts as one term whose
        frequency in a chunk is the weighted sum of its alternatives' (an alternative of several index
        terms counts as often as its rarest term) and whose document frequency is that of the union.
        bm25s takes plain term lists only, hence this second scorer; with one single-term alternative
        per concept it ranks as bm25s does (tests/index/test_lexical.py)."""
        n_chunks = len(self.chunk_ids)
        total = np.zeros(n_chunks, dtype=np.float32)
        for concept in concepts:
            frequency = self._concept_frequency(concept)
            matching = int(np.count_nonzero(frequency))
            if matching:
                total += idf(n_chunks, matching) * frequency / (frequency + self._length_norm)
        return total

    def match_scores(self, texts: Sequence[str], keywords: Keywords) -> np.ndarray:
        """How much of the keywords each text holds, with this index's idf: the idf of every question term
        found in it, plus, for every concept, the idf of its alternatives' union times the weight of the
        best alternative found. For texts too short for BM25's statistics (the sentences of a passage); a
        term counts as found when the text contains it, which spares segmenting every text per question."""
        lowered = [text.lower() for text in texts]
        everything = "\n".join(lowered)
        total = np.zeros(len(lowered), dtype=np.float32)
        n_chunks = len(self.chunk_ids)
        for term in set(keywords.terms):
            column = self._term_column.get(term)
            if column is not None:
                found = np.array([term in text for text in lowered])
                total += found * idf(n_chunks, int(self._document_frequency[column]))
        for concept in keywords.concepts:
            matching = int(np.count_nonzero(self._concept_frequency(concept)))
            if not matching:
                continue
            best = best_alternative_weights(lowered, everything, concept, self._term_column.__contains__)
            total += best * idf(n_chunks, matching)
        return total

    def _sum_concept_frequency(self, concept: Concept) -> np.ndarray:
        single_columns, single_weights = [], []
        frequency = np.zeros(len(self.chunk_ids), dtype=np.float32)
        for alternative in concept.alternatives:
            columns = [self._term_column.get(term) for term in alternative.terms]
            if not columns or None in columns:
                continue
            if len(columns) == 1:
                single_columns.append(columns[0])
                single_weights.append(alternative.weight)
            else:
                frequency += alternative.weight * self._frequencies[:, columns].toarray().min(axis=1)
        if single_columns:
            frequency += self._frequencies[:, single_columns] @ np.array(single_weights, dtype=np.float32)
        return frequency
