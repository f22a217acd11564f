"""Follow-up questions without a language model: rules that turn the last user turn into a retrieval query.

A follow-up such as "那华为呢？" or "and Apple?" retrieves nothing useful on its own. The rules below read the
user turns of a conversation in order and give each one an effective query:

- A turn that stands on its own (it names something and is more than a fragment) is its own query, and
  becomes the context of the next turn.
- An elliptical turn is merged with the effective query of the turn before it (so chains work:
  小米…？ -> 华为呢？ -> 苹果呢？). A turn is elliptical when it holds a pronoun (它, 其, it, they…) and
  names nothing, or starts with a follow-up marker (那, 还有, and, what about…) or ends with 呢 and holds at
  most two content words, or holds no name and at most one content word (售价多少？).
- Merging, first rule that applies:
  1. the turn is only names and/or dates ("那华为呢？", "what about OPPO?", "2019年呢？"): each one replaces
     the matching slot of the previous query (a date of the same unit; a name of the same kind, else the
     question's subject), so "小米第三季度智能手机销量是多少？" becomes "华为第三季度智能手机销量是多少？";
  2. the turn has a pronoun: it is replaced by the previous query's subject ("它比超级计算机快多少？");
  3. otherwise the previous query's subject is put before the turn ("增长率呢？" after
     "2020年我国工业信息安全市场规模预计多少？" -> "2020年我国工业信息安全市场规模预计 增长率": 预计 is
     no question word, so it stays in the subject).

Only user turns count: the assistant's turns are retrieved passages, and mixing their words into the query
would drag it towards the last answer instead of the new question. Measured on tests/data/followups.jsonl
by scripts/measure_followups.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import jieba.posseg
from pydantic import BaseModel, Field

from index.text import CHINESE_QUESTION_WORDS, CJK, ENGLISH_REQUEST_WORDS, ENGLISH_STOPWORDS


class RetrievalQuery(BaseModel):
    """The query searched for a turn, and whether the rules built it from earlier turns."""

    query: str = Field(description="The text actually embedded and searched.")
    rewritten: bool = Field(description="True when earlier turns were merged into the last one.")


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    end: int
    kind: str  # time, name, noun, pronoun, question, punct, other
    shape: str  # finer than kind, to match a slot of the same sort: time unit, jieba tag, latin/latin-digit


_ZH_MARKER = re.compile(r"^\s*(?:那么|那(?![些个里边样])|还有|另外|此外|以及|再问一下|再说)[，,、\s]*")
_EN_MARKER = re.compile(r"^\s*(?:and\s+what\s+about|what\s+about|how\s+about|and|also|then)\b[\s,]*", re.I)
_TRAILING = re.compile(r"(?:\s*(?:呢|吗|啊|呀|嘛))?[\s？?。.!！,，]*$")

# Date expressions, each with the unit that a follow-up date replaces ("2019年呢？" replaces a year).
_TIMES = [
    ("year", r"\d{4}\s*年|今年|去年|明年|前年|\b(?:19|20)\d{2}\b|\b(?:this|last|next)\s+year\b"),
    (
        "quarter",
        r"第?[一二三四1-4]季度|前[一二三]季度|\bQ[1-4]\b|\b(?:first|second|third|fourth)\s+quarter\b",
    ),
    ("half", r"[上下]半年|\b(?:first|second)\s+half\b"),
    (
        "month",
        r"\d{1,2}\s*(?:[~～\-－至到]\s*\d{1,2}\s*)?月份?(?:\d{1,2}[日号])?"
        r"|\b(?:January|February|March|April|May|June|July|August|September|October|November|December)\b",
    ),
]
_TIME = re.compile("|".join(f"(?P<{unit}>{pattern})" for unit, pattern in _TIMES), re.I)
_LATIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-+.&]*[A-Za-z0-9+]|[A-Za-z0-9]")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_ZH_PRONOUNS = _words("它 它们 他们 她们 他 她 其 该 此 这 这个 这些 那个 那些")
_EN_PRONOUNS = _words("it its they them their this that these those he she")
# Words that name a place without jieba tagging them as one; a follow-up place ("江西呢？") replaces them.
_ZH_PLACES = _words("我国 中国 全国 国内 全球 国外 海外")
_ZH_NAME_TAGS = _words("nr ns nt nz nrt nrfg j")
_ZH_NOUN_TAGS = _words("n ng vn l an nl")


def retrieval_query(user_turns: Sequence[str]) -> RetrievalQuery:
    """The query to search for the last of `user_turns` (oldest first), given the turns before it."""
    if not user_turns:
        raise ValueError("user_turns is empty: the last user turn is the question to answer.")
    context: str | None = None
    result = RetrievalQuery(query="", rewritten=False)
    for turn in user_turns:
        result = _resolve(turn.strip(), context)
        context = result.query
    return result


def _resolve(turn: str, context: str | None) -> RetrievalQuery:
    if context is None or not _is_follow_up(turn):
        return RetrievalQuery(query=turn, rewritten=False)
    focus = _focus(turn)
    tokens = _tokens(focus)
    slots = [t for t in tokens if t.kind in ("time", "name")]
    # A preposition goes with its slot: "那在武汉呢？" is the place 武汉.
    if slots and all(t.kind in ("time", "name", "punct") or t.text == "的" or t.shape == "p" for t in tokens):
        return RetrievalQuery(query=_fill_slots(context, slots), rewritten=True)
    phrase = _replace_phrase(context, tokens)
    if phrase is not None:
        return RetrievalQuery(query=phrase, rewritten=True)
    subject = _subject(context)
    if any(t.kind == "pronoun" for t in tokens):
        return RetrievalQuery(query=_replace_pronouns(focus, tokens, subject), rewritten=True)
    return RetrievalQuery(query=f"{subject} {focus}", rewritten=True)


def _is_follow_up(turn: str) -> bool:
    marked = bool(_ZH_MARKER.match(turn) or _EN_MARKER.match(turn) or re.search(r"呢[\s？?。.!！]*$", turn))
    tokens = _tokens(_focus(turn))
    names = sum(t.kind == "name" for t in tokens)
    content = sum(t.kind in ("name", "noun", "time") for t in tokens)
    if any(t.kind == "pronoun" for t in tokens) and (names == 0 or marked):
        return True
    if marked and content <= 2:
        return True
    return names == 0 and content <= 1


def _focus(turn: str) -> str:
    """The turn without its follow-up marker and trailing particle: "那华为呢？" -> "华为"."""
    stripped = _EN_MARKER.sub("", _ZH_MARKER.sub("", turn, count=1), count=1)
    return _TRAILING.sub("", stripped).strip() or turn.strip()


def _tokens(text: str) -> list[_Token]:
    """Dates, then Latin words (English or names inside Chinese), then jieba's words for the Chinese rest."""
    tokens: list[_Token] = []
    position = 0
    for match in _TIME.finditer(text):
        tokens.extend(_untimed_tokens(text, position, match.start()))
        tokens.append(_Token(match.group(), match.start(), match.end(), "time", match.lastgroup or ""))
        position = match.end()
    tokens.extend(_untimed_tokens(text, position, len(text)))
    return _merge_names(text, tokens)


