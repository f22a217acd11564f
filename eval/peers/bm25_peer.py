"""Lexical baseline: jieba tokens and bm25s (Lucene BM25, k1 1.5, b 0.75) over the peers' 500/50 chunks."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import bm25s
import jieba
from langchain_core.documents import Document as ChunkDocument

from eval.peers.chunks import chunk_passage, split_documents
from index.documents import Document
from index.search import Passage

logger = logging.getLogger(__name__)


def tokenize(text: str) -> list[str]:
    """jieba accurate-mode words, lowercased, less the tokens holding no letter, digit or CJK character."""
    # str.isalnum() is true for letters, digits and CJK ideographs alike, false for punctuation and spaces.
    return [token.lower() for token in jieba.lcut(text) if any(char.isalnum() for char in token)]


class BM25Peer:
    """BM25 over the same chunks as the typical LangChain peer (RecursiveCharacterTextSplitter 500/50).

    Scores are raw BM25 scores; chunks sharing no token with the question (score 0) are not returned.
    """

    name = "bm25-jieba"

    def __init__(self, chunks: Sequence[ChunkDocument], documents: Sequence[Document]) -> None:
        if not chunks:
            raise ValueError("BM25Peer needs at least one chunk: the documents hold no text")
        self._chunks = list(chunks)
        self._documents = {document.doc_id: document for document in documents}
        self._index = bm25s.BM25()
        self._index.index([tokenize(chunk.page_content) for chunk in self._chunks], show_progress=False)

    @classmethod
    def build(cls, documents: Sequence[Document]) -> BM25Peer:
        chunks = split_documents(documents)
        logger.info("%s: indexing %d chunks of %d documents", cls.name, len(chunks), len(documents))
        return cls(chunks, documents)

    def retrieve(self, question: str, top_k: int) -> list[Passage]:
        tokens = tokenize(question)
        if not tokens:
            return []
        indices, scores = self._index.retrieve([tokens], k=min(top_k, len(self._chunks)), show_progress=False)
        hits = [(int(index), float(score)) for index, score in zip(indices[0], scores[0], strict=True)]
        return [
            chunk_passage(self._chunks[index], rank, score, self._documents)
            for rank, (index, score) in enumerate((hit for hit in hits if hit[1] > 0), start=1)
        ]
