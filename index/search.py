"""Question -> ranked passages with citations, the sentence that best answers, and whether any does.

Three retrieval modes, each measured in docs/EVAL.md:
- `dense`: the question's embedding against each chunk's and against its closest sentence's
  (small units matched, the whole chunk returned);
- `lexical`: BM25 over jieba words of the chunk with its article's title and section; an English
  question over Chinese articles looks for each of its words and their Chinese translations
  (index.translation);
- `hybrid` (default): both, each z-normalised over the candidate chunks, then weighted: by `lexical`
  when the question is in the script of the indexed words, by `translated` for an English question over
  Chinese articles, whose keywords are then the translations alone (measured best in docs/EVAL.md).

Nothing scans every chunk: each signal gives the store's top candidates (the chunks closest to the
question, the chunks of the closest sentences, the chunks BM25 scores highest), and every signal is then
computed exactly for the union of those candidates, which is what ranking, normalisation and confidence
see (docs/EVAL.md, "Candidates").
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from citeqa.errors import InvalidQuestion, UnknownSearchMode
from index.answerable import (
    COVERAGE_PASSAGES,
    FEATURES,
    NEUTRAL_WORDS,
    WORD_FEATURES,
    Evidence,
    WordEvidence,
    linear_score,
    margin,
    question_words,
    word_evidence,
)
from index.backend import Store
from index.lexical import Keywords
from index.storage.documents import ChunkHit
from index.storage.keywords import KeywordTop
from index.text import english_names, is_cjk, question_terms, terms
from index.translation import Translator
from index.vectors import TextEncoder

SearchMode = Literal["hybrid", "dense", "lexical"]
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)
DEFAULT_MODE: SearchMode = "hybrid"

# What one question may ask, wherever it comes from (API, CLI, chat, eval).
MAX_QUESTION_CHARS = 2000
MAX_TOP_K = 50


def check_question(question: str) -> str:
    """The question without surrounding blanks; InvalidQuestion if nothing is left or it is too long."""
    stripped = question.strip()
    if not stripped:
        raise InvalidQuestion("The question is blank: ask with at least one visible character.")
    if len(stripped) > MAX_QUESTION_CHARS:
        raise InvalidQuestion(
            f"The question has {len(stripped)} characters; at most {MAX_QUESTION_CHARS} are searched. "
            "Ask a shorter question."
        )
    return stripped


def check_mode(mode: str) -> SearchMode:
    """`mode` if it is a search mode, else UnknownSearchMode naming the modes there are."""
    if mode not in SEARCH_MODES:
        raise UnknownSearchMode(f"Unknown search mode '{mode}'; choose one of {', '.join(SEARCH_MODES)}.")
    return mode  # type: ignore[return-value]


class SearchFilters(BaseModel):
    """Restricts a search to some sections and/or documents; empty lists mean no restriction."""

    sections: list[str] = Field(default_factory=list)
    doc_ids: list[str] = Field(default_factory=list)


class Citation(BaseModel):
    """Where a passage stands: `document.text[char_start:char_end] == passage.text`."""

    doc_id: str
    title: str
    section: str | None
    page: int | None
    source: str
    char_start: int
    char_end: int


class Highlight(BaseModel):
    """The sentence of a passage that best matches the question: `passage.text[char_start:char_end]`."""

    char_start: int
    char_end: int


class Passage(BaseModel):
    rank: int = Field(ge=1)
    score: float = Field(description="Ranking score of the mode used (hybrid: weighted z-scores).")
    text: str
    citation: Citation
    highlight: Highlight | None = None


class Answer(BaseModel):
    """The sentence of the top passage that best matches the question, cited like a passage."""

    text: str
    citation: Citation


class SearchResult(BaseModel):
    question: str
    mode: SearchMode = DEFAULT_MODE
    answerable: bool = Field(
        default=True,
        description="False when no passage is similar enough to the question to hold an answer, or when the "
        "question holds no content word (`?`, `the`, an emoji): similarity to nothing in particular is no answer.",
    )
    confidence: float = Field(
        default=0.0,
        description="The answerable score, compared with the answerable threshold: by default the top passage's "
        "dense relevance plus twice its margin over the chunk ranked 10th by relevance.",
    )
    answer: Answer | None = None
    passages: list[Passage]
    took_ms: float


class RankingWeights(BaseModel):
    """How the signals are combined; the defaults are the best measured on the dev set (docs/EVAL.md)."""

    model_config = ConfigDict(extra="forbid")

    sentence: float = Field(
        default=0.5, ge=0, le=1, description="Share of the closest sentence in dense relevance."
    )
    lexical: float = Field(
        default=0.5, ge=0, description="Weight of BM25's z-score against dense relevance's."
    )
    translated: float = Field(
        default=0.2,
        ge=0,
        description="Weight of BM25's z-score for an English question translated to Chinese keywords.",
    )
    highlight_keywords: float = Field(
        default=1.0,
        ge=0,
        description="Weight of the question's keywords found in a sentence against its cosine, in choosing "
        "the sentence a passage highlights.",
    )
    # The answerable verdict: a linear score of the search's `Evidence` (index.answerable) held to a threshold
    # per script. The defaults are the rule of docs/EVAL.md "Answerable": relevance plus twice the margin,
    # thresholds calibrated on seed_dev so that at most 5% of its answerable questions fall below
    # (scripts/calibrate_answerable.py). A logistic regression over the words' features
    # (`scripts/fit_answerable.py`, docs/EVAL.md "Answerable: a model over more than cosine") won the
    # cross-validation on the tuning questions but flagged fewer unanswerable check questions than this rule,
    # so it is not the default; its coefficients are there, to be set through these settings.
    answerable_intercept: float = Field(default=0.0, description="Answerable score: intercept.")
    answerable_relevance: float = Field(
        default=1.0, description="Answerable score: coefficient of the top passage's dense relevance."
    )
    answerable_margin: float = Field(
        default=2.0,
        description="Answerable score: coefficient of the top passage's relevance margin over the 10th most "
        "relevant chunk.",
    )
    answerable_cjk: float = Field(
        default=0.0,
        description="Answerable score: coefficient of a question mainly in Chinese script (1, else 0).",
    )
    answerable_coverage: float = Field(
        default=0.0,
        description="Answerable score: coefficient of the idf-weighted share of the question's words that the "
        "top passage holds.",
    )
    answerable_coverage_top: float = Field(
        default=0.0,
        description="Answerable score: coefficient of the same share held by the first three passages together.",
    )
    answerable_coverage_sentence: float = Field(
        default=0.0,
        description="Answerable score: coefficient of the same share held by the top passage's best sentence.",
    )
    answerable_missing: float = Field(
        default=0.0,
        description="Answerable score: coefficient of the share of the question's content words no chunk holds.",
    )
    answerable_unheld: float = Field(
        default=0.0,
        description="Answerable score: coefficient of the idf of the rarest question word the top passage lacks "
        "(over the highest idf).",
    )
    # Cross-lingual pairs score lower cosines than same-language ones, so a question in Latin script
    # (English) against the Chinese sample gets its own threshold.
    answerable_threshold_cjk: float = Field(
        default=0.940,
        description="Least answerable score at which a question in Chinese script counts as answerable.",
    )
    answerable_threshold_other: float = Field(
        default=0.787,
        description="Least answerable score at which a question in other scripts counts as answerable.",
    )

    def answerable_threshold(self, question: str) -> float:
        return self.answerable_threshold_cjk if is_cjk(question) else self.answerable_threshold_other

    def weighs_words(self) -> bool:
        """Whether any feature of the question's words counts in the answerable score."""
        return any(getattr(self, f"answerable_{name}") != 0 for name in WORD_FEATURES)

    def answerable_coefficients(self) -> tuple[float, ...]:
        """The model's coefficients in the order of index.answerable.FEATURES."""
        return tuple(getattr(self, f"answerable_{name}") for name in FEATURES)


