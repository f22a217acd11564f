"""Fit the answerable verdict's logistic regression by cross-validation on tuning questions.

    python scripts/fit_answerable.py extract QUESTIONS.jsonl [...] --corpus PATH [...] --out FEATURES.jsonl
        [--held-out]
    python scripts/fit_answerable.py fit FEATURES.jsonl [...] [--repeats 20] [--share 0.04] [--final SET]
    python scripts/fit_answerable.py score FEATURES.jsonl [...]

`extract` searches every question once (hybrid, the corpus's cached index as `citeqa eval` builds it) and
writes the evidence its verdict weighs (index.answerable.Evidence), with whether the question is
answerable: fitting then needs no model. `--held-out` also asks each answerable question with its gold
articles filtered out of the search, as an unanswerable one (scripts/calibrate_answerable.py's construction);
`--other-collection PREFIX` asks every question among the documents of another collection only.

`fit` compares feature sets by repeated stratified 5-fold cross-validation: on four folds a logistic
regression is fitted (L2, C=1, on standardised features, classes balanced) and each script's threshold is set
where `--share` of those folds' answerable questions of that script fall below it, as the thresholds were
always calibrated; the fifth fold is then scored. "today" is the previous rule refitted the same way: the
confidence relevance + 2 × margin with a threshold per script (the default settings). Then the chosen set
(`--final`) is fitted on every question and printed as the settings that make it the verdict: the
coefficients on the raw features, and the thresholds on its log-odds (the answerable score it gives). Only tuning questions go in: the check part is evaluated
with `citeqa eval` once the settings are chosen.

`score` gives the shares the configured verdict (CITEQA_ANSWERABLE_* settings) flags, per file, kind and
script, from extracted features: how the extbench figures were measured without searching twice.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from citeqa.settings import get_settings
from eval.corpus import load_resources
from eval.questions import EvalQuestion, load_questions
from index.answerable import FEATURES, Evidence, linear_score
from index.search import SearchFilters
from scripts.calibrate_answerable import other_documents, threshold_at_share

FOLDS = 5
# The previous rule's confidence, still the default: relevance plus twice the margin (CITEQA_ANSWERABLE_MARGIN).
TODAY_MARGIN = 2.0
_BASE = ("relevance", "margin", "cjk")
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "relevance, margin, script": _BASE,
    "+ coverage": (*_BASE, "coverage"),
    "+ missing": (*_BASE, "missing"),
    "+ unheld": (*_BASE, "unheld"),
    "+ coverage, missing": (*_BASE, "coverage", "missing"),
    "+ coverage_top, missing": (*_BASE, "coverage_top", "missing"),
    "+ coverage, unheld": (*_BASE, "coverage", "unheld"),
    "+ coverage_sentence": (*_BASE, "coverage_sentence"),
    "+ coverage, coverage_sentence": (*_BASE, "coverage", "coverage_sentence"),
    "+ coverage, coverage_sentence, unheld": (*_BASE, "coverage", "coverage_sentence", "unheld"),
    "+ all word features": (*_BASE, "coverage", "coverage_top", "coverage_sentence", "missing", "unheld"),
    "words only": ("cjk", "coverage", "coverage_top", "coverage_sentence", "missing", "unheld"),
}


def extract(args: argparse.Namespace) -> None:
    settings = get_settings()
    resources = load_resources(settings, args.corpus)
    try:
        collection = resources.collection()
        searcher = collection.searcher
        documents = [(summary.doc_id, summary.title) for summary in collection.store.list_documents()]
        elsewhere = [
            doc_id
            for doc_id, _ in documents
            if args.other_collection and doc_id.startswith(args.other_collection)
        ]
        with args.out.open("w", encoding="utf-8") as out:
            for path in args.questions:
                for question in load_questions(path):
                    for answerable, filters, kind in _asked(question, documents, elsewhere, args.held_out):
                        _, evidence = searcher.search_with_evidence(
                            question.question, top_k=1, filters=filters
                        )
                        if evidence is None:
                            continue
                        row = {"file": path.name, "id": question.id, "kind": kind, "answerable": answerable}
                        features = dict(zip(FEATURES, evidence.vector().tolist(), strict=True))
                        out.write(json.dumps(row | features) + "\n")
    finally:
        resources.close()


def _asked(
    question: EvalQuestion, documents: list[tuple[str, str]], elsewhere: list[str], held_out: bool
) -> list[tuple[bool, SearchFilters | None, str]]:
    """How a question is asked: (answerable, filters, kind) as it is, and as unanswerable without its gold
    articles and/or among another collection's documents only (an empty filter would mean every document)."""
    asked: list[tuple[bool, SearchFilters | None, str]] = [(question.answerable, None, "")]
    others = other_documents(question, documents) if held_out and question.answerable else []
    if others:
        asked.append((False, SearchFilters(doc_ids=others), "held-out"))
    if elsewhere:
        asked.append((False, SearchFilters(doc_ids=elsewhere), "other collection"))
    return asked


