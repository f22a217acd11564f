"""Parser for the monthly report 行业信息监测与市场分析 (text export of a PDF): one Document per article.

The format, as exported:

- a cover (report name), then a line `目录` and the table of contents: section lines `name page`
  (`产业环境 3`) each followed by entry lines `- title..... page`. The dot leader varies (`.....`, `...`) and
  a TOC title may be truncated or spaced differently from the body title (`2020 年 TWS` vs `2020年TWS`);
- the body: every paragraph on one line, paragraphs separated by a blank line, no page markers, no
  newline at the end of the file. Each section starts with its name on a line of its own (`产业环境`),
  each article with its title on a line of its own; sub-headings (`出台背景`) are lines of their own too.

Heuristics:

- Titles: each TOC title, in TOC order, is matched to the first body paragraph after the previous title
  whose normalised form (NFKC, one quote style, no whitespace, case-folded) equals it, starts with it
  (a TOC title cut short, at least 6 characters, and a body line that is not a sentence ending in `。`) or
  is similar enough (difflib ratio >= 0.85). The body line becomes the title.
- Section headings: the paragraph just before the first title of a section, when it is the section name,
  is dropped; it belongs to no article.
- Page-break repair: a PDF page break cuts a paragraph in two. A paragraph continues in the next one when
  it ends with an opening quote/bracket or a clause mark (`，、`), or when it ends without terminal
  punctuation (`。！？…；：`, optionally followed by closing quotes/brackets) and is at least
  `_MIN_FRAGMENT_COLUMNS` wide. Width tells a cut paragraph from a sub-heading: a cut paragraph fills at
  least one full printed line (38 CJK characters = 76 columns in this layout; the cut fragments in the
  2020-12 issue measure 73-389 columns), while its sub-headings measure 8-36 columns. A paragraph that looks
  like a sub-heading is never glued onto a fragment. Joined parts get no separator, except a space
  between two Latin letters or digits.
- Orphaned attribution: a paragraph that is only a speaker clause (`...所长丁海煜指出。`) after a
  paragraph ending in a closing quote is joined to that quote; it cannot stand alone. It is not counted
  as a page break: nothing shows that a page ended there.
- Pages: an article starts on its TOC page and moves to the next page at each repaired page break, and
  at nothing else: page breaks that fall between paragraphs leave no trace in the export, and section or
  article starts do not begin a new page (two articles share page 21). The estimate can therefore lag,
  never run ahead. On the 2020-12 issue (39 repaired breaks), the last estimated page of 26 of the 33
  articles followed by another is that article's TOC page or the page before, as it should be; 5 lag by
  2 pages and 2 by 3 (at least 9 breaks fell between paragraphs); none passes the next TOC page.
"""

from __future__ import annotations

import difflib
import logging
import re
import unicodedata

from pydantic import BaseModel

from citeqa.errors import ReportFormatError
from index.documents import Document, PageStart, make_doc_id

logger = logging.getLogger(__name__)

_TOC_HEADING = "目录"
_SECTION_LINE = re.compile(r"^(?P<name>[^\s\-•].*?)\s+(?P<page>\d{1,4})$")
_ENTRY_LINE = re.compile(r"^[-•]\s*(?P<title>.+?)(?:\s*(?:\.{2,}|…+|·{2,})\s*|\s+)(?P<page>\d{1,4})$")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\u3000]*\n\s*")

_TITLE_MIN_SIMILARITY = 0.85
_MIN_TRUNCATED_TITLE = 6
_MAX_LINES_BEFORE_TOC_ENTRIES = 3
_MIN_FRAGMENT_COLUMNS = 64

_TERMINAL = "。！？!?…；;：:"
_CLOSERS = "”’」』）)》】]\"'"
_CONTINUATION_MARKS = "，,、“‘「『（(《【[—-"
_QUOTE_STYLES = str.maketrans(
    {"“": '"', "”": '"', "‘": "'", "’": "'", "「": '"', "」": '"', "『": '"', "』": '"'}
)
_ATTRIBUTION = re.compile(r"^[^，,。；;“”\"]{2,40}(?:指出|表示|说|称|认为|介绍|强调|坦言|透露|谈道)。$")


