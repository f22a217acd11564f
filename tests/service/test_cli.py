"""The `citeqa` command line: every option documented in `--help`."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from citeqa.errors import DocumentNotFound, InvalidCollectionName, InvalidQuestion
from service import cli
from service.cli import app

ROOT = typer.main.get_command(app)


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every leaf command under `group` (as typer builds it for click), with the words that call it."""
    found = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        if hasattr(command, "commands"):
            found.extend(_commands(command, path))
        else:
            found.append((path, command))
    return found


COMMANDS = _commands(ROOT)


def test_the_commands_a_user_is_told_about_exist() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    expected = {
        "ingest",
        "search",
        "serve",
        "chat",
        "eval",
        "documents",
        "delete",
        "reindex",
        "migrate",
        "model prepare",
        "collections list",
        "collections create",
        "collections delete",
    }
    assert expected <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(path) for path, _ in COMMANDS])
def test_every_option_of_every_command_is_in_its_help(path: tuple[str, ...], command: Any) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert command.help, f"citeqa {' '.join(path)} has no help text"
    for parameter in command.params:
        if parameter.param_type_name == "option":
            for flag in [*parameter.opts, *parameter.secondary_opts]:
                assert flag in result.output, f"{flag} missing from citeqa {' '.join(path)} --help"


def test_the_service_runs_without_the_evaluation_package() -> None:
    # The serving image leaves eval/ out: the CLI and the app must not need it, only `citeqa eval` does.
    script = (
        "import sys; sys.modules['eval'] = None\n"
        "from typer.testing import CliRunner\n"
        "import service.app\n"
        "from service.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0 and ' search ' in result.output and ' eval ' not in result.output\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr


def _fail_with(error: Exception) -> Any:
    def app() -> None:
        raise error

    return app


def test_an_error_the_user_can_fix_is_one_line_and_exit_code_1(monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "app", _fail_with(DocumentNotFound("No document with id 'x'.")))
    with pytest.raises(SystemExit) as exited:
        cli.run()
    assert exited.value.code == 1
    assert capsys.readouterr().err.strip() == "Error: No document with id 'x'."


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level = root.level
    yield root
    root.setLevel(level)


def test_a_bug_is_summed_up_in_one_line_and_its_traceback_shown_with_verbose(
    monkeypatch, capsys, root_logger: logging.Logger
) -> None:
    monkeypatch.setattr(cli, "app", _fail_with(KeyError("chunk 7")))
    root = root_logger
    root.setLevel(logging.INFO)
    with pytest.raises(SystemExit) as exited:
        cli.run()
    assert exited.value.code == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "Unexpected error (KeyError: 'chunk 7')" in message and "--verbose" in message
    root.setLevel(logging.DEBUG)  # what `citeqa --verbose` sets
    with pytest.raises(KeyError):
        cli.run()


def test_a_blank_question_is_refused_before_the_model_loads(monkeypatch) -> None:
    def load(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model was loaded for a blank question")

    monkeypatch.setattr(cli.Resources, "load", load)
    result = CliRunner().invoke(app, ["search", "   "])
    assert isinstance(result.exception, InvalidQuestion)


@pytest.mark.parametrize(
    "arguments",
    [
        ["search", "芯片", "--collection", "../other"],
        ["ingest", "data/sample", "--collection", "Reports 2020"],
        ["documents", "-c", "a/b"],
        ["collections", "create", "UPPER"],
    ],
)
def test_a_bad_collection_name_is_refused_before_the_model_loads(monkeypatch, arguments: list[str]) -> None:
    def load(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model was loaded for a bad collection name")

    monkeypatch.setattr(cli.Resources, "load", load)
    result = CliRunner().invoke(app, arguments)
    assert isinstance(result.exception, InvalidCollectionName)
