"""Readers: files on disk or uploaded bytes -> Documents, with every unreadable input reported, never raised.

Choices a caller can rely on:

- The extension picks the reader: `.txt`/`.md` (the monthly report when its table of contents is detected,
  otherwise one article per file), `.jsonl` (one article per line), `.pdf` (one article per file).
  A `format` other than "auto" overrides the extension for every file read.
- A directory is read recursively in sorted order of relative path. Hidden files and folders (name starting
  with `.`) are skipped; so are files whose extension is not in SUPPORTED_EXTENSIONS, silently, as a
  glob would. Naming such a file directly (or uploading it) is a ReadProblem.
- `source` of a document is its file name; in a directory read, its path relative to that directory, so
  re-reading or re-uploading a file yields the same doc ids.
- Text files are decoded as UTF-8 (a BOM is dropped), or UTF-16 when they start with a UTF-16 BOM. A file
  that is not valid UTF-8 is tried as GB18030 (superset of GBK/GB2312, the legacy encoding of Chinese
  text, as Notepad++ or chardet-based tools would). NUL or control bytes mean a binary file. JSONL is
  UTF-8 only (RFC 8259) and is decoded line by line, so one bad line does not lose the others.
- An input that yields no document (binary, empty, undecodable, malformed line, damaged PDF, report whose
  TOC does not match its body) becomes a ReadProblem naming the file and line; no partial document is made.
- Two documents with the same doc_id in one read (the same title twice in one JSONL file): the later one
  replaces the earlier, as re-ingesting would, and a ReadProblem names the replaced one.
"""

from __future__ import annotations

import codecs
import io
import json
import logging
import re
from pathlib import Path, PurePosixPath
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pypdf import PdfReader

from citeqa.errors import ReportFormatError
from index.documents import Document, PageStart, make_doc_id
from index.report import looks_like_report, parse_report

logger = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset({".txt", ".md", ".jsonl", ".pdf"})

ReadFormat = Literal["auto", "report", "text", "jsonl", "pdf"]
_Reader = Literal["detect", "report", "text", "jsonl", "pdf"]
_READER_BY_EXTENSION: dict[str, _Reader] = {
    ".txt": "detect",
    ".md": "detect",
    ".jsonl": "jsonl",
    ".pdf": "pdf",
}

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0e-\x1f]")
_MARKDOWN_HEADING = re.compile(r"^#{1,6}[ \t]+(?P<title>\S.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^(?:=+|-+)[ \t]*$")


class ReadProblem(BaseModel):
    """Why an input (or one line of it) gave no document, and how to fix it."""

    source: str
    line: int | None = None
    message: str


class ReadResult(BaseModel):
    """The documents read, and the problems met on the way; one never hides the other."""

    documents: list[Document] = Field(default_factory=list)
    problems: list[ReadProblem] = Field(default_factory=list)


class _Unreadable(Exception):
    """An input that yields no document; the message says what is wrong and how to fix it."""


class _Read(NamedTuple):
    document: Document
    file: str
    line: int | None