class TocEntry(BaseModel):
    """One article line of the table of contents."""

    section: str | None
    title: str
    page: int


class _TableOfContents(BaseModel):
    entries: list[TocEntry]
    body_start: int


def looks_like_report(text: str) -> bool:
    """Whether `text` has the report's table of contents: a `目录` line, section lines and article entries."""
    return _parse_toc(_normalise_newlines(text)) is not None


def parse_report(text: str, source: str) -> list[Document]:
    """Split a monthly report into its articles, in TOC order, with sections and estimated pages.

    Raises ReportFormatError when there is no table of contents or a TOC title has no line in the body.
    """
    text = _normalise_newlines(text)
    toc = _parse_toc(text)
    if toc is None:
        raise ReportFormatError(
            source,
            f"no table of contents found; a report needs a line '{_TOC_HEADING}' followed by section "
            "lines 'name page' and entries '- title..... page'. Read it as plain text instead.",
        )
    paragraphs = _split_paragraphs(text[toc.body_start :])
    title_indexes = _locate_titles(toc.entries, paragraphs, source)
    section_keys = {_match_key(entry.section) for entry in toc.entries if entry.section}
    preface = [line for line in paragraphs[: title_indexes[0]] if _match_key(line) not in section_keys]
    if preface:
        logger.warning("%s: %d paragraph(s) before the first article are left out", source, len(preface))

    documents = []
    for number, (entry, title_index) in enumerate(zip(toc.entries, title_indexes, strict=True)):
        is_last = number + 1 == len(toc.entries)
        end = len(paragraphs) if is_last else title_indexes[number + 1]
        if not is_last:
            next_section = toc.entries[number + 1].section
            opens_section = next_section is not None and next_section != entry.section
            if (
                opens_section
                and end - 1 > title_index
                and _match_key(paragraphs[end - 1]) == _match_key(next_section)
            ):
                end -= 1
        text_out, page_map = _assemble(paragraphs[title_index + 1 : end], entry.page)
        title = paragraphs[title_index]
        if not text_out:
            raise ReportFormatError(
                source, f"article {title!r} has no text before the next title; check the table of contents."
            )
        documents.append(
            Document(
                doc_id=make_doc_id(source, title),
                title=title,
                text=text_out,
                source=source,
                section=entry.section,
                page_map=page_map,
            )
        )
    return documents


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _parse_toc(text: str) -> _TableOfContents | None:
    """The TOC entries and the offset where the body begins, or None without a TOC of sections and entries.

    A `目录` line followed, after at most a few other lines (`快速进入点击页码`), by section and entry
    lines starts the TOC; the first other line after the entries starts the body.
    """
    entries: list[TocEntry] = []
    section: str | None = None
    in_toc = False
    other_lines = 0
    offset = 0
    for line in text.splitlines(keepends=True):
        line_start, offset = offset, offset + len(line)
        stripped = line.strip()
        if not in_toc:
            in_toc = re.sub(r"\s+", "", stripped) == _TOC_HEADING
            other_lines = 0
            continue
        if not stripped:
            continue
        if entry := _ENTRY_LINE.match(stripped):
            entries.append(TocEntry(section=section, title=entry["title"].strip(), page=int(entry["page"])))
        elif heading := _SECTION_LINE.match(stripped):
            section = heading["name"].strip()
        elif entries:
            break
        else:
            other_lines += 1
            if other_lines > _MAX_LINES_BEFORE_TOC_ENTRIES:
                # A `目录` line in running text: give up on it and look for another one.
                in_toc = False
                section = None
    else:
        line_start = len(text)
    if not entries or all(entry.section is None for entry in entries):
        return None
    return _TableOfContents(entries=entries, body_start=line_start)


def _split_paragraphs(body: str) -> list[str]:
    """Blank-line separated paragraphs; lines wrapped inside a paragraph are joined like page-break parts."""
    paragraphs = []
    for block in _PARAGRAPH_BREAK.split(body):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        joined = lines[0]
        for line in lines[1:]:
            joined += _separator(joined, line) + line
        paragraphs.append(joined)
    return paragraphs


def _match_key(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text).translate(_QUOTE_STYLES)).casefold()


