"""Hybrid ranking weights chosen by cross-validation on tuning questions, and checked on held-out ones.

    python scripts/tune_weights.py TUNE.jsonl [TUNE.jsonl ...] --corpus PATH [--check CHECK.jsonl ...]
        [--sentence 0.3 0.5 0.7] [--lexical 0.2 0.3 0.5] [--translated 0.1 0.2 0.3] [--repeats 20]

Every combination of the weights given is run once over every answerable tuning question (hybrid mode,
top 10, the corpus's cached index as `citeqa eval` builds it). Then, repeated `--repeats` times, the
questions are split into 5 folds: the combination with the best MRR@10 on four folds (ties: nearest the
defaults) is scored on the fifth. The out-of-fold figure, against the defaults' on the same folds, is
what choosing weights this way would give on unseen questions. The combination best on all tuning
questions is then run once on the `--check` files, next to the defaults: they are never used to choose.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from citeqa.settings import get_settings
from eval.corpus import load_resources
from eval.metrics import MAX_K, snippet_ranks
from eval.questions import EvalQuestion, load_questions
from index.search import RankingWeights, Searcher
from index.store import IndexStore
from index.translation import Translator
from index.vectors import TextEncoder

FOLDS = 5
Combination = tuple[float, float, float]  # sentence, lexical, translated


def reciprocal_ranks(
    questions: list[EvalQuestion],
    store: IndexStore,
    encoder: TextEncoder,
    translator: Translator | None,
    weights: RankingWeights,
) -> np.ndarray:
    """1/rank of each question's first passage holding an answer snippet within the top 10 (0: none)."""
    searcher = Searcher(store, encoder, weights, translator)
    found = []
    for question in questions:
        passages = searcher.search(question.question, top_k=MAX_K).passages
        ranks = snippet_ranks([passage.text for passage in passages], question.answer_snippets)
        found.append(1.0 / ranks[0] if ranks else 0.0)
    return np.array(found)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("tune", type=Path, nargs="+")
    parser.add_argument("--corpus", type=Path, action="append", required=True)
    parser.add_argument("--check", type=Path, action="append", default=[])
    parser.add_argument("--sentence", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    parser.add_argument("--lexical", type=float, nargs="+", default=[0.2, 0.3, 0.5, 0.8])
    parser.add_argument("--translated", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    settings = get_settings().model_copy(update={"query_cache_size": 4096})
    resources = load_resources(settings, args.corpus)
    collection = resources.collection()
    store, encoder, translator = collection.store, resources.encoder, collection.searcher.translator
    default = settings.ranking_weights()
    default_combination = (default.sentence, default.lexical, default.translated)

    def answerable(paths: list[Path]) -> list[EvalQuestion]:
        return [q for path in paths for q in load_questions(path) if q.gold_titles and q.answer_snippets]

    def run(questions: list[EvalQuestion], combination: Combination) -> np.ndarray:
        sentence, lexical, translated = combination
        weights = default.model_copy(
            update={"sentence": sentence, "lexical": lexical, "translated": translated}
        )
        return reciprocal_ranks(questions, store, encoder, translator, weights)

    tune = answerable(args.tune)
    grid = sorted({*itertools.product(args.sentence, args.lexical, args.translated), default_combination})
    results = {combination: run(tune, combination) for combination in grid}

    def distance(combination: Combination) -> float:
        return float(np.abs(np.subtract(combination, default_combination)).sum())

    def best(rows: np.ndarray) -> Combination:
        return max(grid, key=lambda c: (round(float(results[c][rows].mean()), 9), -distance(c)))

    rng = np.random.default_rng(0)
    chosen_rr, default_rr, picks = [], [], []
    for _ in range(args.repeats):
        folds = np.array_split(rng.permutation(len(tune)), FOLDS)
        for k, held_out in enumerate(folds):
            train = np.concatenate([fold for j, fold in enumerate(folds) if j != k])
            pick = best(train)
            picks.append(pick)
            chosen_rr.append(results[pick][held_out])
            default_rr.append(results[default_combination][held_out])
    chosen, defaults = np.concatenate(chosen_rr), np.concatenate(default_rr)

    def line(name: str, rr: np.ndarray) -> str:
        return f"| {name} | {float((rr == 1).mean()):.3f} | {float(rr.mean()):.3f} |"

    print(
        f"{len(tune)} answerable tuning questions, {len(grid)} combinations (sentence, lexical, translated)\n"
    )
    print("| out of fold (repeated 5-fold CV) | hit@1 | MRR@10 |\n|---|---:|---:|")
    print(line(f"defaults {default_combination}", defaults))
    print(line("chosen on the other folds", chosen))
    counts = {c: picks.count(c) for c in set(picks)}
    print(
        "\nchosen in the folds:",
        ", ".join(f"{c} x{n}" for c, n in sorted(counts.items(), key=lambda x: -x[1])),
    )
    final = best(np.arange(len(tune)))
    print(f"\nbest on all tuning questions: {final}")
    print("\n| combination | tune hit@1 | tune MRR@10 |\n|---|---:|---:|")
    for combination in sorted(grid, key=lambda c: -results[c].mean())[:8]:
        print(line(str(combination), results[combination]))
    if args.check:
        check = answerable(args.check)
        print(f"\n| check ({len(check)} answerable) | hit@1 | MRR@10 |\n|---|---:|---:|")
        print(line(f"defaults {default_combination}", run(check, default_combination)))
        print(line(f"chosen {final}", run(check, final)))


if __name__ == "__main__":
    main()
