"""Builds the three peers on a corpus and sets their figures beside the reference ones from the issue.

    python -m eval.peers.reference QUESTIONS.jsonl --corpus PATH [--corpus PATH ...] [--format text] [--out DIR]

The reference LangChain figures match the report read as one plain-text document (`--format text`, what
LangChain's TextLoader gives); the product's report reader (`--format auto`) splits it into articles first.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from embeddings.embedded import prepare_embedded_model
from eval.peers.bm25_peer import BM25Peer
from eval.peers.langchain_peer import LangChainPeer
from eval.results import EvalReport
from eval.runner import Retriever, run_eval
from index.documents import Document
from index.readers import ReadFormat, read_path

logger = logging.getLogger(__name__)

# Snippet hit rates on seed_dev.jsonl quoted by the issue (LangChain passages up to 500 characters).
REFERENCE_FIGURES: dict[str, dict[str, float]] = {
    "langchain": {"answer_hit@1": 0.59, "answer_hit@5": 0.93, "answer_mrr@10": 0.74},
    "langchain-tuned": {"answer_hit@1": 0.72, "answer_hit@5": 0.93, "answer_mrr@10": 0.82},
    "bm25-jieba": {"answer_hit@1": 0.72, "answer_hit@5": 0.83},
}


def read_corpus(paths: Sequence[Path], format: ReadFormat = "auto") -> list[Document]:
    """Every document the product's readers get from `paths`; unreadable inputs are logged and skipped."""
    documents: list[Document] = []
    for path in paths:
        result = read_path(path, format=format)
        for problem in result.problems:
            logger.warning("Skipped while reading the corpus: %s", problem)
        documents.extend(result.documents)
    return documents


def build_peers(documents: Sequence[Document], model_folder: Path) -> list[Retriever]:
    """The typical and tuned LangChain peers and the BM25 peer, in that order."""
    return [
        LangChainPeer.typical(documents, model_folder),
        LangChainPeer.tuned(documents, model_folder),
        BM25Peer.build(documents),
    ]


def reference_comparison(report: EvalReport) -> str:
    """A Markdown table: each peer's measured figure next to the reference one, where there is one."""
    lines = ["| peer | metric | measured | reference |", "|---|---|---|---|"]
    for name, figures in REFERENCE_FIGURES.items():
        if name not in report.modes:
            continue
        summary = report.modes[name].summary.model_dump()
        for key, expected in figures.items():
            measured = summary[key]
            shown = "–" if measured is None else f"{measured:.3f}"
            lines.append(f"| {name} | {key} | {shown} | {expected:.2f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> EvalReport:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("questions", type=Path)
    parser.add_argument("--corpus", type=Path, action="append", required=True)
    parser.add_argument("--format", choices=get_args(ReadFormat), default="auto")
    parser.add_argument("--model-cache", type=Path, default=Path("var/models"))
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    documents = read_corpus(args.corpus, args.format)
    peers = build_peers(documents, prepare_embedded_model(args.model_cache))
    report = run_eval(args.questions, peers, top_k=args.top_k, out_dir=args.out)
    logger.info("Peers against the reference figures:\n%s", reference_comparison(report))
    return report


if __name__ == "__main__":
    main()
