from __future__ import annotations

import pytest

pytest.importorskip("langchain_community", reason="the peers need the optional extra [peers]")

from langchain_community.vectorstores import FAISS
from langchain_core.embeddings import Embeddings

from eval.peers.bm25_peer import BM25Peer, tokenize
from eval.peers.chunks import chunk_passage, split_documents
from eval.peers.langchain_peer import LangChainPeer
from eval.peers.reference import reference_comparison
from eval.results import EvalReport
from eval.runner import build_mode_report
from index.documents import Document, PageStart
from tests.eval.fakes import make_result


def _document(doc_id: str, title: str, text: str) -> Document:
    return Document(
        doc_id=doc_id,
        title=title,
        text=text,
        source="r.txt",
        section="技术情报",
        page_map=[PageStart(char_start=0, page=25), PageStart(char_start=20, page=26)],
    )


DOCUMENTS = [
    _document("d1", "量子计算", "“九章”问世，量子计算真的要来了？九章求解高斯玻色取样只需200秒。"),
    _document("d2", "显示产业", "Micro-LED有望重塑显示技术格局。面板出货缘何创新高？"),
]


class KeywordEmbeddings(Embeddings):
    """Two-dimensional vectors: how much a text is about quantum computing vs displays."""

    def _vector(self, text: str) -> list[float]:
        quantum, display = float("量子" in text or "九章" in text), float("显示" in text or "LED" in text)
        norm = (quantum**2 + display**2) ** 0.5 or 1.0
        return [quantum / norm, display / norm]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


def test_tokenize_lowercases_and_drops_tokens_without_letters_digits_or_cjk():
    assert tokenize("Micro-LED 有望，重塑！") == ["micro", "led", "有望", "重塑"]


def test_split_documents_cuts_with_overlap_and_records_where_each_chunk_starts():
    text = "甲" * 30 + "\n\n" + "乙" * 30
    chunks = split_documents([_document("d", "t", text)], chunk_size=40, chunk_overlap=5)
    assert [(chunk.page_content, chunk.metadata) for chunk in chunks] == [
        ("甲" * 30, {"doc_id": "d", "start_index": 0}),
        ("乙" * 30, {"doc_id": "d", "start_index": 32}),
    ]


def test_chunk_passage_cites_the_exact_span_and_its_page():
    chunk = split_documents(DOCUMENTS[:1], chunk_size=20, chunk_overlap=0)[1]
    passage = chunk_passage(chunk, rank=2, score=0.5, documents={"d1": DOCUMENTS[0]})
    citation = passage.citation
    assert DOCUMENTS[0].text[citation.char_start : citation.char_end] == passage.text
    assert (citation.doc_id, citation.title, citation.section, citation.page) == (
        "d1",
        "量子计算",
        "技术情报",
        26,
    )


def test_chunk_passage_gives_offsets_of_minus_one_when_the_start_does_not_hold_the_chunk():
    chunk = split_documents(DOCUMENTS[:1], chunk_size=20, chunk_overlap=0)[0]
    chunk.metadata["start_index"] = 3
    citation = chunk_passage(chunk, rank=1, score=0.5, documents={"d1": DOCUMENTS[0]}).citation
    assert (citation.char_start, citation.char_end, citation.page) == (-1, -1, None)


def test_bm25_peer_ranks_the_chunk_sharing_words_and_leaves_out_chunks_without_any():
    peer = BM25Peer.build(DOCUMENTS)
    passages = peer.retrieve("九章 需要 多少秒", top_k=5)
    assert [passage.citation.doc_id for passage in passages] == ["d1"]
    assert passages[0].score > 0
    assert peer.retrieve("？？", top_k=5) == []


def test_langchain_peer_scores_cosine_from_faiss_distances():
    chunks = split_documents(DOCUMENTS)
    peer = LangChainPeer("lc", FAISS.from_documents(chunks, KeywordEmbeddings()), DOCUMENTS)
    passages = peer.retrieve("量子计算", top_k=2)
    assert [passage.citation.title for passage in passages] == ["量子计算", "显示产业"]
    # Unit vectors: the same direction scores cosine 1, an orthogonal one 0.
    assert [passage.score for passage in passages] == pytest.approx([1.0, 0.0])
    assert [passage.rank for passage in passages] == [1, 2]


def test_reference_comparison_sets_measured_figures_beside_the_issues_ones():
    results = [make_result(answer_rank=1, relevant_ranks=[1]), make_result(answer_rank=6, relevant_ranks=[6])]
    mode = build_mode_report("bm25-jieba", "seed.jsonl", 10, results)
    report = EvalReport(questions_file="seed.jsonl", top_k=10, modes={"bm25-jieba": mode})
    assert reference_comparison(report).splitlines() == [
        "| peer | metric | measured | reference |",
        "|---|---|---|---|",
        "| bm25-jieba | answer_hit@1 | 0.500 | 0.72 |",
        "| bm25-jieba | answer_hit@5 | 0.500 | 0.83 |",
    ]
