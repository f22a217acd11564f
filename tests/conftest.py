from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from citeqa.settings import Settings
from index.chunking import Chunker
from index.documents import Document, PageStart, make_doc_id
from index.ingest import Indexer
from index.milvus.connection import Connection
from index.milvus.store import MilvusStore
from index.store import IndexStore, Manifest
from tests import strict_skips
from tests.fakes import FakeEncoder
from tests.milvus_server import milvus_lite_server

REPO_ROOT = Path(__file__).resolve().parent.parent
# Project data the tests carry (tests/data/README.md says where each file comes from).
TEST_DATA = REPO_ROOT / "tests" / "data"
# The large shared data beside the checkout (CI has it, a plain clone does not): tests using it skip without it.
SHARED = REPO_ROOT.parent / "shared"
EXTBENCH = SHARED / "bench" / "extbench"
SAMPLE_REPORT = REPO_ROOT / "data" / "sample" / "info-industry-monitor-2020-12.txt"


def pytest_configure(config: pytest.Config) -> None:
    # Under CI=true a skipped test fails the run (tests/strict_skips.py).
    strict_skips.register(config)


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def chunker() -> Chunker:
    return Chunker(chunk_size=120, chunk_overlap=20)


def fake_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for CiteQA over the fake encoder: small chunks; every question answerable (the fake
    encoder's cosines are not those the thresholds were calibrated for); TestClient's Host allowed."""
    defaults: dict[str, Any] = {
        "data_dir": data_dir,
        "chunk_size": 100,
        "chunk_overlap": 10,
        "answerable_threshold_cjk": -1.0,
        "answerable_threshold_other": -1.0,
        "allowed_hosts": ["testserver", "127.0.0.1"],
    }
    return Settings(**(defaults | overrides))


def manifest_for(encoder: FakeEncoder, chunker: Chunker) -> Manifest:
    return Manifest(model=encoder.name, dimension=encoder.dimension, chunking=chunker.settings)


@pytest.fixture
def store(tmp_path: Path, fake_encoder: FakeEncoder, chunker: Chunker):
    opened = IndexStore.open(tmp_path / "index", manifest_for(fake_encoder, chunker))
    yield opened
    opened.close()


@pytest.fixture
def indexer(store: IndexStore, fake_encoder: FakeEncoder, chunker: Chunker) -> Indexer:
    return Indexer(store, fake_encoder, chunker)


def make_document(title: str, text: str, section: str | None = "产业环境", page: int | None = 3) -> Document:
    return Document(
        doc_id=make_doc_id("test.txt", title),
        title=title,
        text=text,
        source="test.txt",
        section=section,
        page_map=[PageStart(char_start=0, page=page)] if page else [],
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """A real uvicorn server for an ASGI app, in a thread on a free loopback port: its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def citeqa_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "service", *args]


@dataclass(frozen=True)
class RunningServer:
    url: str
    env: dict[str, str]


def start_server(
    args: list[str], env: dict[str, str], log_path: Path, timeout_s: float = 600
) -> subprocess.Popen:
    """`citeqa serve ARGS` in a child process, once its /readyz answers 200 (the test fails otherwise)."""
    with open(log_path, "a") as log:
        process = subprocess.Popen(
            citeqa_command("serve", *args), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
        )
    url = f"http://127.0.0.1:{env['CITEQA_PORT']}"
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            pytest.fail(f"citeqa serve exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"citeqa serve not ready after {timeout_s} s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)


def stop_server(process: subprocess.Popen) -> None:
    """Stop it as Ctrl-C does (a kill if it does not end within 20 s)."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@contextlib.contextmanager
def running_server(
    tmp_path_factory: pytest.TempPathFactory, name: str, *args: str
) -> Iterator[RunningServer]:
    """`citeqa serve ARGS` on a data folder of its own and a free port, until the block ends."""
    port = free_port()
    env = {
        **os.environ,
        "CITEQA_DATA_DIR": str(tmp_path_factory.mktemp(f"{name}-index")),
        "CITEQA_PORT": str(port),
    }
    process = start_server(list(args), env, tmp_path_factory.mktemp(f"{name}-log") / "server.log")
    try:
        yield RunningServer(url=f"http://127.0.0.1:{port}", env=env)
    finally:
        stop_server(process)


@pytest.fixture(scope="session")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """`citeqa serve` as a user starts it: real model, the bundled sample indexed, a real port."""
    with running_server(tmp_path_factory, "server", "--ingest-if-empty", str(SAMPLE_REPORT.parent)) as server:
        yield server


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Milvus (`milvus-lite server`) on a free loopback port for the session: its URI. Tests using it
    are marked `server` and `milvus`, and keep to collections of their own."""
    with milvus_lite_server(
        tmp_path_factory.mktemp("milvus-data"),
        free_port(),
        tmp_path_factory.mktemp("milvus-log") / "milvus.log",
    ) as uri:
        yield uri


@pytest.fixture
def milvus_connection(milvus_uri: str) -> Iterator[Connection]:
    """A connection to the session's Milvus, closed after the test."""
    opened = Connection(milvus_uri)
    yield opened
    opened.close()


@pytest.fixture
def milvus_collection(milvus_connection: Connection) -> Iterator[str]:
    """A collection name of the test's own in the session's Milvus, dropped after the test."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    yield name
    MilvusStore.drop(milvus_connection, name)
