"""Under CI=true a skipped test fails the run (tests/strict_skips.py); deselected tests do not count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.strict_skips import PLUGIN_NAME, ci_requires_every_test

PYTEST_INI = """\
[pytest]
markers =
    model: uses the real embedded model
"""

# A browser test skipped by `skipif`, a model test that skips itself, an expected failure and a pass.
TEST_SUITE = """\
import pytest


def test_passes():
    pass


@pytest.mark.skipif(True, reason="Chromium is not installed")
def test_in_a_browser():
    pass


@pytest.mark.model
def test_with_the_model():
    pytest.skip("the model is not prepared")


@pytest.mark.xfail(reason="a known bug", strict=True)
def test_known_bug():
    assert False
"""

# The peer tests skip their whole module at collection.
TEST_PEERS = """\
import pytest

pytest.importorskip("no_such_peer_module", reason="the peers need the optional extra [peers]")


def test_peer():
    pass
"""


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("strict-skips")
    (folder / "pytest.ini").write_text(PYTEST_INI)
    (folder / "test_suite.py").write_text(TEST_SUITE)
    (folder / "test_peers.py").write_text(TEST_PEERS)
    return folder


def run_pytest(
    folder: Path, ci: str | None, *args: str, plugin: bool = True
) -> subprocess.CompletedProcess[str]:
    """pytest in `folder` with the check loaded as a plugin (or not: then only a conftest can load it)."""
    env = {key: value for key, value in os.environ.items() if key not in ("CI", "PYTEST_ADDOPTS")}
    # Installed plugins (hypothesis, langsmith, ...) are not needed here and take seconds to load.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if ci is not None:
        env["CI"] = ci
    plugin_args = ["-p", "tests.strict_skips"] if plugin else []
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *plugin_args, "-rs", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("ci", [None, "false", ""])
def test_outside_ci_skips_pass_as_usual(suite: Path, ci: str | None) -> None:
    run = run_pytest(suite, ci)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed, 3 skipped, 1 xfailed" in run.stdout
    assert "skipped under CI=true" not in run.stdout


def test_under_ci_every_skip_fails_the_run_and_is_listed_with_its_reason(suite: Path) -> None:
    run = run_pytest(suite, "true")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout + run.stderr
    assert "3 skipped under CI=true: the run fails" in run.stdout
    listed = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED test_")]
    assert sorted(listed) == [
        "SKIPPED test_peers.py: the peers need the optional extra [peers]",
        "SKIPPED test_suite.py::test_in_a_browser: Chromium is not installed",
        "SKIPPED test_suite.py::test_with_the_model: the model is not prepared",
    ]
    # The expected failure is not a skip.
    assert "test_known_bug" not in "\n".join(listed)


def test_under_ci_deselected_tests_are_not_skips(suite: Path) -> None:
    run = run_pytest(suite, "true", "-m", "not model", "test_suite.py", "-k", "not browser")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed, 2 deselected, 1 xfailed" in run.stdout
    # The same model test, selected, still fails the run when it skips.
    selected = run_pytest(suite, "true", "test_suite.py::test_with_the_model")
    assert selected.returncode == pytest.ExitCode.TESTS_FAILED, selected.stdout
    assert "SKIPPED test_suite.py::test_with_the_model: the model is not prepared" in selected.stdout


def test_under_ci_a_module_skipped_at_collection_fails_the_run(suite: Path) -> None:
    # Only the module-level importorskip: no test is collected at all (pytest's own exit status 5).
    assert run_pytest(suite, None, "test_peers.py").returncode == pytest.ExitCode.NO_TESTS_COLLECTED
    run = run_pytest(suite, "true", "test_peers.py")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout + run.stderr
    assert "SKIPPED test_peers.py: the peers need the optional extra [peers]" in run.stdout


def test_under_ci_a_failing_run_keeps_its_own_status(suite: Path) -> None:
    run = run_pytest(suite, "true", "test_suite.py", "--runxfail")  # the known bug now fails
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout + run.stderr
    assert "1 failed, 1 passed, 2 skipped" in run.stdout
    usage = run_pytest(suite, "true", "test_suite.py", "--no-such-option")
    assert usage.returncode == pytest.ExitCode.USAGE_ERROR


def test_the_project_conftest_installs_the_check_exactly_under_ci(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # In this very run: installed if and only if CI=true.
    assert request.config.pluginmanager.has_plugin(PLUGIN_NAME) == ci_requires_every_test()
    # And by the project conftest's own hook (not the plugin option) in a run of the small suite.
    (tmp_path / "pytest.ini").write_text(PYTEST_INI)
    (tmp_path / "test_suite.py").write_text(TEST_SUITE)
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_configure  # noqa: F401\n")
    run = run_pytest(tmp_path, "true", plugin=False)
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout + run.stderr
    assert "2 skipped under CI=true: the run fails" in run.stdout
