"""Under CI=true a skipped test fails the run: CI must not pass with the browser or peer tests left out.

Registered from tests/conftest.py (or with `pytest -p tests.strict_skips`). Every test (or module) that
reports "skipped" is recorded with its reason; at the end of the session the exit status becomes 1
(tests failed) and the summary lists each one. Tests deselected with `-m` or `-k` never run, so they are
not skips; an expected failure (xfail) is not a skip either.
"""

from __future__ import annotations

import os

import pytest

PLUGIN_NAME = "strict-skips"
CI_VARIABLE = "CI"


def ci_requires_every_test() -> bool:
    """Whether the environment says this is a CI run (CI=true, as GitHub Actions, GitLab and others set)."""
    return os.environ.get(CI_VARIABLE, "").strip().lower() == "true"


class StrictSkips:
    """Records skipped tests and collectors, and fails the session when there is any."""

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped.append((report.nodeid, _reason(report)))

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    @pytest.hookimpl
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        # A module-level `pytest.importorskip` skips the whole module at collection.
        self._record(report)

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.skipped and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.skipped:
            return
        terminalreporter.write_sep(
            "=", f"{len(self.skipped)} skipped under {CI_VARIABLE}=true: the run fails", red=True, bold=True
        )
        for nodeid, reason in self.skipped:
            terminalreporter.write_line(f"SKIPPED {nodeid}: {reason}")
        terminalreporter.write_line(
            "Under CI every test must run: install what the skipped tests need (make install, "
            "scripts/ensure-chromium.sh, ../shared beside the checkout), or deselect them with -m."
        )


def register(config: pytest.Config) -> None:
    """Install the check when CI=true (once, however many times it is asked for)."""
    if ci_requires_every_test() and not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(StrictSkips(), PLUGIN_NAME)


def pytest_configure(config: pytest.Config) -> None:
    """The hook when this module is loaded as a plugin (`-p tests.strict_skips`)."""
    register(config)


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    # A skip's report holds (path, line, "Skipped: <reason>").
    longrepr = report.longrepr
    message = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return message.removeprefix("Skipped: ")
