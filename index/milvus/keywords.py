"""Keyword search on the Milvus backend, scored as the local keyword index scores it.

Milvus's BM25 takes one flat query: every alternative of a translated concept would count as a term of its
own, so a word with many translations outweighs one with a single translation (English lexical hit@1 on
seed_dev fell from 0.731 to 0.346, docs/EVAL.md). Here Milvus's BM25 only finds the chunks that hold each
term of the question (one search, a query per term); CiteQA then reads those chunks' stored terms (the
`keywords` of their rows) and scores them with the local index's arithmetic (index.lexical: each concept
one term, Pirkola's structured query). The statistics come from Milvus-held data too: the chunk count and
summed lengths from the committed document rows, a term's document frequency from the chunks that hold it.

Exact while the chunks a question matches (in scope) are at most SCORED_MAX and no term matches more than
a search returns (index.milvus.client.MAX_LIMIT): the same top, mean and spread as the local index. Past
that, the SCORED_MAX chunks with the highest bound (each part they match counting its idf) are scored, the
others' scores are estimated from their bounds, and the top says it is not exact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from index.lexical import Concept, Keywords, Part, idf, match_scores, part_scores
from index.storage.keywords import KeywordTop, best_scored, member

# Chunks matching a question whose stored terms are read to score each exactly (and, when looking for
# which chunks hold a term, to check BM25's matches: see `checked`).
SCORED_MAX = 8192


@dataclass(frozen=True)
class Totals:
    """BM25's collection statistics (index.lexical.Totals): live chunks, their summed lengths in terms, and
    how many hold no term."""

    chunks: int
    length: int
    empty: int


@dataclass(frozen=True)
class Holders:
    """The live chunks holding a term, ids ascending."""

    ids: np.ndarray
    exact: bool
    """False: they are BM25's matches, not checked (too many, or more than a search returns)."""


ChunkTerms = Callable[[np.ndarray], Sequence[Counter[str]]]
"""The stored terms of some chunks, with their frequencies, in the order given."""


def chunk_terms_of(keywords: str) -> Counter[str]:
    """A chunk's terms from its `keywords` field: index.text.terms joined by spaces (a term holds a letter,
    digit or CJK character, never a space alone)."""
    return Counter(term for term in keywords.split(" ") if term)


def checked(
    matches: Mapping[str, np.ndarray], complete: Mapping[str, bool], chunk_terms: ChunkTerms
) -> dict[str, Holders]:
    """The holders of some terms, from BM25's live matches of each (`complete`: fewer than a search returns).
    Milvus's analyzer cuts a query term as it cut the term in a chunk's `keywords`, so the matches hold every
    chunk holding it; they may hold more, where the cut splits the term (any of its pieces matches). The
    matches are checked against the chunks' own terms, unless they are more than SCORED_MAX."""
    union = np.unique(np.concatenate([np.zeros(0, dtype=np.int64), *matches.values()]))
    if union.size > SCORED_MAX:
        return {term: Holders(ids, exact=False) for term, ids in matches.items()}
    held = dict(zip(union.tolist(), chunk_terms(union), strict=True))
    return {
        term: Holders(
            np.array([i for i in ids.tolist() if term in held[i]], dtype=np.int64), exact=complete[term]
        )
        for term, ids in matches.items()
    }


def wanted_terms(keywords: Keywords) -> list[str]:
    """Every term the keywords may score: the question's and its concepts' alternatives'."""
    found = [term for term in keywords.terms if term]
    found += [term for concept in keywords.concepts for alt in concept.alternatives for term in alt.terms]
    return list(dict.fromkeys(term for term in found if term))


def concept_holders(concept: Concept, holders: Mapping[str, Holders]) -> np.ndarray:
    """The chunks holding any alternative of a concept (all of an alternative's terms), ids ascending."""
    found = [
        _intersection([holders[term].ids for term in alt.terms])
        for alt in concept.alternatives
        if alt.terms and all(holders[term].ids.size for term in alt.terms)
    ]
    return np.unique(np.concatenate([np.zeros(0, dtype=np.int64), *found]))