def _untimed_tokens(text: str, start: int, end: int) -> list[_Token]:
    tokens: list[_Token] = []
    position = start
    for match in _LATIN.finditer(text, start, end):
        tokens.extend(_chinese_tokens(text, position, match.start()))
        tokens.append(_latin_token(match.group(), match.start()))
        position = match.end()
    tokens.extend(_chinese_tokens(text, position, end))
    return tokens


def _latin_token(word: str, start: int) -> _Token:
    bare = re.sub(r"['’]s$", "", word)
    lower = bare.lower()
    end = start + len(bare)
    if lower in _EN_PRONOUNS:
        return _Token(bare, start, end, "pronoun", "latin")
    if lower in ENGLISH_STOPWORDS or lower in ENGLISH_REQUEST_WORDS:
        return _Token(bare, start, end, "question", "latin")
    has_digit = any(c.isdigit() for c in bare)
    if has_digit and not any(c.isalpha() for c in bare):
        return _Token(bare, start, end, "other", "number")
    # No English tagger here: a capital on a word that is not a question word, or letters mixed with digits
    # (5G, iPhone12), is what names look like in questions.
    if has_digit or any(c.isupper() for c in bare):
        return _Token(bare, start, end, "name", "latin-digit" if has_digit else "latin")
    return _Token(bare, start, end, "noun", "latin")


