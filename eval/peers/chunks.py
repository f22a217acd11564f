"""Chunks for the peers, cut by LangChain's RecursiveCharacterTextSplitter, and their citations."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.documents import Document as ChunkDocument
from langchain_text_splitters import RecursiveCharacterTextSplitter

from index.documents import Document
from index.search import Citation, Passage

# What LangChain tutorials set (the splitter's own defaults are 4000/200).
TUTORIAL_CHUNK_SIZE = 500
TUTORIAL_CHUNK_OVERLAP = 50
CHINESE_SEPARATORS = ["\n\n", "\n", "。", "！", "？", "；", "，", "、", " ", ""]


def split_documents(
    documents: Sequence[Document],
    chunk_size: int = TUTORIAL_CHUNK_SIZE,
    chunk_overlap: int = TUTORIAL_CHUNK_OVERLAP,
    separators: list[str] | None = None,
) -> list[ChunkDocument]:
    """LangChain chunks of the documents' text, with `doc_id` and `start_index` in their metadata."""
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size, chunk_overlap=chunk_overlap, separators=separators, add_start_index=True
    )
    return splitter.create_documents(
        [document.text for document in documents], metadatas=[{"doc_id": d.doc_id} for d in documents]
    )


def chunk_passage(chunk: ChunkDocument, rank: int, score: float, documents: dict[str, Document]) -> Passage:
    """A `Passage` citing the chunk's document.

    LangChain finds `start_index` by searching the chunk in the text, which can land on an earlier copy of a
    repeated sentence; the span is kept only where the document text at it is the chunk, else both offsets
    are -1 and the page is unknown.
    """
    document = documents[chunk.metadata["doc_id"]]
    start = chunk.metadata["start_index"]
    end = start + len(chunk.page_content)
    if start < 0 or document.text[start:end] != chunk.page_content:
        start = end = -1
    return Passage(
        rank=rank,
        score=score,
        text=chunk.page_content,
        citation=Citation(
            doc_id=document.doc_id,
            title=document.title,
            section=document.section,
            page=document.page_at(start) if start >= 0 else None,
            source=document.source,
            char_start=start,
            char_end=end,
        ),
    )