# Candidates ranked beyond top_k, so that collapsing near-duplicates still leaves top_k passages.
_OVERFETCH = 3
# Passages sharing this much of their character bigrams say the same thing; one is enough.
_NEAR_DUPLICATE = 0.8


@dataclass(frozen=True)
class CandidateCounts:
    """How many candidates each signal gives a question (docs/EVAL.md, "Candidates"): every chunk whose
    signals are computed comes from one of these lists, so they bound a search's cost at any index size."""

    chunks: int = 200
    """The chunks closest to the question."""
    sentences: int = 400
    """The sentences closest to the question, each bringing its chunk."""
    keywords: int = 200
    """The chunks BM25 scores highest."""
    background: int = 512
    """Chunks drawn uniformly from those in scope, whose dense relevance stands for that of every chunk in
    the z-scores (BM25's background is exact: it is 0 wherever it does not match). All of them in a
    collection this small, as when every chunk was scored."""


@dataclass(frozen=True)
class ChunkScores:
    """Every candidate chunk's similarities to one question, aligned by position (chunk ids ascending)."""

    chunk_ids: np.ndarray
    dense: np.ndarray
    """Cosine of the question and the whole chunk."""
    sentence: np.ndarray
    """Cosine of the question and the chunk's closest sentence (the chunk's own cosine if it has none)."""
    best_sentence: np.ndarray
    """Id of that closest sentence, -1 if none."""
    lexical: np.ndarray
    """BM25 of the question's keywords against the chunk's terms (with its article's title and section)."""
    relevance_background: tuple[float, float] | None = None
    """Mean and spread of dense relevance over every chunk in scope (estimated on a uniform sample); None:
    those of the candidates."""
    lexical_background: tuple[float, float] | None = None
    """Mean and spread of BM25 over every chunk in scope; None: those of the candidates."""

    @classmethod
    def empty(cls) -> ChunkScores:
        nothing = np.zeros(0, dtype=np.float32)
        return cls(np.zeros(0, dtype=np.int64), nothing, nothing, np.zeros(0, dtype=np.int64), nothing)