def _chinese_tokens(text: str, start: int, end: int) -> list[_Token]:
    tokens: list[_Token] = []
    position = start
    for pair in jieba.posseg.cut(text[start:end]):
        word, tag = pair.word, pair.flag
        token_start, position = position, position + len(word)
        tokens.append(_Token(word, token_start, position, _chinese_kind(word, tag), tag))
    return tokens


def _chinese_kind(word: str, tag: str) -> str:
    if not word.strip() or (tag == "x" and not re.search(r"\w", word)):
        return "punct"
    if word in _ZH_PRONOUNS:
        return "pronoun"
    if word in CHINESE_QUESTION_WORDS or tag == "p":
        return "question"
    if word in _ZH_PLACES:
        return "name"
    # jieba tags many single characters as places or people (云 -> ns); a name needs two characters.
    if tag in _ZH_NAME_TAGS and len(word) >= 2:
        return "name"
    if tag in _ZH_NOUN_TAGS or tag in _ZH_NAME_TAGS:
        return "noun"
    return "other"


def _merge_names(text: str, tokens: list[_Token]) -> list[_Token]:
    """Latin names separated only by spaces are one name ("China Mobile", "iPhone12 Pro")."""
    merged: list[_Token] = []
    for token in tokens:
        if token.kind == "name" and token.shape.startswith("latin"):
            spaces = 0
            while (
                spaces < len(merged)
                and merged[-1 - spaces].kind == "punct"
                and not merged[-1 - spaces].text.strip()
            ):
                spaces += 1
            previous = merged[-1 - spaces] if spaces < len(merged) else None
            if previous is not None and previous.kind == "name" and previous.shape.startswith("latin"):
                del merged[len(merged) - spaces - 1 :]
                shape = "latin-digit" if "digit" in previous.shape + token.shape else "latin"
                token = _Token(text[previous.start : token.end], previous.start, token.end, "name", shape)
        merged.append(token)
    return merged


def _fill_slots(context: str, slots: list[_Token]) -> str:
    """`context` with each slot (a date or a name of the follow-up) put in place of its counterpart."""
    query = context
    prefix: list[str] = []
    for slot in slots:
        tokens = _tokens(query)
        target = _counterpart(slot, tokens)
        if target is None:
            prefix.append(slot.text)
        else:
            query = query[: target.start] + slot.text + query[target.end :]
    return " ".join([*prefix, query]) if prefix else query


def _counterpart(slot: _Token, tokens: list[_Token]) -> _Token | None:
    """What a follow-up slot replaces: a date of the same unit; a name of the same shape, else of the same
    sort (a place for a place, a product for a product, a company for a company); else, for a company, the
    question's topic; else its first name or its topic."""
    same_kind = [t for t in tokens if t.kind == slot.kind]
    if slot.kind == "time":
        return next((t for t in same_kind if t.shape == slot.shape), None)
    same_sort = [t for t in same_kind if _name_sort(t) == _name_sort(slot)]
    found = next((t for t in same_kind if t.shape == slot.shape), None) or next(iter(same_sort), None)
    if found is not None:
        return found
    topic = _leading_noun(tokens)
    if _name_sort(slot) == "company" and topic is not None and _name_sort(topic) == "company":
        return topic
    return same_kind[0] if same_kind else topic


