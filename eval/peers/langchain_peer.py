"""LangChain baseline: FAISS + HuggingFaceEmbeddings over RecursiveCharacterTextSplitter chunks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from langchain_community.vectorstores import FAISS
from langchain_huggingface import HuggingFaceEmbeddings

from eval.peers.chunks import (
    CHINESE_SEPARATORS,
    TUTORIAL_CHUNK_OVERLAP,
    TUTORIAL_CHUNK_SIZE,
    chunk_passage,
    split_documents,
)
from index.documents import Document
from index.search import Passage

logger = logging.getLogger(__name__)


class LangChainPeer:
    """Dense retrieval the way a LangChain user wires it; build it with `typical` or `tuned`.

    Scores are cosine similarities: LangChain's FAISS returns squared L2 distances, and for the unit-length
    vectors this model produces cosine = 1 - distance / 2.
    """

    def __init__(self, name: str, store: FAISS, documents: Sequence[Document]) -> None:
        self.name = name
        self._store = store
        self._documents = {document.doc_id: document for document in documents}

    @classmethod
    def build(
        cls,
        name: str,
        documents: Sequence[Document],
        model_folder: Path,
        chunk_size: int,
        chunk_overlap: int,
        separators: list[str] | None = None,
        query_prompt: str = "",
        passage_prompt: str = "",
    ) -> LangChainPeer:
        """Chunk and embed every document (minutes on CPU for a few thousand chunks)."""
        chunks = split_documents(documents, chunk_size, chunk_overlap, separators)
        logger.info("%s: embedding %d chunks of %d documents", name, len(chunks), len(documents))
        embeddings = HuggingFaceEmbeddings(
            model_name=str(model_folder),
            model_kwargs={"device": "cpu"},
            encode_kwargs={"prompt": passage_prompt} if passage_prompt else {},
            query_encode_kwargs={"prompt": query_prompt} if query_prompt else {},
        )
        return cls(name, FAISS.from_documents(chunks, embeddings), documents)

    @classmethod
    def typical(cls, documents: Sequence[Document], model_folder: Path) -> LangChainPeer:
        """Tutorial settings: 500/50 chunks, the splitter's default separators, no e5 prompts."""
        return cls.build("langchain", documents, model_folder, TUTORIAL_CHUNK_SIZE, TUTORIAL_CHUNK_OVERLAP)

    @classmethod
    def tuned(cls, documents: Sequence[Document], model_folder: Path) -> LangChainPeer:
        """Chinese separators, 300/60 chunks and the e5 `query: ` / `passage: ` prompts."""
        return cls.build(
            "langchain-tuned",
            documents,
            model_folder,
            chunk_size=300,
            chunk_overlap=60,
            separators=CHINESE_SEPARATORS,
            query_prompt="query: ",
            passage_prompt="passage: ",
        )

    def retrieve(self, question: str, top_k: int) -> list[Passage]:
        hits = self._store.similarity_search_with_score(question, k=top_k)
        return [
            chunk_passage(chunk, rank, 1.0 - float(distance) / 2, self._documents)
            for rank, (chunk, distance) in enumerate(hits, start=1)
        ]
