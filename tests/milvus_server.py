"""A real Milvus for the tests: `milvus-lite server` (from the dev dependencies) on a free loopback port.

Started once per session by the `milvus_uri` fixture (tests/conftest.py) and stopped at its end. Quirks met
(docs/notes/milvus-lite-scouting.md): it binds 0.0.0.0 unless told `--host`; it handles SIGINT only (a
SIGTERM skips closing its database), and a child inherits an ignored SIGINT from a shell's background job,
so the child's SIGINT is set back to the default before it starts; the port listening does not mean the
server answers, so readiness is a call that succeeds.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from pymilvus import MilvusClient, MilvusException

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


def milvus_lite_command() -> str:
    """The `milvus-lite` script of this Python's environment (what `make install` installs)."""
    beside = Path(sys.executable).with_name("milvus-lite")
    found = str(beside) if beside.exists() else shutil.which("milvus-lite")
    if found is None:
        raise RuntimeError("milvus-lite is not installed: run `make install` (it is a dev dependency).")
    return found


@contextlib.contextmanager
def milvus_lite_server(data_dir: Path, port: int, log_path: Path) -> Iterator[str]:
    """`milvus-lite server` on 127.0.0.1:`port` with its data in `data_dir`: its URI once it answers."""
    uri = f"http://127.0.0.1:{port}"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                milvus_lite_command(),
                "server",
                "--data-dir",
                str(data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        _wait_until_ready(process, uri, log_path)
        yield uri
    finally:
        _stop(process)


def _wait_until_ready(process: subprocess.Popen, uri: str, log_path: Path) -> None:
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"milvus-lite exited with {process.returncode}:\n{log_path.read_text()[-3000:]}"
            )
        try:
            client = MilvusClient(uri, timeout=2)
            client.list_collections()
            client.close()
            return
        except MilvusException:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(
                    f"milvus-lite did not answer within {READY_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}"
                ) from None
            time.sleep(0.2)


def _stop(process: subprocess.Popen) -> None:
    """SIGINT (it closes its database), then SIGTERM, then a kill."""
    for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        process.send_signal(stop)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT_S)
