"""Documents -> chunks -> vectors -> index, in batches that each land whole or not at all."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel

from index.backend import Store
from index.chunking import Chunk, Chunker, SentenceSpan, chunk_terms, sentence_spans
from index.documents import Document
from index.readers import ReadProblem, read_path
from index.storage.documents import IndexedDocument
from index.store import IndexKind, Manifest
from index.vectors import SentenceSpanEncoder, TextEncoder

logger = logging.getLogger(__name__)

ProgressHook = Callable[[int, int], None]
"""Called with (texts embedded so far, texts to embed in all): chunks and their sentences."""

# Documents are committed in batches of about this many chunks: a crash loses at most the batch
# being embedded, and each commit rewrites the FAISS file only once per batch.
COMMIT_EVERY_CHUNKS = 512

SentenceVectors = Literal["separate", "late"]
"""How sentence vectors are made: each sentence embedded on its own, or pooled from its chunk's own
forward pass ("late chunking": one pass per chunk instead of one per chunk and per sentence)."""


class IngestedDocument(BaseModel):
    doc_id: str
    title: str
    section: str | None
    chunks: int
    status: Literal["added", "updated", "unchanged"]


class IngestReport(BaseModel):
    documents: list[IngestedDocument]
    problems: list[ReadProblem]


class Indexer:
    """Adds documents to an index: chunks them, embeds the chunks and stores both."""

    def __init__(
        self,
        store: Store,
        encoder: TextEncoder,
        chunker: Chunker,
        sentence_vectors: SentenceVectors = "separate",
    ) -> None:
        if sentence_vectors == "late" and not isinstance(encoder, SentenceSpanEncoder):
            raise TypeError(
                f"{type(encoder).__name__} cannot embed sentences within their chunk; "
                f"use separate sentence vectors with it."
            )
        self.store = store
        self.encoder = encoder
        self.chunker = chunker
        self.sentence_vectors = sentence_vectors

    def ingest_paths(
        self,
        paths: Sequence[Path],
        format: Literal["auto", "report", "text", "jsonl", "pdf"] = "auto",
        on_progress: ProgressHook | None = None,
    ) -> IngestReport:
        documents: list[Document] = []
        problems: list[ReadProblem] = []
        for path in paths:
            result = read_path(Path(path), format=format)
            documents.extend(result.documents)
            problems.extend(result.problems)
        for problem in problems:
            logger.warning(
                "Skipped %s%s: %s",
                problem.source,
                f":{problem.line}" if problem.line else "",
                problem.message,
            )
        return IngestReport(documents=self.add(documents, on_progress), problems=problems)

    def add(
        self, documents: Iterable[Document], on_progress: ProgressHook | None = None
    ) -> list[IngestedDocument]:
        """Index `documents`; one already indexed unchanged is not embedded again."""
        pending: list[_Pending] = []
        results: list[IngestedDocument] = []
        for document in documents:
            content_hash = self._content_hash(document)
            stored = self.store.find_document(document.doc_id)
            if stored is not None and stored.content_hash == content_hash:
                chunks = self.store.chunk_count(document.doc_id)
                results.append(_ingested(document, chunks, "unchanged"))
                continue
            status = "updated" if stored is not None else "added"
            pending.append(_Pending(document, content_hash, self.chunker.split(document), status))
        progress = _Progress(sum(self._units(item) for item in pending), on_progress)
        for batch in _batches(pending, COMMIT_EVERY_CHUNKS):
            self.store.upsert(self._embed(batch, progress))
            results.extend(_ingested(item.document, len(item.chunks), item.status) for item in batch)
        return results

    def reindex(
        self, on_progress: ProgressHook | None = None, index_kind: IndexKind | None = None
    ) -> list[IngestedDocument]:
        """Re-chunk and re-embed every stored document with the current chunker and model, into vector
        indexes of `index_kind` (default: the kind the index has now).

        The new vectors replace the old ones in one transaction at the end, so an interrupted
        reindex leaves the index as it was.
        """
        pending = [
            _Pending(document, self._content_hash(document), self.chunker.split(document), "updated")
            for document in self.store.iter_documents()
        ]
        progress = _Progress(sum(self._units(item) for item in pending), on_progress)
        manifest = Manifest(
            model=self.encoder.name,
            dimension=self.encoder.dimension,
            chunking=self.chunker.settings,
            index_kind=index_kind or self.store.manifest.index_kind,
        )
        self.store.replace_all(manifest, self._embed(pending, progress))
        return [_ingested(item.document, len(item.chunks), item.status) for item in pending]

    def _embed(self, batch: list[_Pending], progress: _Progress) -> list[IndexedDocument]:
        """Embed the chunks of a batch and their sentences, each sentence returned in its chunk."""
        chunk_texts = [chunk.text for item in batch for chunk in item.chunks]
        if self.sentence_vectors == "late":
            vectors, sentence_vectors = self._embed_late(batch, chunk_texts, progress)
        else:
            vectors, sentence_vectors = self._embed_separate(batch, chunk_texts, progress)
        items, offset = [], 0
        for item, sentences in zip(batch, sentence_vectors, strict=True):
            items.append(
                IndexedDocument(
                    document=item.document,
                    content_hash=item.content_hash,
                    chunks=item.chunks,
                    chunk_vectors=vectors[offset : offset + len(item.chunks)],
                    chunk_terms=[chunk_terms(item.document, chunk) for chunk in item.chunks],
                    sentences=item.sentences,
                    sentence_vectors=sentences.reshape(len(item.sentences), vectors.shape[1]),
                )
            )
            offset += len(item.chunks)
        return items

    def _embed_separate(
        self, batch: list[_Pending], chunk_texts: list[str], progress: _Progress
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Chunks and distinct sentences in one call, each text alone (sentences matched by text)."""
        sentence_texts = [text for item in batch for text in item.distinct_sentences]
        vectors = self.encoder.encode_passages(chunk_texts + sentence_texts, on_progress=progress.advance)
        vectors = vectors.reshape(len(chunk_texts) + len(sentence_texts), -1)
        per_item, offset = [], len(chunk_texts)
        for item in batch:
            distinct = item.distinct_sentences
            sentence_vector = dict(zip(distinct, vectors[offset : offset + len(distinct)], strict=True))
            per_item.append(
                np.array([sentence_vector[item.sentence_text(span)] for span in item.sentences], np.float32)
            )
            offset += len(distinct)
        return vectors[: len(chunk_texts)], per_item

    def _embed_late(
        self, batch: list[_Pending], chunk_texts: list[str], progress: _Progress
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each chunk in one pass, its sentences pooled from it (a sentence in two overlapping chunks
        gets a vector from each)."""
        assert isinstance(self.encoder, SentenceSpanEncoder)  # checked in __init__
        spans = [
            [
                (span.char_start - chunk.char_start, span.char_end - chunk.char_start)
                for span in item.sentences
                if span.chunk_index == chunk.chunk_index
            ]
            for item in batch
            for chunk in item.chunks
        ]
        vectors, in_chunks = self.encoder.encode_passage_sentences(
            chunk_texts, spans, on_progress=progress.advance
        )
        per_item, offset = [], 0
        for item in batch:
            rows = in_chunks[offset : offset + len(item.chunks)]
            per_item.append(np.concatenate(rows) if rows else np.empty((0, vectors.shape[1]), np.float32))
            offset += len(item.chunks)
        return vectors, per_item

    def _units(self, item: _Pending) -> int:
        """Texts to embed (what the progress bar counts): the chunks and their sentences, each distinct
        sentence once when embedded alone, each sentence of each chunk when pooled in its chunk."""
        sentences = len(item.sentences) if self.sentence_vectors == "late" else len(item.distinct_sentences)
        return len(item.chunks) + sentences

    def _content_hash(self, document: Document) -> str:
        # The model and chunking are part of the hash: changing either makes a document stale.
        material = "\x1f".join(
            (document.model_dump_json(), self.encoder.name, self.chunker.settings.model_dump_json())
        )
        return hashlib.sha1(material.encode()).hexdigest()


@dataclass
class _Pending:
    document: Document
    content_hash: str
    chunks: list[Chunk]
    status: Literal["added", "updated"]
    sentences: list[SentenceSpan] = field(init=False)

    def __post_init__(self) -> None:
        self.sentences = [span for chunk in self.chunks for span in sentence_spans(chunk)]

    def sentence_text(self, span: SentenceSpan) -> str:
        return self.document.text[span.char_start : span.char_end]

    @property
    def distinct_sentences(self) -> list[str]:
        # Overlapping chunks share sentences: each distinct text is embedded once.
        return list(dict.fromkeys(self.sentence_text(span) for span in self.sentences))


class _Progress:
    def __init__(self, total: int, hook: ProgressHook | None) -> None:
        self.total, self.done, self.hook = total, 0, hook
        if hook:
            hook(0, total)

    def advance(self, n: int) -> None:
        self.done += n
        if self.hook:
            self.hook(self.done, self.total)


def _batches(items: list[_Pending], max_chunks: int) -> Iterator[list[_Pending]]:
    batch: list[_Pending] = []
    for item in items:
        batch.append(item)
        if sum(len(i.chunks) for i in batch) >= max_chunks:
            yield batch
            batch = []
    if batch:
        yield batch


def _ingested(document: Document, chunks: int, status: str) -> IngestedDocument:
    return IngestedDocument(
        doc_id=document.doc_id, title=document.title, section=document.section, chunks=chunks, status=status
    )
