"""What keyword search looks for (a question's terms, and concepts translated from it), and BM25's arithmetic.

The keyword index itself is `index.storage.keywords.KeywordIndex`: BM25 over jieba words, the exact-term
signal that embeddings blur.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

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


class Totals(Protocol):
    """The collection statistics BM25 needs: live chunks, their summed lengths (in terms), and how many
    hold no term at all."""

    chunks: int
    length: int
    empty: int


@dataclass(frozen=True)
class Part:
    """One summand of a question's BM25: one of its terms (counted as often as the question repeats it),
    or one of its concepts (its alternatives the live chunks can match, as term ids and weights). Term ids
    are whatever the index numbers its terms by: the local index's ids, or positions in a list."""

    term_ids: tuple[int, ...]
    postings: int
    """The live postings of its terms: what reading it in full costs."""
    df: int
    """The chunks it matches: a term's document frequency; for a concept, those holding any of its
    alternatives (or an estimate, where an index cannot afford the exact count)."""
    times: int = 1
    concept: Concept | None = None
    alternatives: tuple[tuple[tuple[int, ...], float], ...] = ()


def term_scores(totals: Totals, part: Part, tf: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A term's BM25 in chunks of these frequencies and lengths. bm25s indexes a chunk without terms as
    [""], of length 1, hence the mean length."""
    tf = tf.astype(np.float64)
    average = (totals.length + totals.empty) / totals.chunks
    return part.times * idf(totals.chunks, part.df) * tf / (tf + K1 * (1 - B + B * lengths / average))


def concept_scores(totals: Totals, matching: int, frequency: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A concept's BM25 in chunks of these (weighted) frequencies and lengths (Pirkola's structured query:
    the concept counts as one term): lengths as they are, their mean taken as at least 1."""
    frequency = frequency.astype(np.float64)
    norm = K1 * (1 - B + B * lengths / max(totals.length / totals.chunks, 1.0))
    return idf(totals.chunks, matching) * frequency / (frequency + norm)


def concept_frequency(
    frequencies: np.ndarray, column: Mapping[int, int], alternatives: Sequence[tuple[tuple[int, ...], float]]
) -> np.ndarray:
    """A concept's frequency in some chunks, from their terms' frequencies (a matrix, chunk by term, whose
    columns `column` gives by term id): the weighted sum of its alternatives', an alternative of several
    terms counting as often as its rarest term."""
    frequency = np.zeros(frequencies.shape[0], dtype=np.float64)
    for alternative, weight in alternatives:
        frequency += weight * frequencies[:, [column[term_id] for term_id in alternative]].min(axis=1)
    return frequency


def part_scores(
    totals: Totals,
    parts: Sequence[Part],
    frequencies: np.ndarray,
    column: Mapping[int, int],
    lengths: np.ndarray,
) -> np.ndarray:
    """The parts' summed BM25 in each of some chunks, given the chunks' frequencies of the parts' terms (a
    matrix, chunk by term, whose columns `column` gives by term id) and their lengths."""
    scores = np.zeros(frequencies.shape[0], dtype=np.float64)
    for part in parts:
        if part.concept is None:
            scores += term_scores(totals, part, frequencies[:, column[part.term_ids[0]]], lengths)
        else:
            frequency = concept_frequency(frequencies, column, part.alternatives)
            scores += concept_scores(totals, part.df, frequency, lengths)
    return scores


def match_scores(
    texts: Sequence[str],
    keywords: Keywords,
    chunks: int,
    term_frequency: Callable[[str], int],
    concept_matching: Callable[[Concept], int],
) -> np.ndarray:
    """How much of the keywords each text holds, with the index's idf (over `chunks` live chunks; a term's
    document frequency by `term_frequency`, 0 for a term no live chunk holds; a concept's matching chunks by
    `concept_matching`): for texts too short for BM25's statistics, such as the sentences of a passage. A
    term counts as found when the text contains it, which spares segmenting every text per question."""
    lowered = [text.lower() for text in texts]
    everything = "\n".join(lowered)
    total = np.zeros(len(lowered), dtype=np.float32)
    for term in set(keywords.terms):
        matching = term_frequency(term)
        if matching:
            total += np.array([term in text for text in lowered]) * idf(chunks, matching)
    for concept in keywords.concepts:
        matching = concept_matching(concept)
        if not matching:
            continue
        best = best_alternative_weights(lowered, everything, concept, lambda term: term_frequency(term) > 0)
        total += best * idf(chunks, matching)
    return total


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
