"""Documents -> chunks whose character spans point exactly back into the document text."""

from __future__ import annotations

import re

from langchain_text_splitters import RecursiveCharacterTextSplitter
from pydantic import BaseModel, Field

from index.documents import Document
from index.text import terms

# Paragraph, line, sentence ends, then clause marks, then spaces: a chunk boundary falls at the
# strongest break that keeps the chunk within size, so Chinese sentences are not cut mid-clause.
CHINESE_SEPARATORS = ["\n\n", "\n", "。", "！", "？", "；", "!", "?", ";", "，", "、", ",", " ", ""]
MAX_PASSAGE_CHARS = 600
# A sentence ends at these marks (with any closing quotes or brackets after them) or at a line end.
_SENTENCE = re.compile(r"[^。！？；!?\n]+(?:[。！？；!?]+[”’」』）)\]]*)?")
# Fragments shorter than this (headings, list markers) carry too little meaning to be matched alone.
MIN_SENTENCE_CHARS = 6


class Chunk(BaseModel):
    """A passage of one document: `document.text[char_start:char_end] == text`."""

    doc_id: str
    chunk_index: int = Field(ge=0)
    text: str
    char_start: int = Field(ge=0)
    char_end: int = Field(ge=0)
    page: int | None = None


class ChunkingSettings(BaseModel):
    chunk_size: int
    chunk_overlap: int


class Chunker:
    """Splits documents with Chinese-aware separators into chunks of at most `chunk_size` characters."""

    def __init__(self, chunk_size: int = 300, chunk_overlap: int = 60) -> None:
        if not 1 <= chunk_size <= MAX_PASSAGE_CHARS:
            raise ValueError(
                f"chunk_size must be between 1 and {MAX_PASSAGE_CHARS} characters, got {chunk_size}."
            )
        if not 0 <= chunk_overlap < chunk_size:
            raise ValueError(f"chunk_overlap must be at least 0 and below chunk_size, got {chunk_overlap}.")
        self.settings = ChunkingSettings(chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            separators=CHINESE_SEPARATORS,
            # Separators stay at the end of the piece they close, so every chunk is a verbatim
            # substring of the document and can be located exactly.
            keep_separator="end",
            strip_whitespace=True,
        )

    def split(self, document: Document) -> list[Chunk]:
        chunks: list[Chunk] = []
        cursor = 0
        for piece in self._splitter.split_text(document.text):
            start = document.text.find(piece, cursor)
            if start < 0:  # pragma: no cover - the splitter only returns substrings
                raise AssertionError(f"chunk not found in document {document.doc_id}: {piece[:40]!r}")
            chunks.append(
                Chunk(
                    doc_id=document.doc_id,
                    chunk_index=len(chunks),
                    text=piece,
                    char_start=start,
                    char_end=start + len(piece),
                    page=document.page_at(start),
                )
            )
            # The next chunk starts at most `chunk_overlap` characters before this one ends; searching
            # from there keeps repeated text from being located at an earlier copy.
            cursor = max(start + 1, start + len(piece) - self.settings.chunk_overlap)
        return chunks


class SentenceSpan(BaseModel):
    """A sentence of a chunk, located in the document text like the chunk itself."""

    chunk_index: int
    char_start: int
    char_end: int


def sentence_spans(chunk: Chunk) -> list[SentenceSpan]:
    """The sentences of a chunk (fragments under MIN_SENTENCE_CHARS left out), in document coordinates."""
    spans = []
    for match in _SENTENCE.finditer(chunk.text):
        start, end = match.start(), match.end()
        while start < end and chunk.text[start].isspace():
            start += 1
        while end > start and chunk.text[end - 1].isspace():
            end -= 1
        if end - start >= MIN_SENTENCE_CHARS:
            spans.append(
                SentenceSpan(
                    chunk_index=chunk.chunk_index,
                    char_start=chunk.char_start + start,
                    char_end=chunk.char_start + end,
                )
            )
    return spans


def matching_text(document: Document, chunk: Chunk) -> str:
    """What keyword search matches for a chunk: the article's section and title give the passage its context.

    (Embedding the same context with the passage made dense retrieval worse: see docs/EVAL.md.)
    """
    context = " · ".join(part for part in (document.section, document.title) if part)
    return f"{context}\n{chunk.text}" if context else chunk.text


def chunk_terms(document: Document, chunk: Chunk) -> list[str]:
    """The words keyword search indexes for a chunk: those of its matching text."""
    return terms(matching_text(document, chunk))