def _name_sort(token: _Token) -> str:
    """place (我国, 国内… and jieba's s), product (letters with digits: 5G, iPhone12), or company (any other
    name or noun). jieba's ns is no sure sign of a place: it tags 蓝牙 and 天马 so too."""
    if token.shape == "s" or token.text in _ZH_PLACES:
        return "place"
    return "product" if token.shape == "latin-digit" else "company"


def _replace_phrase(context: str, tokens: list[_Token]) -> str | None:
    """For a turn of two or more names and nouns ending in a noun of the previous query ("那4G手机呢？"
    after "10月国内5G手机出货量是多少？"): the previous query with as many of the words ending in that noun
    replaced by the turn's ("10月国内4G手机出货量是多少？"); None when the turn is not such a phrase."""
    words = [t for t in tokens if t.kind != "punct"]
    if len(words) < 2 or words[-1].kind != "noun" or any(t.kind not in ("name", "noun") for t in words):
        return None
    previous = _tokens(context)
    head = next((i for i, t in enumerate(previous) if t.kind == "noun" and t.text == words[-1].text), None)
    if head is None:
        return None
    first = head
    while (
        head - first + 1 < len(words)
        and first > 0
        and previous[first - 1].kind in ("name", "noun")
        and previous[first - 1].end == previous[first].start
    ):
        first -= 1
    phrase = "".join(t.text for t in words) if CJK.search(context) else " ".join(t.text for t in words)
    return context[: previous[first].start] + phrase + context[previous[head].end :]


def _leading_noun(tokens: list[_Token]) -> _Token | None:
    """The first word of a question when it is a noun (its topic: 小米第三季度…), joined with a one-character
    noun jieba split off (台积 + 电)."""
    words = [t for t in tokens if t.kind not in ("punct", "time")]
    if not words or words[0].kind not in ("noun", "name"):
        return None
    first = words[0]
    if len(words) > 1 and words[1].kind == "noun" and len(words[1].text) == 1 and words[1].start == first.end:
        return _Token(first.text + words[1].text, first.start, words[1].end, first.kind, first.shape)
    return first


def _subject(query: str) -> str:
    """What a question is about, to stand in for a pronoun or to go before a fragment.

    Chinese puts the topic first: the words up to the first question word, preposition or verb of being
    ("九章量子计算原型机有多少个光子？" -> "九章量子计算原型机"). English puts it after the question words: the
    run of names and nouns from the first name ("What chip does Gree's 5G phone use?" -> "Gree's 5G phone
    use"). Without either, the question's content words, or the whole question when it has none.
    """
    tokens = _tokens(query)
    if CJK.search(query):
        words: list[_Token] = []
        for token in tokens:
            if token.kind == "question":
                break
            words.append(token)
        while words and (words[-1].kind == "punct" or words[-1].text in ("的", "了")):
            words.pop()
    else:
        content = [t for t in tokens if t.kind != "punct"]
        first = next((i for i, t in enumerate(content) if t.kind == "name"), None)
        if first is None:
            first = next((i for i, t in enumerate(content) if t.kind == "noun"), len(content))
        words = []
        for token in content[first:]:
            if token.kind not in ("name", "noun", "time"):
                break
            words.append(token)
    if any(t.kind in ("name", "noun") for t in words):
        return query[words[0].start : words[-1].end].strip()
    return " ".join(t.text for t in tokens if t.kind in ("name", "noun", "time")) or query.strip()


def _replace_pronouns(focus: str, tokens: list[_Token], subject: str) -> str:
    parts: list[str] = []
    position = 0
    for token in tokens:
        if token.kind == "pronoun":
            parts.append(focus[position : token.start])
            parts.append(subject)
            position = token.end
    parts.append(focus[position:])
    return "".join(parts)
