"""A conversation in the terminal: questions and follow-ups, answered with numbered, cited passages."""

from __future__ import annotations

from collections.abc import Iterator

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from index.followups import retrieval_query
from index.search import Passage, Searcher, SearchFilters, SearchResult
from service.render import render_answer, render_passage

PROMPT = "› "
HELP = """[bold]Ask a question[/] in Chinese or English; follow-ups such as "那华为呢？" or "and Apple?" are read in
the context of the questions before them.
  [bold]/clear[/]  forget the conversation (the next question starts afresh)
  [bold]/help[/]   show this help
  [bold]/quit[/]   leave (also /exit, Ctrl-D)"""


def run_terminal_chat(
    searcher: Searcher,
    sections: list[str],
    console: Console,
    input_lines: Iterator[str] | None = None,
    top_k: int = 5,
) -> None:
    """Read questions until /quit or the end of input and print the cited passages that answer each one.

    `sections` restricts every search to those sections (empty: all). `input_lines` replaces the keyboard
    (piped input, tests); each line read from it is echoed after the prompt so the transcript reads the same.
    """
    filters = SearchFilters(sections=sections)
    turns: list[str] = []
    scope = f" in {', '.join(sections)}" if sections else ""
    console.print(f"[bold]CiteQA chat[/]{escape(scope)} — /help for commands, /quit to leave.")
    for line in _lines(console, input_lines):
        question = line.strip()
        if not question:
            continue
        command = question.lower()
        if command in ("/quit", "/exit"):
            break
        if command == "/help":
            console.print(HELP)
        elif command == "/clear":
            turns.clear()
            console.print("[dim]Conversation cleared: the next question starts afresh.[/]")
        elif question.startswith("/"):
            console.print(f"Unknown command {escape(question)!r}; /help lists the commands.")
        else:
            turns.append(question)
            built = retrieval_query(turns)
            if built.rewritten:
                console.print(f"[dim]searched as: {escape(built.query)}[/]")
            _print_result(console, searcher.search(built.query, top_k=top_k, filters=filters))


def _lines(console: Console, input_lines: Iterator[str] | None) -> Iterator[str]:
    if input_lines is not None:
        for line in input_lines:
            console.print(f"[bold cyan]{PROMPT}[/]{escape(line.rstrip())}")
            yield line
        return
    while True:
        try:
            yield console.input(f"[bold cyan]{PROMPT}[/]")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return


def _print_result(console: Console, result: SearchResult) -> None:
    if not result.passages:
        console.print("No passages found. Is the index empty? Add articles with `citeqa ingest PATH`.")
        return
    console.print(render_answer(result))
    for passage in result.passages:
        console.print(_citation_line(passage))
        console.print(Text("    ").append(render_passage(passage, result.question)), soft_wrap=True)
    console.print(f"[dim]{len(result.passages)} passages in {result.took_ms:.0f} ms[/]\n")


def _citation_line(passage: Passage) -> str:
    citation = passage.citation
    parts = [f"《{citation.title}》", citation.section or "", f"p. {citation.page}" if citation.page else ""]
    where = ", ".join(part for part in parts if part)
    return f"[bold cyan][{passage.rank}][/] [bold]{escape(where)}[/]  [dim]score {passage.score:.3f}[/]"
