"""The retrieval choices measured one against another (the "what lost" table of docs/EVAL.md).

    python scripts/ablations.py QUESTIONS.jsonl --corpus PATH [--corpus PATH ...] [--with-context-index]
        [--only TEXT]

Every variant is the product's Searcher with one thing changed; all run on the same cached corpus index
(`citeqa eval` builds the same one). `--with-context-index` also builds, uncached, an index whose chunk
vectors embed the article's section and title with the passage, as the first design did. `--only TEXT`
runs the variants whose name holds TEXT (e.g. `--only candidates`).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from citeqa.settings import get_settings
from eval.corpus import load_resources
from eval.retrievers import CiteQARetriever
from eval.runner import run_eval
from index.chunking import matching_text
from index.ingest import Indexer
from index.lexical import Keywords
from index.search import DEFAULT_MODE, CandidateCounts, RankingWeights, Searcher, SearchMode
from index.storage.documents import IndexedDocument
from index.store import IndexStore
from index.text import terms


class AlwaysKeywords(Searcher):
    """Hybrid search that weighs BM25 of the question's own words whatever its script (no script gate,
    no translation)."""

    def keywords(self, question: str, mode: SearchMode = DEFAULT_MODE) -> tuple[Keywords, float]:
        return Keywords(terms=terms(question)), self.weights.lexical


class TranslationsWithSourceWords(Searcher):
    """Hybrid search whose translated keywords also hold the English words as written (as lexical has)."""

    def keywords(self, question: str, mode: SearchMode = DEFAULT_MODE) -> tuple[Keywords, float]:
        # Lexical mode's keywords with hybrid's weights: the same for a question in the articles' script.
        return super().keywords(question, "lexical" if mode == "hybrid" else mode)


class ContextEmbeddingIndexer(Indexer):
    """Embeds each chunk with its article's section and title in front, as the first design did."""

    def _embed(self, batch, progress) -> list[IndexedDocument]:
        items = super()._embed(batch, progress)
        texts = [matching_text(item.document, chunk) for item in items for chunk in item.chunks]
        vectors = self.encoder.encode_passages(texts)
        rebuilt, offset = [], 0
        for item in items:
            count = len(item.chunks)
            rebuilt.append(
                IndexedDocument(**{**item.__dict__, "chunk_vectors": vectors[offset : offset + count]})
            )
            offset += count
        return rebuilt


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("questions", type=Path)
    parser.add_argument("--corpus", type=Path, action="append", required=True)
    parser.add_argument("--with-context-index", action="store_true")
    parser.add_argument("--only", default="", help="Run only the variants whose name holds this text.")
    args = parser.parse_args()
    settings = get_settings()
    resources = load_resources(settings, args.corpus)
    collection = resources.collection()
    store, encoder, chunker = collection.store, resources.encoder, collection.indexer.chunker
    manifest = store.manifest
    default = settings.ranking_weights()

    def weights(**changes: float) -> RankingWeights:
        return default.model_copy(update=changes)

    translator = collection.searcher.translator
    retrievers = [
        CiteQARetriever(Searcher(store, encoder, default, translator), "hybrid (default)", "hybrid"),
        CiteQARetriever(Searcher(store, encoder, default), "hybrid, no translation", "hybrid"),
        CiteQARetriever(
            AlwaysKeywords(store, encoder, default), "hybrid, untranslated keywords in any script", "hybrid"
        ),
        CiteQARetriever(
            TranslationsWithSourceWords(store, encoder, default, translator),
            "hybrid, translations + English words",
            "hybrid",
        ),
        CiteQARetriever(
            Searcher(store, encoder, weights(translated=0.1), translator),
            "hybrid, translated weight 0.1",
            "hybrid",
        ),
        CiteQARetriever(
            Searcher(store, encoder, weights(translated=0.3), translator),
            "hybrid, translated weight 0.3",
            "hybrid",
        ),
        CiteQARetriever(
            Searcher(store, encoder, weights(translated=0.5), translator),
            "hybrid, translated weight 0.5",
            "hybrid",
        ),
        CiteQARetriever(
            Searcher(store, encoder, weights(lexical=0.3), translator), "hybrid, BM25 weight 0.3", "hybrid"
        ),
        CiteQARetriever(
            Searcher(store, encoder, weights(lexical=0.8), translator), "hybrid, BM25 weight 0.8", "hybrid"
        ),
        CiteQARetriever(Searcher(store, encoder, default), "dense (chunk + sentence)", "dense"),
        CiteQARetriever(Searcher(store, encoder, weights(sentence=0.0)), "dense, chunk only", "dense"),
        CiteQARetriever(Searcher(store, encoder, weights(sentence=1.0)), "dense, sentence only", "dense"),
        CiteQARetriever(
            Searcher(store, encoder, weights(sentence=0.3)), "dense, sentence share 0.3", "dense"
        ),
        CiteQARetriever(
            Searcher(store, encoder, weights(sentence=0.7)), "dense, sentence share 0.7", "dense"
        ),
        CiteQARetriever(Searcher(store, encoder, default, translator), "lexical (BM25)", "lexical"),
        CiteQARetriever(Searcher(store, encoder, default), "lexical, no translation", "lexical"),
    ]
    # How many candidates each signal gives (chunks, sentences, keywords); the default is CandidateCounts().
    everything = 10**9
    for counts in (
        CandidateCounts(50, 100, 50),
        CandidateCounts(100, 200, 100),
        CandidateCounts(),
        CandidateCounts(400, 800, 400),
        CandidateCounts(everything, everything, everything),
    ):
        label = f"{counts.chunks}/{counts.sentences}/{counts.keywords}"
        label = "every chunk" if counts.chunks == everything else label
        label += " (default)" if counts == CandidateCounts() else ""
        retrievers.append(
            CiteQARetriever(
                Searcher(store, encoder, default, translator, counts), f"hybrid, candidates {label}", "hybrid"
            )
        )
    retrievers = [retriever for retriever in retrievers if args.only in retriever.name]
    with tempfile.TemporaryDirectory() as scratch:
        if args.with_context_index:
            context_store = IndexStore.open(Path(scratch), manifest)
            ContextEmbeddingIndexer(context_store, encoder, chunker).ingest_paths(args.corpus)
            retrievers.append(
                CiteQARetriever(
                    Searcher(context_store, encoder, weights(sentence=0.0)),
                    "dense, chunk only, title+section embedded",
                    "dense",
                )
            )
        if not retrievers:
            parser.error(f"No variant's name holds {args.only!r}.")
        report = run_eval(args.questions, retrievers, top_k=10)
    print("| variant | hit@1 | hit@5 | MRR@10 | article hit@1 | zh hit@1 | en hit@1 |")
    print("|---|---|---|---|---|---|---|")
    for name, mode in report.modes.items():
        summary = mode.summary.model_dump(by_alias=True)
        by_lang = {lang: b.model_dump(by_alias=True)["answer_hit@1"] for lang, b in mode.by_lang.items()}
        cells = [
            summary["answer_hit@1"],
            summary["answer_hit@5"],
            summary["answer_mrr@10"],
            summary["article_hit@1"],
        ]
        cells += [by_lang.get("zh"), by_lang.get("en")]
        print(
            f"| {name} | " + " | ".join("–" if c is None or np.isnan(c) else f"{c:.3f}" for c in cells) + " |"
        )


if __name__ == "__main__":
    main()