class Searcher:
    """Finds the passages of an index that answer a question."""

    def __init__(
        self,
        store: Store,
        encoder: TextEncoder,
        weights: RankingWeights | None = None,
        translator: Translator | None = None,
        candidates: CandidateCounts | None = None,
    ) -> None:
        """Without a translator, English questions over Chinese articles are matched by embeddings only."""
        self.store = store
        self.encoder = encoder
        self.weights = weights or RankingWeights()
        self.translator = translator
        self.candidates = candidates or CandidateCounts()

    def search(
        self,
        question: str,
        top_k: int = 5,
        filters: SearchFilters | None = None,
        mode: SearchMode = DEFAULT_MODE,
    ) -> SearchResult:
        """The `top_k` passages that best answer `question` (InvalidQuestion if it is blank or too long,
        or `top_k` is outside 1–MAX_TOP_K), read from one snapshot of the index: writes wait for the
        search's reads (not for the question's embedding), and a search never sees half a write.
        IndexModelMismatch if another process re-embedded the index with another model meanwhile."""
        return self._search(question, top_k, filters, mode, every_feature=False)[0]

    def search_with_evidence(
        self,
        question: str,
        top_k: int = 5,
        filters: SearchFilters | None = None,
        mode: SearchMode = DEFAULT_MODE,
    ) -> tuple[SearchResult, Evidence | None]:
        """`search`, with the evidence of its answerable verdict, every feature computed whether the settings
        weigh it or not (None when nothing was found): what scripts/fit_answerable.py fits coefficients on."""
        return self._search(question, top_k, filters, mode, every_feature=True)

    def _search(
        self, question: str, top_k: int, filters: SearchFilters | None, mode: SearchMode, every_feature: bool
    ) -> tuple[SearchResult, Evidence | None]:
        started = time.perf_counter()
        question, mode = check_question(question), check_mode(mode)
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidQuestion(f"top_k is {top_k}; ask for 1 to {MAX_TOP_K} passages.")
        filters = filters or SearchFilters()
        # Embedding is the slow part and needs no index: done before the snapshot, it does not hold writers.
        query_vector = self.encoder.encode_queries([question])[0]
        # Every read of the store comes from one snapshot: a document deleted or replaced meanwhile is
        # either wholly there or wholly gone, never scored in one read and missing from the next.
        with self.store.snapshot():
            keywords, lexical_weight = self.keywords(question, mode)
            # Keywords that do not count (an untranslated English question) bring no candidates either.
            counted = keywords if lexical_weight > 0 or mode == "lexical" else Keywords()
            scores = self._candidates(query_vector, counted, filters)
            ranking = self._rank(scores, mode, lexical_weight)
            order = np.argsort(-ranking, kind="stable")[: top_k * _OVERFETCH + 5]
            hits = self.store.chunk_hits(scores.chunk_ids[order], ranking[order])
            kept: list[tuple[int, ChunkHit]] = []
            kept_bigrams: list[set[str]] = []
            for position, hit in zip(order, hits, strict=True):
                bigrams = _bigrams(hit.chunk.text)
                if not any(_near_duplicates(bigrams, other) for other in kept_bigrams):
                    kept.append((int(position), hit))
                    kept_bigrams.append(bigrams)
                if len(kept) == top_k:
                    break
            closest = [int(scores.best_sentence[position]) for position, _ in kept]
            # Keywords that do not count in the ranking (an untranslated English question) do not pick
            # sentences.
            picking = keywords if lexical_weight > 0 else Keywords()
            sentence_ids = self._answering_sentences(query_vector, picking, [hit for _, hit in kept], closest)
            spans = self.store.sentence_spans(sentence_ids)
            # Independent of top_k and of near-duplicates: the verdict is the same however many are asked.
            evidence = (
                self._evidence(
                    question,
                    scores,
                    int(order[0]),
                    hits[:COVERAGE_PASSAGES],
                    words=every_feature or self.weights.weighs_words(),
                )
                if kept
                else None
            )
        passages = [
            _passage(hit, rank, spans.get(sentence_id))
            for rank, ((_, hit), sentence_id) in enumerate(zip(kept, sentence_ids, strict=True), start=1)
        ]
        confidence = self._confidence(evidence) if evidence is not None else 0.0
        answerable = (
            evidence is not None
            and bool(question_terms(question))
            and confidence >= self.weights.answerable_threshold(question)
        )
        took_ms = (time.perf_counter() - started) * 1000
        result = SearchResult(
            question=question,
            mode=mode,
            answerable=answerable,
            confidence=round(confidence, 6),
            answer=_answer(passages[0], spans.get(sentence_ids[0])) if answerable else None,
            passages=passages,
            took_ms=round(took_ms, 2),
        )
        return result, evidence

    def _candidates(
        self, query_vector: np.ndarray, keywords: Keywords, filters: SearchFilters
    ) -> ChunkScores:
        """The union of each signal's candidates (within the filters), with every signal computed for each,
        and each signal's background over every chunk in scope."""
        store = self.store
        allowed = store.allowed_chunks(filters.sections, filters.doc_ids)
        if allowed is not None and allowed.size == 0:
            return ChunkScores.empty()
        counts = self.candidates
        dense_ids, sentence_chunks = store.nearest_units(
            query_vector, counts.chunks, counts.sentences, allowed
        )
        nearest = np.union1d(dense_ids, sentence_chunks)
        found = (
            store.keyword_top(keywords, counts.keywords, allowed, also=nearest)
            if keywords.terms or keywords.concepts
            else KeywordTop.empty()
        )
        chunk_ids = np.union1d(nearest, found.ids)
        sample, in_scope = store.chunk_sample(counts.background, allowed)
        if in_scope == 0:
            return ChunkScores.empty()

        # The dense signals of the candidates and of the sample, computed together.
        scored = np.union1d(chunk_ids, sample)
        dense = store.chunk_vectors(scored) @ query_vector
        # A chunk takes its closest sentence's cosine, or its own when it has no sentence.
        sentence = dense.copy()
        best_sentence = np.full(scored.size, -1, dtype=np.int64)
        sentences = store.chunk_sentences(scored, spans=False)
        if sentences.ids.size:
            cosines = sentences.vectors @ query_vector
            starts = sentences.group_starts()
            # Within each chunk's group, the closest sentence first (ties: the earlier one).
            closest = np.lexsort((-cosines, sentences.chunk_ids))[starts]
            positions = np.searchsorted(scored, sentences.chunk_ids[starts])
            sentence[positions], best_sentence[positions] = cosines[closest], sentences.ids[closest]
        candidate = np.searchsorted(scored, chunk_ids)
        background_relevance = self._blend(dense, sentence)[np.searchsorted(scored, sample)]
        lexical = np.zeros(chunk_ids.size, dtype=np.float32)
        lexical[np.searchsorted(chunk_ids, found.ids)] = found.scores
        return ChunkScores(
            chunk_ids,
            dense[candidate].astype(np.float32),
            sentence[candidate].astype(np.float32),
            best_sentence[candidate],
            lexical,
            relevance_background=(float(background_relevance.mean()), float(background_relevance.std())),
            lexical_background=(found.mean, found.spread),
        )

    def _relevance(self, scores: ChunkScores) -> np.ndarray:
        """Dense relevance: the chunk's cosine blended with that of its closest sentence."""
        return self._blend(scores.dense, scores.sentence)

    def _blend(self, dense: np.ndarray, sentence: np.ndarray) -> np.ndarray:
        share = self.weights.sentence
        return (1 - share) * dense + share * sentence

    def _answering_sentences(
        self, query_vector: np.ndarray, keywords: Keywords, hits: list[ChunkHit], closest: list[int]
    ) -> list[int]:
        """Per passage, the sentence to highlight: the one whose cosine with the question plus
        `highlight_keywords` times the question's keywords it holds (both z-scored among the passage's
        sentences) is highest. By cosine alone it is `closest`; keywords pick the sentence holding the
        answer more often (docs/EVAL.md, "Highlight")."""
        weight = self.weights.highlight_keywords
        if weight == 0 or not (keywords.terms or keywords.concepts):
            return closest
        sentences = self.store.chunk_sentences([hit.chunk_id for hit in hits])
        groups = [sentences.of(hit.chunk_id) for hit in hits]
        assert sentences.starts is not None and sentences.ends is not None  # asked for with their spans
        texts = [
            hit.chunk.text[start - hit.chunk.char_start : end - hit.chunk.char_start]
            for hit, group in zip(hits, groups, strict=True)
            for start, end in zip(sentences.starts[group], sentences.ends[group], strict=True)
        ]
        # One call for every sentence: each concept's document frequency is looked up once.
        matches = self.store.keyword_matches(texts, keywords)
        cosines = sentences.vectors @ query_vector if sentences.ids.size else sentences.ids
        chosen, offset = [], 0
        for group, fallback in zip(groups, closest, strict=True):
            size = group.stop - group.start
            if size == 0:
                chosen.append(fallback)
                continue
            score = _z(cosines[group]) + weight * _z(matches[offset : offset + size])
            chosen.append(int(sentences.ids[group][int(np.argmax(score))]))
            offset += size
        return chosen

    def _confidence(self, evidence: Evidence) -> float:
        """The answerable score of the evidence (index.answerable.linear_score)."""
        weights = self.weights
        return linear_score(evidence, weights.answerable_intercept, weights.answerable_coefficients())

    def _evidence(
        self, question: str, scores: ChunkScores, top: int, first: list[ChunkHit], *, words: bool
    ) -> Evidence:
        """What the verdict weighs (index.answerable.Evidence): the top passage's relevance and margin, and
        how much of the question's words the index and the `first` passages hold. Without `words`, those
        are left neutral (NEUTRAL_WORDS): they cost a keyword lookup per word, for nothing when their
        coefficients are 0, as by default."""
        relevance = self._relevance(scores)
        found = self._word_evidence(question, first) if words else NEUTRAL_WORDS
        return Evidence(
            relevance=float(relevance[top]),
            margin=margin(relevance, top),
            cjk=float(is_cjk(question)),
            coverage=found.coverage,
            coverage_top=found.coverage_top,
            coverage_sentence=found.coverage_sentence,
            missing=found.missing,
            unheld=found.unheld,
        )

    def _word_evidence(self, question: str, first: list[ChunkHit]) -> WordEvidence:
        words = question_words(question, self.store.vocabulary_is_chinese(), self.translator)
        passages = [f"{hit.title}\n{hit.section or ''}\n{hit.chunk.text}" for hit in first]
        top_hit = first[0]
        sentences = self.store.chunk_sentences([top_hit.chunk_id])
        assert sentences.starts is not None and sentences.ends is not None  # asked for with their spans
        offset = top_hit.chunk.char_start
        sentence_texts = [
            f"{top_hit.title}\n{top_hit.chunk.text[start - offset : end - offset]}"
            for start, end in zip(sentences.starts, sentences.ends, strict=True)
        ]
        return word_evidence(self.store, words, passages, sentence_texts)

    def keywords(self, question: str, mode: SearchMode = DEFAULT_MODE) -> tuple[Keywords, float]:
        """What keyword search looks for, and the weight of its z-score in hybrid ranking."""
        if mode == "dense":
            return Keywords(), 0.0
        chinese_articles = self.store.vocabulary_is_chinese()
        if is_cjk(question) == chinese_articles:
            names = english_names(question) if chinese_articles else []
            # "Apple的…" over articles that write 苹果: the names' translations are looked for too.
            concepts = (
                self.translator.translate(" ".join(names)) if names and self.translator is not None else []
            )
            return Keywords(terms=terms(question), concepts=concepts), self.weights.lexical
        if chinese_articles and self.translator is not None:
            concepts = self.translator.translate(question, with_source_words=mode == "lexical")
            return Keywords(concepts=concepts), self.weights.translated
        # Untranslated, an English question shares nothing with Chinese articles but stray Latin words
        # and digits, and BM25 on those ranks noise first (docs/EVAL.md): lexical mode only.
        return Keywords(terms=terms(question)), 0.0

    def _rank(self, scores: ChunkScores, mode: SearchMode, lexical_weight: float) -> np.ndarray:
        if mode == "dense":
            return self._relevance(scores)
        if mode == "lexical":
            return scores.lexical
        return _z(self._relevance(scores), scores.relevance_background) + lexical_weight * _z(
            scores.lexical, scores.lexical_background
        )