def _read(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    rows = [json.loads(line) for path in paths for line in path.read_text(encoding="utf-8").splitlines()]
    features = np.array([[row[name] for name in FEATURES] for row in rows], dtype=np.float64)
    return features, np.array([row["answerable"] for row in rows], dtype=bool)


def _columns(names: tuple[str, ...]) -> list[int]:
    return [FEATURES.index(name) for name in names]


def _thresholds(
    scores: np.ndarray, answerable: np.ndarray, cjk: np.ndarray, share: float
) -> dict[bool, float]:
    """Per script, the score below which `share` of its answerable questions fall."""
    return {
        script: threshold_at_share(scores[answerable & (cjk == script)], share) for script in (True, False)
    }


def _flags(scores: np.ndarray, cjk: np.ndarray, thresholds: dict[bool, float]) -> np.ndarray:
    return scores < np.where(cjk, thresholds[True], thresholds[False])


def _model(features: np.ndarray, answerable: np.ndarray) -> Pipeline:
    """Standardised first, so that the penalty weighs every feature alike whatever its scale."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000))
    return model.fit(features, answerable)


def _raw_coefficients(model: Pipeline) -> tuple[float, np.ndarray]:
    """The intercept and coefficients on the features as they are: what the settings hold."""
    scaler, regression = model[0], model[-1]
    coefficients = regression.coef_[0] / scaler.scale_
    return float(regression.intercept_[0] - coefficients @ scaler.mean_), coefficients


def fit(args: argparse.Namespace) -> None:
    features, answerable = _read(args.features)
    cjk = features[:, FEATURES.index("cjk")] > 0
    today = features[:, FEATURES.index("relevance")] + TODAY_MARGIN * features[:, FEATURES.index("margin")]
    folds = RepeatedStratifiedKFold(n_splits=FOLDS, n_repeats=args.repeats, random_state=0)
    flagged: dict[str, list[np.ndarray]] = {name: [] for name in ["today", *FEATURE_SETS]}
    truth: list[np.ndarray] = []
    for train, test in folds.split(features, answerable):
        truth.append(answerable[test])
        thresholds = _thresholds(today[train], answerable[train], cjk[train], args.share)
        flagged["today"].append(_flags(today[test], cjk[test], thresholds))
        for name, names in FEATURE_SETS.items():
            columns = _columns(names)
            model = _model(features[train][:, columns], answerable[train])
            train_scores = model.decision_function(features[train][:, columns])
            thresholds = _thresholds(train_scores, answerable[train], cjk[train], args.share)
            test_scores = model.decision_function(features[test][:, columns])
            flagged[name].append(_flags(test_scores, cjk[test], thresholds))
    labels = np.concatenate(truth)
    print(
        f"{answerable.size} questions ({int((~answerable).sum())} unanswerable), {FOLDS}-fold CV x {args.repeats}, "
        f"thresholds at {args.share:.0%} of the training folds' answerable questions per script\n"
    )
    print(
        "| out of fold | unanswerable flagged | answerable flagged | zh: unanswerable / answerable | "
        "en: unanswerable / answerable |\n|---|---:|---:|---:|---:|"
    )
    cjk_all = np.concatenate([cjk[test] for _, test in folds.split(features, answerable)])
    for name, parts in flagged.items():
        flags = np.concatenate(parts)

        def rate(mask: np.ndarray, flags: np.ndarray = flags) -> str:
            return f"{float(flags[mask].mean()):.3f}"

        print(
            f"| {name} | {rate(~labels)} | {rate(labels)} | {rate(~labels & cjk_all)} / {rate(labels & cjk_all)} | "
            f"{rate(~labels & ~cjk_all)} / {rate(labels & ~cjk_all)} |"
        )
    final = FEATURE_SETS[args.final]
    columns = _columns(final)
    model = _model(features[:, columns], answerable)
    scores = model.decision_function(features[:, columns])
    thresholds = _thresholds(scores, answerable, cjk, args.share)
    intercept, raw = _raw_coefficients(model)
    coefficients = dict.fromkeys(FEATURES, 0.0) | dict(zip(final, raw.tolist(), strict=True))
    print(f"\nfitted on every question, features: {args.final}")
    print(f"CITEQA_ANSWERABLE_INTERCEPT={intercept:.4f}")
    for name, value in coefficients.items():
        print(f"CITEQA_ANSWERABLE_{name.upper()}={value:.4f}")
    print(f"CITEQA_ANSWERABLE_THRESHOLD_CJK={thresholds[True]:.4f}")
    print(f"CITEQA_ANSWERABLE_THRESHOLD_OTHER={thresholds[False]:.4f}")
    in_sample = _flags(scores, cjk, thresholds)
    print(
        f"in sample: unanswerable flagged {float(in_sample[~answerable].mean()):.3f}, "
        f"answerable flagged {float(in_sample[answerable].mean()):.3f}"
    )


def score(args: argparse.Namespace) -> None:
    weights = get_settings().ranking_weights()
    coefficients = weights.answerable_coefficients()
    rows = [
        json.loads(line) for path in args.features for line in path.read_text(encoding="utf-8").splitlines()
    ]
    groups: dict[tuple[str, str, str], list[bool]] = {}
    for row in rows:
        evidence = Evidence(**{name: row[name] for name in FEATURES})
        threshold = weights.answerable_threshold_cjk if row["cjk"] else weights.answerable_threshold_other
        flagged = linear_score(evidence, weights.answerable_intercept, coefficients) < threshold
        kind = row["kind"] or ("answerable" if row["answerable"] else "unanswerable")
        groups.setdefault((row["file"], kind, "zh" if row["cjk"] else "other"), []).append(flagged)
    print("| file | questions | script | n | flagged |\n|---|---|---|---:|---:|")
    for (file, kind, script), flags in sorted(groups.items()):
        print(f"| {file} | {kind} | {script} | {len(flags)} | {float(np.mean(flags)):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    extracting = commands.add_parser("extract")
    extracting.add_argument("questions", type=Path, nargs="+")
    extracting.add_argument("--corpus", type=Path, action="append", required=True)
    extracting.add_argument("--out", type=Path, required=True)
    extracting.add_argument("--held-out", action="store_true")
    extracting.add_argument(
        "--other-collection",
        metavar="PREFIX",
        default="",
        help="also ask every question among the documents whose id starts with PREFIX, as unanswerable "
        "(extbench: CMRC questions among the XQuAD paragraphs, `xquad-`, and the reverse, `cmrc-`)",
    )
    fitting = commands.add_parser("fit")
    fitting.add_argument("features", type=Path, nargs="+")
    fitting.add_argument("--repeats", type=int, default=20)
    fitting.add_argument("--share", type=float, default=0.04)
    fitting.add_argument("--final", choices=list(FEATURE_SETS), default="+ coverage_sentence")
    scoring = commands.add_parser("score")
    scoring.add_argument("features", type=Path, nargs="+")
    args = parser.parse_args()
    {"extract": extract, "fit": fit, "score": score}[args.command](args)


if __name__ == "__main__":
    main()
