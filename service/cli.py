"""The `citeqa` command: ingest, search, serve and manage an index from the terminal."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from citeqa.collections import COLLECTION_NAME_RULE, DEFAULT_COLLECTION, check_collection_name
from citeqa.errors import CiteQAError
from citeqa.migrate import migrate_to_milvus
from citeqa.settings import Settings, get_settings
from citeqa.wiring import Resources, load_encoder
from index.ingest import IngestReport, ProgressHook
from index.search import (
    DEFAULT_MODE,
    MAX_TOP_K,
    SEARCH_MODES,
    SearchFilters,
    SearchResult,
    check_mode,
    check_question,
)
from index.store import IndexKind
from service.keys import KeyStore, Scope
from service.render import render_answer, render_passage

app = typer.Typer(
    name="citeqa",
    help="CiteQA: ask questions over your articles and get passages with exact citations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
model_app = typer.Typer(help="Manage the embedding model.", no_args_is_help=True)
app.add_typer(model_app, name="model")
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
collections_app = typer.Typer(
    help="List, create and delete collections (named indexes).", no_args_is_help=True
)
app.add_typer(collections_app, name="collections")
try:
    from eval.cli import eval_command
except ModuleNotFoundError as missing:  # the serving image leaves the evaluation package out
    if (missing.name or "").partition(".")[0] != "eval":
        raise
else:
    app.command("eval")(eval_command)

console = Console()
errors = Console(stderr=True)
logger = logging.getLogger("citeqa")

Format = Literal["auto", "report", "text", "jsonl", "pdf"]


class CliError(CiteQAError):
    """A command-line argument the user can fix."""


CollectionOption = Annotated[
    str,
    typer.Option(
        "--collection",
        "-c",
        help="The collection to work on (`citeqa collections list` shows them).",
        envvar="CITEQA_COLLECTION",
    ),
]


@app.callback()
def main(
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Show debug logs, and the traceback of an unexpected error."),
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=errors, show_path=False, rich_tracebacks=False)],
    )
    for noisy in ("httpx", "sentence_transformers", "transformers", "faiss", "jieba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def _resources(settings: Settings | None = None, *, rebuild: bool = False) -> Iterator[Resources]:
    resources = Resources.load(settings or get_settings(), show_progress=True, rebuild=rebuild)
    try:
        yield resources
    finally:
        resources.close()


@contextlib.contextmanager
def _embedding_progress(description: str) -> Iterator[ProgressHook]:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("texts"),
        TimeElapsedColumn(),
        console=errors,
        transient=False,
    ) as progress:
        task = progress.add_task(description, total=None)

        def hook(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield hook


def _print_ingest_report(report: IngestReport) -> None:
    table = Table(title="Ingested", show_lines=False)
    for column in ("status", "doc_id", "section", "title", "chunks"):
        table.add_column(column, overflow="fold")
    for doc in report.documents:
        table.add_row(doc.status, doc.doc_id, doc.section or "", doc.title, str(doc.chunks))
    console.print(table)
    for problem in report.problems:
        where = f"{problem.source}:{problem.line}" if problem.line else problem.source
        errors.print(f"[yellow]skipped[/] {escape(where)}: {escape(problem.message)}")


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (.txt, .md, .jsonl, .pdf).")],
    format: Annotated[str, typer.Option("--format", "-f", help="auto, report, text, jsonl or pdf.")] = "auto",
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing if the index holds documents.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    collection: CollectionOption = DEFAULT_COLLECTION,
) -> None:
    """Read articles from files and add them to a collection (same id: replaced; unchanged: skipped).

    A collection that does not exist yet is created."""
    if format not in ("auto", "report", "text", "jsonl", "pdf"):
        raise CliError(f"--format {format!r} is not one of auto, report, text, jsonl, pdf.")
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise CliError(f"No such file or folder: {', '.join(missing)}")
    check_collection_name(collection)
    with _resources() as resources:
        target = resources.collections.get_or_create(collection)
        documents, _ = target.store.counts()
        if if_empty and documents:
            errors.print(
                f"Collection {collection} already holds {documents} documents; nothing ingested (--if-empty)."
            )
            return
        with _embedding_progress("Embedding") as hook:
            report = target.indexer.ingest_paths(paths, format=format, on_progress=hook)  # type: ignore[arg-type]
    if json_output:
        console.print_json(report.model_dump_json())
    else:
        _print_ingest_report(report)
    if not report.documents:
        raise CliError("No article could be read from the given paths.")


@app.command()
def search(
    question: Annotated[str, typer.Argument(help="The question, in Chinese or English.")],
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=1, max=MAX_TOP_K, help="Passages to return.")
    ] = 5,
    section: Annotated[
        list[str] | None, typer.Option("--section", help="Only this section (repeatable).")
    ] = None,
    doc_id: Annotated[
        list[str] | None, typer.Option("--doc-id", help="Only this document (repeatable).")
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", help=f"{', '.join(SEARCH_MODES)} (default {DEFAULT_MODE}).")
    ] = DEFAULT_MODE,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print exactly the API's response body.")
    ] = False,
    collection: CollectionOption = DEFAULT_COLLECTION,
) -> None:
    """Print the passages that answer QUESTION, with their citations.

    Example: citeqa search "近一个月工信部开展了多少次5G调研？" --top-k 3
    """
    # Checked before the model loads: a blank question should not cost a minute.
    question, search_mode = check_question(question), check_mode(mode)
    filters = SearchFilters(sections=section or [], doc_ids=doc_id or [])
    check_collection_name(collection)
    with _resources() as resources:
        result = resources.collection(collection).searcher.search(
            question, top_k=top_k, filters=filters, mode=search_mode
        )
    if json_output:
        typer.echo(result.model_dump_json())
    else:
        _print_search_result(result)


def _print_search_result(result: SearchResult) -> None:
    if not result.passages:
        console.print("No passages found. Is the index empty? Add articles with `citeqa ingest PATH`.")
        return
    console.print(render_answer(result))
    console.print()
    for passage in result.passages:
        citation = passage.citation
        page = f"p. {citation.page}" if citation.page is not None else "page unknown"
        header = (
            f"[bold cyan]#{passage.rank}[/]  [dim]score {passage.score:.3f}[/]  "
            f"[bold]《{escape(citation.title)}》[/]  {escape(citation.section or '')}  {page}"
        )
        console.print(header)
        console.print(render_passage(passage, result.question), soft_wrap=True)
        console.print(
            f"[dim]{escape(citation.source)} · {citation.doc_id} · "
            f"chars {citation.char_start}–{citation.char_end}[/]"
        )
        console.print()
    console.print(f"[dim]{len(result.passages)} passages in {result.took_ms:.0f} ms[/]")


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(
            help="Bind address (default CITEQA_HOST, 127.0.0.1). Serving other machines (0.0.0.0)? Also set "
            "CITEQA_ALLOWED_HOSTS to the names they reach it by: other Host headers get a 400."
        ),
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default CITEQA_PORT, 8000).")] = None,
    ingest_if_empty: Annotated[
        list[Path] | None,
        typer.Option(
            "--ingest-if-empty", help="Index these files first when the index is empty (repeatable)."
        ),
    ] = None,
) -> None:
    """Serve the HTTP API and the web tool with uvicorn (docs at /docs)."""
    import uvicorn

    from service.app import create_app

    settings = get_settings()
    bind = host or settings.host
    if not _is_loopback(bind) and not KeyStore(settings.keys_path).enabled() and not settings.allow_anonymous:
        raise CliError(
            f"Refusing to listen on {bind} with no API key: anyone reaching the port could read, upload and "
            "delete. Create a key first (`citeqa keys create --name NAME --scope admin`), or set "
            "CITEQA_ALLOW_ANONYMOUS=true to serve without keys."
        )
    with _resources(settings) as resources:
        default = resources.collection()
        if ingest_if_empty and default.store.counts()[0] == 0:
            with _embedding_progress("Indexing") as hook:
                report = default.indexer.ingest_paths(ingest_if_empty, on_progress=hook)
            logger.info(
                "Indexed %d documents from %s", len(report.documents), ", ".join(map(str, ingest_if_empty))
            )
        uvicorn.run(
            create_app(settings, resources),
            host=bind,
            port=port or settings.port,
            log_level=settings.log_level,
        )


@app.command()
def chat(
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=1, max=MAX_TOP_K, help="Passages per answer.")
    ] = 5,
    section: Annotated[
        list[str] | None, typer.Option("--section", help="Only this section (repeatable).")
    ] = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
) -> None:
    """Chat in the terminal: follow-up questions use the earlier turns (/help, /clear, /quit)."""
    from service.terminal_chat import run_terminal_chat

    check_collection_name(collection)
    with _resources() as resources:
        run_terminal_chat(resources.collection(collection).searcher, section or [], console, top_k=top_k)


@app.command()
def documents(
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    collection: CollectionOption = DEFAULT_COLLECTION,
) -> None:
    """List the documents of a collection."""
    check_collection_name(collection)
    with _resources() as resources:
        summaries = resources.collection(collection).store.list_documents()
    if json_output:
        typer.echo(
            json.dumps(
                [s.model_dump(include={"doc_id", "title", "section", "page", "chunks"}) for s in summaries],
                ensure_ascii=False,
            )
        )
        return
    table = Table(title=f"{len(summaries)} documents in collection {collection}")
    for column in ("doc_id", "section", "page", "title", "chunks"):
        table.add_column(column, overflow="fold")
    for s in summaries:
        table.add_row(
            s.doc_id, s.section or "", "" if s.page is None else str(s.page), s.title, str(s.chunks)
        )
    console.print(table)


@app.command()
def delete(
    doc_id: Annotated[str, typer.Argument(help="The id shown by `citeqa documents`.")],
    collection: CollectionOption = DEFAULT_COLLECTION,
) -> None:
    """Remove a document and its vectors from a collection."""
    check_collection_name(collection)
    with _resources() as resources:
        resources.collection(collection).store.delete(doc_id)
    console.print(f"Deleted {doc_id}.")


@app.command()
def reindex(
    index_kind: Annotated[
        IndexKind | None,
        typer.Option(
            "--index-kind",
            help="Vector index to build: auto (exact while small, IVF past a measured size), flat (always "
            "exact), ivf or hnsw (always approximate). Default: as the index has it now.",
            show_default=False,
        ),
    ] = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
) -> None:
    """Re-chunk and re-embed every document of a collection (after changing the model or chunk settings)."""
    check_collection_name(collection)
    with _resources(rebuild=True) as resources, _embedding_progress("Re-embedding") as hook:
        target = resources.collection(collection)
        results = target.indexer.reindex(on_progress=hook, index_kind=index_kind)
        specs = target.store.vector_specs()
    console.print(
        f"Re-indexed {len(results)} documents ({sum(r.chunks for r in results)} chunks); vector indexes: "
        + ", ".join(f"{kind} {spec.describe()}" for kind, spec in specs.items())
        + "."
    )


@app.command()
def migrate(
    to: Annotated[
        Literal["milvus"],
        typer.Option(
            "--to", help="Where to copy the local collection: milvus (the server of CITEQA_MILVUS_URI)."
        ),
    ],
    collection: CollectionOption = DEFAULT_COLLECTION,
) -> None:
    """Copy a local collection (under CITEQA_DATA_DIR) into Milvus as it is, vectors included: nothing is
    embedded again. Documents already copied are skipped, so an interrupted copy is finished by running it
    again. Then serve it with CITEQA_BACKEND=milvus."""
    with Progress(
        TextColumn("[bold]Copying to Milvus"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("documents"),
        TimeElapsedColumn(),
        console=errors,
    ) as progress:
        task = progress.add_task(to, total=None)
        done = migrate_to_milvus(
            get_settings(),
            collection,
            on_progress=lambda copied, total: progress.update(task, completed=copied, total=total),
        )
    console.print(
        f"Copied {done.copied} documents ({done.chunks} chunks) of collection {done.collection} to Milvus; "
        f"{done.unchanged} were there already."
    )


@collections_app.command("list")
def collections_list(
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the collections, with their documents and chunks."""
    with _resources() as resources:
        rows = [(name, *resources.collection(name).store.counts()) for name in resources.collections.names()]
    if json_output:
        typer.echo(json.dumps([{"name": n, "documents": d, "chunks": c} for n, d, c in rows]))
        return
    table = Table(title=f"{len(rows)} collections")
    for column in ("name", "documents", "chunks"):
        table.add_column(column)
    for name, documents, chunks in rows:
        table.add_row(name, str(documents), str(chunks))
    console.print(table)


