"""`citeqa eval`: CiteQA's search modes (and, with --compare, the peers) over question files, one table each.

The model is loaded once per run and shared by every mode; with several question files the index and the
peers are built once and reused for all of them. Progress and logs go to stderr, so stdout holds only the
table or the JSON document.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import rich
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from citeqa.errors import EvalConfigError
from citeqa.settings import Settings, get_settings
from eval.corpus import check_corpus_paths, load_resources
from eval.questions import load_questions
from eval.results import EvalReport, Summary
from index.ingest import ProgressHook
from index.search import DEFAULT_MODE, MAX_TOP_K, SEARCH_MODES, check_mode

if TYPE_CHECKING:
    from eval.runner import Retriever

    PeerBuilder = Callable[[Sequence[Path], Path], list[Retriever]]

logger = logging.getLogger(__name__)
console = Console()

PIPED_TABLE_WIDTH = 160

# (column header, Summary key) of the terminal table: the main metrics of the issue.
TABLE_COLUMNS = [
    ("hit@1", "answer_hit@1"),
    ("hit@5", "answer_hit@5"),
    ("MRR@10", "answer_mrr@10"),
    ("nDCG@10", "ndcg@10"),
    ("art hit@1", "article_hit@1"),
    ("art hit@5", "article_hit@5"),
]


def eval_command(
    questions: Annotated[
        list[Path],
        typer.Argument(
            metavar="QUESTIONS.jsonl...",
            help="Question files (JSONL); several share one index and one build of the peers.",
        ),
    ],
    corpus: Annotated[
        list[Path] | None,
        typer.Option(
            "--corpus",
            help="Index these files or folders for the run (cached by content under eval-cache beside "
            "CITEQA_DATA_DIR) instead of using the configured index (repeatable).",
        ),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option("--mode", help=f"Search mode: {', '.join(SEARCH_MODES)} (default {DEFAULT_MODE})."),
    ] = None,
    compare: Annotated[
        bool,
        typer.Option("--compare", help="Every search mode, plus the peers (needs --corpus), in one table."),
    ] = False,
    peers: Annotated[
        bool,
        typer.Option("--peers/--no-peers", help="With --compare: also run the LangChain and BM25 peers."),
    ] = True,
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=1, max=MAX_TOP_K, help="Passages per question.")
    ] = 10,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write report.json, report.md and PNG plots here (one subfolder per file if several).",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the JSON report instead of the table.")
    ] = False,
) -> None:
    """Measure retrieval quality on question files: answer and article hit rates, MRR, nDCG, latency."""
    # Imported here: the report writer imports matplotlib (a quarter of a second), which every other
    # citeqa command would pay for, since service.cli imports this module to register the command.
    try:
        from eval.retrievers import CiteQARetriever
        from eval.runner import run_eval
    except ModuleNotFoundError as missing:
        raise EvalConfigError(
            f"citeqa eval needs the evaluation extra (module {missing.name} is missing): "
            "pip install 'citeqa[eval]'"
        ) from None

    # The runner's progress bars use rich's global console; on stderr they stay out of the JSON on stdout.
    rich.reconfigure(stderr=True)
    # bm25s (the lexical mode and the BM25 peer) logs every index build at DEBUG level.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    if mode is not None and compare:
        raise EvalConfigError("--mode and --compare exclude each other: --compare evaluates every mode")
    modes = list(SEARCH_MODES) if compare else [check_mode(mode or DEFAULT_MODE)]
    run_peers = compare and peers
    if run_peers and not corpus:
        raise EvalConfigError(
            "The peers build their own index from the corpus files: pass --corpus PATH, "
            "or --no-peers to compare the modes on the configured index"
        )
    for path in questions:
        load_questions(path)
    if corpus:
        check_corpus_paths(corpus)
    out_dirs = _out_dirs(questions, out)
    build_peers = _peer_builder() if run_peers else None

    # No question cache: every mode, and every file, pays for encoding its questions, so that latencies
    # compare (with it, the modes after the first would reuse the first's question vectors).
    settings = get_settings().model_copy(update={"query_cache_size": 0})
    started = time.perf_counter()
    with _progress_hook("Indexing the corpus") as hook:
        resources = load_resources(settings, corpus, on_progress=hook)
    try:
        documents, _ = resources.collection().store.counts()
        if documents == 0:
            raise EvalConfigError(
                f"The index in {settings.data_dir} is empty: add articles with `citeqa ingest PATH`, "
                "or evaluate on files with --corpus PATH"
            )
        retrievers: list[Retriever] = [
            CiteQARetriever(resources.collection().searcher, name=f"citeqa-{name}", mode=name)
            for name in modes
        ]
        if build_peers is not None and corpus:
            retrievers += _build_peers(build_peers, corpus, settings)
        logger.info("Ready to evaluate after %.1f s", time.perf_counter() - started)
        reports = []
        for path, out_dir in zip(questions, out_dirs, strict=True):
            run_started = time.perf_counter()
            reports.append(run_eval(path, retrievers, top_k=top_k, out_dir=out_dir))
            logger.info("Evaluated %s in %.1f s", path, time.perf_counter() - run_started)
    finally:
        resources.close()
    if json_output:
        typer.echo(json.dumps(_json_document(reports), ensure_ascii=False, indent=2))
    else:
        # Piped output has no terminal width to fit; rich would squeeze the table into 80 columns.
        if not console.is_terminal:
            console.width = PIPED_TABLE_WIDTH
        for report in reports:
            console.print(_summary_table(report))


def _out_dirs(questions: Sequence[Path], out: Path | None) -> list[Path | None]:
    if out is None:
        return [None] * len(questions)
    if len(questions) == 1:
        return [out]
    stems = [path.stem for path in questions]
    repeated = sorted({stem for stem in stems if stems.count(stem) > 1})
    if repeated:
        raise EvalConfigError(
            f"Question files share the name {', '.join(repeated)}: their reports would land in the same "
            "subfolder of --out; rename one or run them separately"
        )
    return [out / stem for stem in stems]


def _peer_builder() -> PeerBuilder | None:
    """The peers' constructor, or None (after saying so) when the optional extra is not installed."""
    try:
        from eval.peers.reference import build_peers, read_corpus
    except ImportError as error:
        logger.warning(
            "The peers need the optional extra [peers] (pip install -e '.[peers]'; missing module %s): "
            "evaluating CiteQA's modes only",
            error.name,
        )
        return None

    def build(paths: Sequence[Path], model_folder: Path) -> list[Retriever]:
        return build_peers(read_corpus(paths), model_folder)

    return build