class _JsonlArticle(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", str_strip_whitespace=True)

    title: str
    text: str = Field(min_length=1)
    doc_id: str | None = Field(default=None, min_length=1)
    section: str | None = None
    date: str | None = None
    source: str | None = None
    url: str | None = None

    @model_validator(mode="after")
    def _identifiable(self) -> _JsonlArticle:
        # An untitled article is fine (benchmarks blank titles on purpose), but its id then cannot
        # come from the title: it needs its own doc_id.
        if not self.title and not self.doc_id:
            raise ValueError("'title' is empty and there is no 'doc_id'; give one of them")
        return self


def read_path(path: Path, format: ReadFormat = "auto") -> ReadResult:
    """Read a file, or every supported file under a directory, into documents and problems."""
    if path.is_dir():
        files = _directory_files(path)
        if not files:
            problem = ReadProblem(
                source=str(path),
                message=f"no supported files found (extensions: {', '.join(sorted(SUPPORTED_EXTENSIONS))}).",
            )
            return _finish([], [problem])
        named = [(file, file.relative_to(path).as_posix()) for file in files]
    elif path.is_file():
        named = [(path, path.name)]
    elif path.exists():
        return _finish([], [ReadProblem(source=str(path), message="not a regular file or directory.")])
    else:
        return _finish([], [ReadProblem(source=str(path), message="no such file or directory.")])

    reads: list[_Read] = []
    problems: list[ReadProblem] = []
    for file, source in named:
        try:
            data = file.read_bytes()
        except OSError as error:
            problems.append(ReadProblem(source=source, message=f"cannot open the file: {error.strerror}."))
            continue
        file_reads, file_problems = _read_bytes(source, data, format)
        reads.extend(file_reads)
        problems.extend(file_problems)
    return _finish(reads, problems)


def read_upload(filename: str, data: bytes, format: ReadFormat = "auto") -> ReadResult:
    """Read bytes received over HTTP by the rules of read_path; the file name's extension picks the reader.

    Only the last component of `filename` is kept (clients may send a path), and becomes the source.
    """
    source = PurePosixPath(filename.replace("\\", "/")).name
    if not source:
        problem = ReadProblem(
            source=filename, message="the upload has no file name; send one, its extension picks the reader."
        )
        return _finish([], [problem])
    return _finish(*_read_bytes(source, data, format))


def _directory_files(directory: Path) -> list[Path]:
    files = []
    for candidate in directory.rglob("*"):
        relative = candidate.relative_to(directory)
        if any(part.startswith(".") for part in relative.parts) or not candidate.is_file():
            continue
        if candidate.suffix.lower() in SUPPORTED_EXTENSIONS:
            files.append(candidate)
        else:
            logger.debug("Skipping %s: unsupported extension", candidate)
    return sorted(files, key=lambda file: file.relative_to(directory).as_posix())


def _read_bytes(source: str, data: bytes, format: ReadFormat) -> tuple[list[_Read], list[ReadProblem]]:
    """The one place that turns a named input into documents; used by read_path and read_upload."""
    extension = PurePosixPath(source).suffix.lower()
    reader = format if format != "auto" else _READER_BY_EXTENSION.get(extension)
    if reader is None:
        message = (
            f"unsupported file type '{extension or '(none)'}'; supported: "
            f"{', '.join(sorted(SUPPORTED_EXTENSIONS))}, or name the format explicitly."
        )
        return [], [ReadProblem(source=source, message=message)]
    try:
        if reader == "jsonl":
            return _read_jsonl(source, data)
        documents = _read_pdf(source, data) if reader == "pdf" else _read_text(source, data, reader)
    except _Unreadable as error:
        return [], [ReadProblem(source=source, message=str(error))]
    return [_Read(document, source, None) for document in documents], []


def _decode_text(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise _Unreadable(f"broken UTF-16 text ({error.reason}); re-save the file as UTF-8.") from error
    elif b"\x00" in data:
        raise _Unreadable("binary file (it contains NUL bytes), not text; convert it to UTF-8 text first.")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = data.decode("gb18030")
            except UnicodeDecodeError as error:
                raise _Unreadable(
                    f"neither UTF-8 nor GB18030 text (undecodable byte at offset {error.start}); "
                    "re-save the file as UTF-8."
                ) from error
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if control := _CONTROL_CHARACTERS.search(text):
        raise _Unreadable(
            f"binary file (control character {control.group()!r} at character {control.start()}), not text; "
            "convert it to UTF-8 text first."
        )
    return text


def _read_text(source: str, data: bytes, reader: _Reader) -> list[Document]:
    text = _decode_text(data)
    if not text.strip():
        raise _Unreadable("the file is empty; it needs a title line followed by the article text.")
    if reader == "report" or (reader == "detect" and looks_like_report(text)):
        try:
            return parse_report(text, source)
        except ReportFormatError as error:
            raise _Unreadable(error.reason) from error
    return [_article_from_text(text, source)]


def _article_from_text(text: str, source: str) -> Document:
    """Title from the first Markdown heading, else the first non-empty line; the rest is the text."""
    lines = text.split("\n")
    heading = next(
        (
            (index, match["title"])
            for index, line in enumerate(lines)
            if (match := _MARKDOWN_HEADING.match(line))
        ),
        None,
    )
    if heading is None:
        index = next(index for index, line in enumerate(lines) if line.strip())
        heading = (index, lines[index])
    index, title = heading[0], heading[1].strip()
    after = index + 1
    if after < len(lines) and _SETEXT_UNDERLINE.match(lines[after]):
        after += 1
    around = ("\n".join(lines[:index]).strip(), "\n".join(lines[after:]).strip())
    body = "\n\n".join(part for part in around if part)
    if not title or not body:
        raise _Unreadable(
            "no article found: it needs a title (a '# heading' or the first line) and text after it."
        )
    return Document(doc_id=make_doc_id(source, title), title=title, text=body, source=source)


def _read_jsonl(source: str, data: bytes) -> tuple[list[_Read], list[ReadProblem]]:
    if b"\x00" in data:
        raise _Unreadable(
            "binary file (it contains NUL bytes), not JSON Lines; convert it to UTF-8 text first."
        )
    reads: list[_Read] = []
    problems: list[ReadProblem] = []
    lines = data.removeprefix(codecs.BOM_UTF8).split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            article = _parse_jsonl_line(raw)
        except _Unreadable as error:
            problems.append(ReadProblem(source=source, line=number, message=str(error)))
            continue
        article_source = article.source or source
        document = Document(
            doc_id=article.doc_id or make_doc_id(article_source, article.title),
            title=article.title,
            text=article.text,
            source=article_source,
            section=article.section,
            date=article.date,
            url=article.url,
        )
        reads.append(_Read(document, source, number))
    if not reads and not problems:
        raise _Unreadable("the file is empty; it needs one JSON object per line with 'title' and 'text'.")
    return reads, problems


def _parse_jsonl_line(raw: bytes) -> _JsonlArticle:
    expected = "each line must be a JSON object with string fields 'title' and 'text'"
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise _Unreadable(f"not UTF-8 (byte {error.start} of the line); save the file as UTF-8.") from error
    except json.JSONDecodeError as error:
        raise _Unreadable(f"invalid JSON ({error.msg} at column {error.colno}); {expected}.") from error
    if not isinstance(value, dict):
        raise _Unreadable(f"a JSON {type(value).__name__}, not an object; {expected}.")
    try:
        return _JsonlArticle.model_validate(value)
    except ValidationError as error:
        details = "; ".join(
            f"'{'.'.join(map(str, e['loc']))}': {e['msg']}"
            if e["loc"]
            else e["msg"].removeprefix("Value error, ")
            for e in error.errors()
        )
        raise _Unreadable(
            f"{details} ({expected}, non-empty; optional string fields: doc_id, section, date, source, url)."
        ) from error


def _read_pdf(source: str, data: bytes) -> list[Document]:
    if not data:
        raise _Unreadable("the file is empty; it is not a PDF.")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise _Unreadable("the PDF is encrypted with a password; decrypt it first.")
        page_texts = [page.extract_text() or "" for page in reader.pages]
        metadata_title = reader.metadata.title if reader.metadata else None
    except _Unreadable:
        raise
    except Exception as error:
        # pypdf raises many exception types on damaged files (PdfReadError, but also ValueError, KeyError,
        # ...). The error is reported as this file's problem so one damaged PDF cannot abort a whole read.
        logger.debug("pypdf failed on %s", source, exc_info=True)
        raise _Unreadable(
            f"not a readable PDF ({type(error).__name__}: {error}); check that the file is a complete PDF."
        ) from error

    pieces: list[str] = []
    page_map: list[PageStart] = []
    length = 0  # len("\n\n".join(pieces))
    for number, page_text in enumerate(page_texts, start=1):
        cleaned = page_text.replace("\r\n", "\n").replace("\r", "\n").strip()
        if not cleaned:
            continue
        if pieces:
            length += 2
        page_map.append(PageStart(char_start=length, page=number))
        pieces.append(cleaned)
        length += len(cleaned)
    if not pieces:
        raise _Unreadable("the PDF has no extractable text (scanned images?); run OCR on it first.")
    text = "\n\n".join(pieces)
    title = metadata_title.strip() if isinstance(metadata_title, str) else ""
    if not title:
        title = next(line.strip() for line in text.split("\n") if line.strip())
    return [
        Document(doc_id=make_doc_id(source, title), title=title, text=text, source=source, page_map=page_map)
    ]


def _finish(reads: list[_Read], problems: list[ReadProblem]) -> ReadResult:
    """Drop documents replaced by a later one with the same doc_id and report them.

    Problems are logged at debug level only: callers report them (the CLI prints them, the API returns them).
    """
    kept: dict[str, _Read] = {}
    for read in reads:
        earlier = kept.pop(read.document.doc_id, None)
        if earlier is not None:
            where = read.file + (f" line {read.line}" if read.line is not None else "")
            problems.append(
                ReadProblem(
                    source=earlier.file,
                    line=earlier.line,
                    message=(
                        f"doc_id {read.document.doc_id} ('{earlier.document.title}') is read again from "
                        f"{where}, which replaces this one; give the articles distinct titles or doc_ids."
                    ),
                )
            )
        kept[read.document.doc_id] = read
    for problem in problems:
        location = f"{problem.source}:{problem.line}" if problem.line is not None else problem.source
        logger.debug("Cannot read %s: %s", location, problem.message)
    return ReadResult(documents=[read.document for read in kept.values()], problems=problems)