def top(
    keywords: Keywords,
    limit: int,
    totals: Totals,
    holders: Mapping[str, Holders],
    chunk_terms: ChunkTerms,
    scope: np.ndarray | None,
    asked: np.ndarray,
) -> KeywordTop:
    """The `limit` chunks (in `scope`, ascending; None: every chunk) the keywords score highest, the scores of
    those `asked` about (ascending), and BM25's mean and spread over the scope, as
    index.storage.keywords.KeywordIndex.top gives them. `holders`: those of every term `wanted_terms` names."""
    in_scope = totals.chunks if scope is None else int(scope.size)
    terms, parts, matched = _parts(keywords, holders)
    if not parts or not in_scope:
        return KeywordTop.empty()
    if scope is not None:
        matched = matched[member(matched, scope)]
        asked = asked[member(asked, scope)]
    exact = matched.size <= SCORED_MAX and all(holders[term].exact for term in terms)
    scored, rest, bounds = matched, np.zeros(0, dtype=np.int64), np.zeros(0)
    if matched.size > SCORED_MAX:
        bound = _bounds(totals, parts, terms, holders, matched)
        first = np.sort(np.argsort(-bound, kind="stable")[:SCORED_MAX])
        scored = np.union1d(matched[first], asked[member(asked, matched)])
        outside = ~member(matched, scored)
        rest, bounds = matched[outside], bound[outside]
    column = {position: position for position in range(len(terms))}
    frequencies, lengths = _frequencies(chunk_terms(scored), terms)
    sums = part_scores(totals, parts, frequencies, column, lengths).astype(np.float32)
    keep = sums > 0
    ids, sums = scored[keep], sums[keep]
    total, squares = float(sums.sum(dtype=np.float64)), float((sums.astype(np.float64) ** 2).sum())
    if rest.size:
        # The chunks not scored count by their bounds, scaled as the scored ones' scores are to theirs.
        scored_bounds = _bounds(totals, parts, terms, holders, ids)
        estimate = bounds * (total / max(float(scored_bounds.sum()), 1e-12))
        total += float(estimate.sum())
        squares += float((estimate**2).sum())
    chosen, scores = best_scored(ids, sums, limit, asked)
    return KeywordTop.of(chosen, scores, total, squares, in_scope, exact=exact)


def matches(
    texts: Sequence[str], keywords: Keywords, totals: Totals, holders: Mapping[str, Holders]
) -> np.ndarray:
    """How much of the keywords each text holds, with the index's idf (index.lexical.match_scores)."""
    return match_scores(
        texts,
        keywords,
        totals.chunks,
        lambda term: int(holders[term].ids.size) if term in holders else 0,
        lambda concept: int(concept_holders(concept, holders).size),
    )


def _parts(keywords: Keywords, holders: Mapping[str, Holders]) -> tuple[list[str], list[Part], np.ndarray]:
    """The terms scored (a term's id is its position), the summands of the keywords' BM25 that live chunks
    can match (index.storage.keywords.KeywordIndex._parts, from the holders), and every chunk they match."""
    terms: dict[str, int] = {}
    parts: list[Part] = []
    matched: list[np.ndarray] = []

    def term_id(term: str) -> int:
        return terms.setdefault(term, len(terms))

    # bm25s: a term repeated in the question counts as often; one no live chunk holds counts nothing.
    for term, count in Counter(term for term in keywords.terms if term).items():
        found = holders[term].ids
        if found.size:
            parts.append(Part((term_id(term),), int(found.size), df=int(found.size), times=count))
            matched.append(found)
    for concept in keywords.concepts:
        usable = [
            alt for alt in concept.alternatives if alt.terms and all(holders[t].ids.size for t in alt.terms)
        ]
        if not usable:
            continue
        alternatives = tuple((tuple(term_id(term) for term in alt.terms), alt.weight) for alt in usable)
        found = concept_holders(concept, holders)
        parts.append(
            Part(
                tuple(sorted({i for ids, _ in alternatives for i in ids})),
                sum(int(holders[term].ids.size) for alt in usable for term in alt.terms),
                df=int(found.size),
                concept=concept,
                alternatives=alternatives,
            )
        )
        matched.append(found)
    every = np.unique(np.concatenate([np.zeros(0, dtype=np.int64), *matched]))
    return list(terms), parts, every


def _frequencies(counts: Sequence[Counter[str]], terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A matrix of the terms' frequencies, chunk by term, and the chunks' lengths."""
    frequencies = np.array([[count.get(term, 0) for term in terms] for count in counts], dtype=np.float64)
    lengths = np.array([sum(count.values()) for count in counts], dtype=np.float64)
    return frequencies.reshape(len(counts), len(terms)), lengths


def _bounds(
    totals: Totals,
    parts: Sequence[Part],
    terms: Sequence[str],
    holders: Mapping[str, Holders],
    ids: np.ndarray,
) -> np.ndarray:
    """The most each chunk can score: each part it matches counts its idf (times its repeats)."""
    bound = np.zeros(ids.size, dtype=np.float64)
    for part in parts:
        if part.concept is None:
            found = holders[terms[part.term_ids[0]]].ids
        else:
            found = concept_holders(part.concept, holders)
        bound += member(ids, found) * part.times * idf(totals.chunks, part.df)
    return bound


def _intersection(lists: Sequence[np.ndarray]) -> np.ndarray:
    found = lists[0]
    for other in lists[1:]:
        found = np.intersect1d(found, other, assume_unique=True)
    return found