def _build_peers(build: PeerBuilder, corpus: Sequence[Path], settings: Settings) -> list[Retriever]:
    from embeddings.encoder import resolve_model

    started = time.perf_counter()
    model_folder = Path(resolve_model(settings.embedding_model, settings.model_cache, show_progress=False))
    with rich.get_console().status("Building the peers (LangChain typical and tuned, BM25)"):
        built = build(corpus, model_folder)
    logger.info("Built the peers in %.1f s", time.perf_counter() - started)
    return built


@contextlib.contextmanager
def _progress_hook(description: str) -> Iterator[ProgressHook]:
    """A hook drawing an embedding progress bar, which appears with its first call: a cached index shows none."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("texts embedded"),
        TimeElapsedColumn(),
    )
    tasks: list[TaskID] = []

    def hook(done: int, total: int) -> None:
        if not tasks:
            progress.start()
            tasks.append(progress.add_task(description, total=total))
        progress.update(tasks[0], completed=done, total=total)

    try:
        yield hook
    finally:
        if tasks:
            progress.stop()


def _json_document(reports: Sequence[EvalReport]) -> dict[str, Any]:
    """One file: its report document (see eval/results.py); several: `{"runs": [document, ...]}`."""
    if len(reports) == 1:
        return reports[0].to_document()
    return {"runs": [report.to_document() for report in reports]}


def _summary_table(report: EvalReport) -> Table:
    """One row per mode or peer over all questions, then one per language; flag columns when any flags."""
    from eval.report import _number, difference_text, interval_text

    def cells(summary: Summary) -> list[str]:
        metrics = summary.model_dump()
        return [
            str(summary.n_questions),
            *(_number(metrics[key]) for _, key in TABLE_COLUMNS),
            _number(summary.mean_passage_chars, 0),
            _number(summary.latency_ms.p50, 1),
            _number(summary.latency_ms.p95, 1),
        ]

    flagged = any(
        mode.unanswerable.flagged_unanswerable is not None or mode.unanswerable.flagged_answerable is not None
        for mode in report.modes.values()
    )
    compared = len(report.modes) > 1
    table = Table(
        title=f"{report.questions_file} (top_k {report.top_k})",
        caption="95%: bootstrap interval of hit@1; Δ: hit@1 minus the first row's, paired (interval, p)",
    )
    for header in [
        "retriever",
        "lang",
        "n",
        *(title for title, _ in TABLE_COLUMNS),
        "chars",
        "p50 ms",
        "p95 ms",
    ]:
        table.add_column(header, justify="left" if header in ("retriever", "lang") else "right")
    if flagged:
        table.add_column("flag unans.", justify="right")
        table.add_column("flag ans.", justify="right")
    table.add_column("hit@1 95%", justify="right")
    if compared:
        table.add_column("Δ hit@1", justify="right")
    for name, mode in report.modes.items():
        unanswerable = mode.unanswerable
        flags = [_number(unanswerable.flagged_unanswerable), _number(unanswerable.flagged_answerable)]
        noise = [interval_text(mode, "answer_hit@1")]
        noise += [difference_text(mode, "answer_hit@1")] if compared else []
        table.add_row(name, "all", *cells(mode.summary), *(flags if flagged else []), *noise)
        blanks = ["", ""] if flagged else []
        for lang, summary in mode.by_lang.items():
            table.add_row("", lang, *cells(summary), *blanks, *[""] * len(noise), style="dim")
    return table
