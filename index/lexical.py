"""What keyword search looks for (a question's terms, and concepts translated from it), and BM25's arithmetic.

The keyword index itself is `index.storage.keywords.KeywordIndex`: BM25 over jieba words, the exact-term
signal that embeddings blur.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Alternative:
    """One way of saying a concept: a word, as the index's terms, with a weight in (0, 1]."""

    text: str
    terms: tuple[str, ...]
    weight: float


@dataclass(frozen=True)
class Concept:
    """A word of the question and its alternatives, counted by keyword search as one term (an English
    word and the Chinese words that may translate it; see index.translation)."""

    word: str
    alternatives: tuple[Alternative, ...]

    # A concept keys the keyword index's caches, and an English word may have hundreds of alternatives:
    # hashed once, not on every look-up.
    @functools.cached_property
    def _hash(self) -> int:
        return hash((self.word, self.alternatives))

    def __hash__(self) -> int:
        return self._hash

    def __getstate__(self) -> dict[str, object]:
        # Another process hashes strings with another seed: it computes its own.
        return {name: value for name, value in self.__dict__.items() if name != "_hash"}


@dataclass(frozen=True)
class Keywords:
    """What keyword search looks for: the question's own terms, and/or concepts translated from it."""

    terms: list[str] = field(default_factory=list)
    concepts: list[Concept] = field(default_factory=list)


# BM25's parameters, as bm25s's defaults.
K1 = 1.5
B = 0.75


def best_alternative_weights(
    lowered: Sequence[str], everything: str, concept: Concept, indexed: Callable[[str], bool]
) -> np.ndarray:
    """Per text, the weight of the best of a concept's alternatives it contains, counting only alternatives
    whose terms are all `indexed`. `everything` is the texts joined: alternatives found in none are
    dropped first, which leaves a handful of the hundreds a concept may have."""
    present = [
        alt
        for alt in concept.alternatives
        if all(indexed(term) for term in alt.terms) and _contains(everything, alt.terms)
    ]
    return np.array(
        [max((alt.weight for alt in present if _contains(text, alt.terms)), default=0.0) for text in lowered],
        dtype=np.float32,
    )


def idf(n_documents: int, matching: int) -> float:
    """BM25's (Lucene) inverse document frequency."""
    return float(np.log(1 + (n_documents - matching + 0.5) / (matching + 0.5)))


def _contains(text: str, words: Sequence[str]) -> bool:
    return all(word in text for word in words)