def _z(values: np.ndarray, background: tuple[float, float] | None = None) -> np.ndarray:
    """z-scores put signals of different scales (cosines, BM25) on one footing per question: against the
    background's (mean, spread), else against the values' own."""
    if values.size == 0:
        return values
    mean, spread = background or (float(values.mean()), float(values.std()))
    return (values - mean) / spread if spread > 0 else np.zeros_like(values)


def _bigrams(text: str) -> set[str]:
    compact = "".join(text.split())
    return {compact[i : i + 2] for i in range(len(compact) - 1)} or {compact}


def _near_duplicates(first: set[str], second: set[str]) -> bool:
    """Whether two texts, given as their `_bigrams`, share most of the shorter one's."""
    return len(first & second) / min(len(first), len(second)) >= _NEAR_DUPLICATE


def _passage(hit: ChunkHit, rank: int, sentence: tuple[int, int, int | None] | None) -> Passage:
    highlight = None
    if sentence is not None:
        highlight = Highlight(
            char_start=sentence[0] - hit.chunk.char_start, char_end=sentence[1] - hit.chunk.char_start
        )
    return Passage(
        rank=rank,
        score=round(float(hit.score), 6),
        text=hit.chunk.text,
        citation=Citation(
            doc_id=hit.chunk.doc_id,
            title=hit.title,
            section=hit.section,
            page=hit.chunk.page,
            source=hit.source,
            char_start=hit.chunk.char_start,
            char_end=hit.chunk.char_end,
        ),
        highlight=highlight,
    )


def _answer(passage: Passage, sentence: tuple[int, int, int | None] | None) -> Answer | None:
    if passage.highlight is None or sentence is None:
        return None
    start, end, page = sentence
    return Answer(
        text=passage.text[passage.highlight.char_start : passage.highlight.char_end],
        citation=passage.citation.model_copy(update={"char_start": start, "char_end": end, "page": page}),
    )