@collections_app.command("create")
def collections_create(
    name: Annotated[str, typer.Argument(help=f"The new collection's name: {COLLECTION_NAME_RULE}.")],
) -> None:
    """Create an empty collection."""
    check_collection_name(name)
    with _resources() as resources:
        resources.collections.create(name)
    console.print(f"Created collection {name}.")


@collections_app.command("delete")
def collections_delete(
    name: Annotated[str, typer.Argument(help="The collection to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a collection and every document in it."""
    check_collection_name(name)
    if not yes and not typer.confirm(f"Delete collection {name} and every document in it?"):
        raise CliError("Nothing deleted.")
    with _resources() as resources:
        resources.collections.delete(name)
    console.print(f"Deleted collection {name}.")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="A name to know the key by (and revoke it with).")],
    scope: Annotated[
        Scope,
        typer.Option(
            "--scope",
            help="read: search, chat, read documents; write: also upload and delete; admin: also "
            "manage collections and read /metrics.",
        ),
    ] = "read",
    collection: Annotated[
        list[str] | None,
        typer.Option("--collection", help="Only this collection (repeatable); default: every collection."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print {name, key, scope, collections} as JSON.")
    ] = False,
) -> None:
    """Create an API key and print it, once: only its hash is stored. Once a key exists, every /v1 call
    needs `Authorization: Bearer <key>`."""
    stored, key = KeyStore(get_settings().keys_path).create(name, scope, collection or [])
    if json_output:
        typer.echo(
            json.dumps(
                {"name": stored.name, "key": key, "scope": stored.scope, "collections": stored.collections}
            )
        )
        return
    console.print(
        f"Created key [bold]{escape(stored.name)}[/] ({stored.scope}, "
        f"{', '.join(stored.collections) or 'every collection'}). It is shown only now:"
    )
    typer.echo(key)


@keys_app.command("list")
def keys_list(
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the API keys (names, scopes and collections; never the keys)."""
    keys = KeyStore(get_settings().keys_path).keys()
    if json_output:
        typer.echo(json.dumps([k.model_dump(mode="json", exclude={"sha256"}) for k in keys]))
        return
    table = Table(title=f"{len(keys)} API keys")
    for column in ("name", "scope", "collections", "created"):
        table.add_column(column)
    for k in keys:
        table.add_row(
            k.name, k.scope, ", ".join(k.collections) or "all", k.created.isoformat(timespec="seconds")
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name (`citeqa keys list`).")]) -> None:
    """Revoke an API key: calls with it are refused from now on, by running servers too."""
    keys = KeyStore(get_settings().keys_path)
    keys.revoke(name)
    console.print(f"Revoked key {name}.")
    if not keys.enabled():
        errors.print(
            "[yellow]No API key remains: the API is open again to anyone who reaches the port.[/] "
            "Create a key to close it."
        )


@model_app.command("prepare")
def model_prepare() -> None:
    """Prepare the embedding model (converts the bundled model once) and check that it loads."""
    encoder = load_encoder(get_settings(), show_progress=True)
    console.print(f"Model ready: {encoder.name} (dimension {encoder.dimension}).")


def run() -> None:
    """Entry point: an error the user can fix ends with its message and exit code 1, not a traceback.
    Anything else is a bug: a one-line summary, or with --verbose its traceback."""
    try:
        app()
    except CiteQAError as exc:
        errors.print(f"[bold red]Error:[/] {escape(exc.message)}")
        raise SystemExit(1) from None
    except Exception as exc:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        errors.print(
            f"[bold red]Unexpected error[/] ({type(exc).__name__}: {escape(str(exc))}). "
            "This is a bug; run again with --verbose to see its traceback."
        )
        raise SystemExit(2) from None
