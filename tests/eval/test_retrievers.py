from __future__ import annotations

from eval.questions import EvalQuestion
from eval.retrievers import CiteQARetriever
from eval.runner import Retriever, evaluate_question
from index.search import Searcher
from tests.conftest import make_document


def test_citeqa_retriever_returns_the_searchers_passages_with_their_citations(store, indexer, fake_encoder):
    documents = [
        make_document("量子计算", "九章量子计算原型机问世，求解高斯玻色取样只需200秒。"),
        make_document("显示产业", "Micro-LED有望重塑显示技术格局，面板出货创新高。"),
    ]
    indexer.add(documents)
    retriever = CiteQARetriever(Searcher(store, fake_encoder), name="dense")
    assert isinstance(retriever, Retriever)
    passages = retriever.retrieve("九章量子计算需要多少秒？", top_k=1).passages
    assert [(passage.rank, passage.citation.title) for passage in passages] == [(1, "量子计算")]
    question = EvalQuestion(
        id="q",
        question="九章量子计算需要多少秒？",
        lang="zh",
        gold_titles=["量子计算"],
        answer_snippets=["200秒"],
    )
    result = evaluate_question(question, passages, latency_ms=1.0)
    assert (result.answer_rank, result.article_rank) == (1, 1)
