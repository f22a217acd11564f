"""Whether anything in the index answers a question: the evidence a search gathers, and how it is weighed.

A cosine says how close the best passage is, not whether it holds what was asked: a question about a
company, a month or a figure the collection does not cover is still close to the passages on its topic
(docs/EVAL.md, "Answerable"). So the verdict also asks how much of the question the index and its top
passages hold, word by word, with the index's own document frequencies: measures relative to the collection,
which carry over to other collections where cosine levels do not. A linear score weighs them, its
coefficients settings (index.search.RankingWeights); `scripts/fit_answerable.py` fits them as a logistic
regression. Measured so far (docs/EVAL.md), the words did not carry over from the tuning questions to the
check questions, so the defaults weigh relevance and margin alone, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from typing import NamedTuple

import numpy as np

from index.backend import Store
from index.lexical import Keywords, idf
from index.text import english_names, has_chinese, is_cjk, question_terms
from index.translation import Translator

# The chunk whose relevance the top passage's is compared with in the margin.
MARGIN_RANK = 10
# How many of the first passages the question's words are looked for in, together.
COVERAGE_PASSAGES = 3


@dataclass(frozen=True)
class Evidence:
    """What a search knows about whether its top passage answers the question (the model's inputs)."""

    relevance: float
    """The top passage's dense relevance (cosine blend of the chunk and its closest sentence)."""
    margin: float
    """How far that relevance stands above the chunk ranked `MARGIN_RANK`th by relevance."""
    cjk: float
    """1 for a question mainly in Chinese script, else 0: cross-lingual cosines run lower."""
    coverage: float
    """Share of the question's words that the top passage (with its title) holds, each weighted by its idf
    in the index, a word no chunk holds at the highest idf there is; 1 when the question has no word."""
    coverage_top: float
    """The same for the first `COVERAGE_PASSAGES` passages together."""
    coverage_sentence: float
    """The same for the top passage's sentence that holds most of them (with the article's title): the
    words a question puts together (a company, a quarter, a figure) stand together where it is answered."""
    missing: float
    """Share of the question's content words that no indexed chunk holds (nor any of their translations):
    a company, month or product the collection never names."""
    unheld: float
    """The idf of the rarest question word the top passage lacks, over the highest idf there is (0 when it
    lacks none): one specific word missing (a quarter, a company) weighs more than several common ones."""

    def vector(self) -> np.ndarray:
        return np.array(astuple(self), dtype=np.float64)


FEATURES: tuple[str, ...] = tuple(field.name for field in fields(Evidence))


def question_words(question: str, chinese_articles: bool, translator: Translator | None) -> list[Keywords]:
    """The question's content words, one `Keywords` each, as keyword search would look them up: a word of
    the articles' script as a term, an English word over Chinese articles as a concept of the word as written
    and its dictionary translations (an English name in a Chinese question too: "Qualcomm的…" over 高通)."""
    if chinese_articles and translator is not None:
        if not is_cjk(question):
            return [Keywords(concepts=[c]) for c in translator.translate(question, with_source_words=True)]
        names = {name.lower() for name in english_names(question)}
        words: list[Keywords] = []
        for term in question_terms(question):
            if term in names:
                words.extend(
                    Keywords(concepts=[c]) for c in translator.translate(term, with_source_words=True)
                )
            else:
                words.append(Keywords(terms=[term]))
        return words
    # Without a translator, or over articles in Latin script: the question's terms of the articles' script.
    return [
        Keywords(terms=[term])
        for term in question_terms(question)
        if chinese_articles or not has_chinese(term)
    ]


class WordEvidence(NamedTuple):
    """The features of `Evidence` that come from the question's words."""

    coverage: float
    coverage_top: float
    coverage_sentence: float
    missing: float
    unheld: float


# What a question with no word gets: nothing against it.
NEUTRAL_WORDS = WordEvidence(coverage=1.0, coverage_top=1.0, coverage_sentence=1.0, missing=0.0, unheld=0.0)
WORD_FEATURES: tuple[str, ...] = WordEvidence._fields


def word_evidence(
    store: Store, words: Sequence[Keywords], passages: Sequence[str], sentences: Sequence[str]
) -> WordEvidence:
    """How much of the question's words the index, its first `passages` (the top passage first) and the
    top passage's `sentences` hold, each word scored by the store with the index's idf."""
    if not words or not passages:
        return NEUTRAL_WORDS
    # Each word is also scored in a text holding all its forms: its idf if some chunk holds it, else 0.
    scored = np.array(
        [store.keyword_matches([_forms(word), *passages, *sentences], word) for word in words],
        dtype=np.float64,
    )  # words × (forms, passages …, sentences …)
    table = scored > 0
    known = table[:, 0]
    # A word no chunk holds is as rare as can be: what the question asks about is not in the collection.
    rarest = idf(max(store.counts()[1], 1), 0)
    weights = np.where(known, scored[:, 0], rarest)
    total = float(weights.sum())
    held_first = table[:, 1]
    held_any = table[:, 1 : 1 + len(passages)].any(axis=1)
    in_sentences = table[:, 1 + len(passages) :]
    best_sentence = float((weights @ in_sentences).max(initial=0.0))
    return WordEvidence(
        coverage=float(weights[held_first].sum() / total),
        coverage_top=float(weights[held_any].sum() / total),
        coverage_sentence=best_sentence / total,
        missing=float(1.0 - known.mean()),
        unheld=float(weights[~held_first].max(initial=0.0) / rarest),
    )


def _forms(word: Keywords) -> str:
    alternatives = [term for concept in word.concepts for alt in concept.alternatives for term in alt.terms]
    return "\n".join([*word.terms, *alternatives])


def margin(relevance: np.ndarray, top: int) -> float:
    """The top passage's relevance minus that of the chunk ranked `MARGIN_RANK`th by relevance (the least
    relevant when there are fewer). Cosine levels shift from one collection to another while the margin is
    relative to the question's own neighbours, so a threshold calibrated on one collection stays closer to
    right on others with it (docs/EVAL.md, "Answerable")."""
    reference = (
        np.partition(relevance, -MARGIN_RANK)[-MARGIN_RANK]
        if relevance.size >= MARGIN_RANK
        else relevance.min()
    )
    return float(relevance[top] - reference)


def linear_score(evidence: Evidence, intercept: float, coefficients: Sequence[float]) -> float:
    """The intercept plus each feature times its coefficient: for a fitted logistic regression, the log-odds
    that the question is answerable; for the defaults, relevance plus twice the margin."""
    return intercept + float(np.dot(evidence.vector(), np.asarray(coefficients, dtype=np.float64)))