def _title_similarity(toc_title: str, line: str) -> float:
    toc_key = _match_key(toc_title)
    line_key = _match_key(line)
    if toc_key == line_key:
        return 1.0
    is_cut_short = len(toc_key) >= _MIN_TRUNCATED_TITLE and line_key.startswith(toc_key)
    if is_cut_short and not line_key.endswith("。"):
        return 1.0
    matcher = difflib.SequenceMatcher(None, toc_key, line_key, autojunk=False)
    # The cheap upper bounds rule out the long body paragraphs before the quadratic comparison.
    if matcher.real_quick_ratio() < _TITLE_MIN_SIMILARITY or matcher.quick_ratio() < _TITLE_MIN_SIMILARITY:
        return 0.0
    return matcher.ratio()


def _locate_titles(entries: list[TocEntry], paragraphs: list[str], source: str) -> list[int]:
    """The paragraph index of each TOC title, searched in TOC order so each title comes after the last."""
    indexes = []
    cursor = 0
    missing = []
    for entry in entries:
        found = None
        for index in range(cursor, len(paragraphs)):
            similarity = _title_similarity(entry.title, paragraphs[index])
            if similarity >= _TITLE_MIN_SIMILARITY:
                found = index
                break
        if found is None:
            missing.append(entry.title)
            continue
        if paragraphs[found] != entry.title:
            logger.debug(
                "TOC title %r is body line %r (similarity %.2f)", entry.title, paragraphs[found], similarity
            )
        indexes.append(found)
        cursor = found + 1
    if missing:
        raise ReportFormatError(
            source,
            f"{len(missing)} table-of-contents title(s) have no matching line in the body, "
            f"in order after the previous title: {missing}. Check that each article starts with its title "
            "on a line of its own.",
        )
    return indexes


def _columns(text: str) -> int:
    """Printed width: CJK and ambiguous-width characters (quotes, dashes) take two columns."""
    return sum(2 if unicodedata.east_asian_width(char) in "WFA" else 1 for char in text)


def _ends_sentence(paragraph: str) -> bool:
    core = paragraph.rstrip(_CLOSERS)
    return bool(core) and core[-1] in _TERMINAL


def _looks_like_heading(paragraph: str) -> bool:
    return (
        not _ends_sentence(paragraph)
        and paragraph[-1] not in _CONTINUATION_MARKS
        and _columns(paragraph) < _MIN_FRAGMENT_COLUMNS
    )


def _continues_after_page_break(paragraph: str, following: str) -> bool:
    """Whether `paragraph` was cut by a page break and goes on in `following`."""
    if _ends_sentence(paragraph) or _looks_like_heading(following):
        return False
    return paragraph[-1] in _CONTINUATION_MARKS or _columns(paragraph) >= _MIN_FRAGMENT_COLUMNS


def _is_orphaned_attribution(paragraph: str, following: str) -> bool:
    return paragraph.endswith(("”", '"')) and _ATTRIBUTION.match(following) is not None


def _separator(left: str, right: str) -> str:
    """Nothing between CJK text; a space where two Latin words or numbers meet."""
    return (
        " " if left[-1].isascii() and left[-1].isalnum() and right[0].isascii() and right[0].isalnum() else ""
    )


def _assemble(paragraphs: list[str], first_page: int) -> tuple[str, list[PageStart]]:
    """An article's text with page-break splits repaired, and its page map starting at `first_page`."""
    pieces: list[str] = []
    page_map = [PageStart(char_start=0, page=first_page)]
    length = 0  # len("\n\n".join(pieces))
    for paragraph in paragraphs:
        if pieces and _continues_after_page_break(pieces[-1], paragraph):
            separator = _separator(pieces[-1], paragraph)
            pieces[-1] += separator + paragraph
            length += len(separator)
            page_map.append(PageStart(char_start=length, page=page_map[-1].page + 1))
            length += len(paragraph)
        elif pieces and _is_orphaned_attribution(pieces[-1], paragraph):
            pieces[-1] += paragraph
            length += len(paragraph)
        else:
            length += len(paragraph) + (2 if pieces else 0)
            pieces.append(paragraph)
    return "\n\n".join(pieces), page_map
