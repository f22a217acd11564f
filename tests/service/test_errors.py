"""The error contract over HTTP: which status and body each failure gets, and what still works after one.

Every error answers `{"error", "message", "details"}`; a held write lock and a model mismatch are 409s; a
bug is a 500 that names no internals; and neither a bug nor a failed write closes the client's
keep-alive connection or leaves the index unusable. In process with a fake encoder, and over a real
uvicorn server where the connection itself is under test.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from citeqa.settings import Settings
from citeqa.wiring import Resources
from index.chunking import Chunker
from index.ingest import Indexer
from index.search import Searcher
from index.storage.documents import LOCK_FILE
from index.store import IndexStore, Manifest
from service.app import create_app
from service.errors import INTERNAL_ERROR_MESSAGE
from tests.conftest import serving
from tests.fakes import FakeEncoder
from tests.service.uploads import upload

ARTICLES = [
    {
        "title": "云服务市场驾云腾飞",
        "text": "云服务市场规模持续扩大。公有云收入同比增长超过百分之四十。",
        "doc_id": "cloud",
    },
    {"title": "晶圆代工吃紧", "text": "晶圆代工产能紧张，手机芯片供不应求。", "doc_id": "chips"},
]
LATER = {"title": "九章问世", "text": "九章构建了七十六个光子的量子计算原型机。", "doc_id": "jiuzhang"}
INTERNAL_ERROR = {"error": "InternalError", "message": INTERNAL_ERROR_MESSAGE, "details": []}
# What a bug's exception says; none of it may reach the client.
SECRET = "secret internals: /srv/citeqa/var/index token=hunter2"


def _settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        chunk_size=100,
        chunk_overlap=10,
        # The fake encoder's cosines are not those the thresholds were calibrated for: every question passes.
        answerable_threshold_cjk=-1.0,
        answerable_threshold_other=-1.0,
        translate_questions=False,
        allowed_hosts=["testserver", "127.0.0.1"],  # TestClient's Host and the live server's
    )


@pytest.fixture
def resources(tmp_path: Path) -> Iterator[Resources]:
    built = Resources.from_encoder(_settings(tmp_path / "index"), FakeEncoder())
    yield built
    built.close()


@pytest.fixture
def client(resources: Resources) -> Iterator[TestClient]:
    # Server exceptions are not re-raised into the test: the test sees what a client would.
    with TestClient(create_app(resources.settings, resources), raise_server_exceptions=False) as test_client:
        yield test_client


def _jsonl(*articles: dict[str, Any]) -> bytes:
    return "\n".join(json.dumps(a, ensure_ascii=False) for a in articles).encode()


def _files(*articles: dict[str, Any]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", ("articles.jsonl", _jsonl(*articles), "application/octet-stream"))]


SEARCH = {"question": "晶圆代工产能紧张吗？", "top_k": 5}


# -- 409: the index's write lock is held by another process -----------------------------------------

HOLD_LOCK = textwrap.dedent(
    """
    import fcntl, sys
    lock = open(sys.argv[1], "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    """
)


@contextlib.contextmanager
def write_lock_held_by_another_process(index_dir: Path) -> Iterator[None]:
    """The index's write lock, held by a child process (as a running `citeqa ingest` holds it)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(index_dir / LOCK_FILE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


def test_a_write_while_another_process_holds_the_write_lock_gets_a_409_index_locked(
    client: TestClient, resources: Resources
) -> None:
    assert upload(client, _files(*ARTICLES))["status"] == "done"
    resources.collection().store.lock_timeout_s = 0.3  # the product waits 30 s; the contract is the same
    with write_lock_held_by_another_process(resources.settings.data_dir):
        job = upload(client, _files(LATER))
        deletion = client.delete("/v1/documents/chips")
        search = client.post("/v1/search", json=SEARCH)
    assert deletion.status_code == 409
    body = deletion.json()
    assert body == {"error": "IndexLocked", "message": body["message"], "details": []}
    # An upload is a background job: the job fails, with the same message.
    assert job["status"] == "failed" and job["error"] == body["message"]
    assert "Another process is writing to the index" in body["message"]
    assert "try again" in body["message"]
    assert search.status_code == 200  # reading needs no write lock
    # Once the other process is done, the same writes go through.
    assert upload(client, _files(LATER))["status"] == "done"
    assert client.delete("/v1/documents/chips").status_code == 200
    assert {d["doc_id"] for d in client.get("/v1/documents").json()["documents"]} == {"cloud", "jiuzhang"}


# -- 409: another process re-embedded the index with another model -----------------------------------


def _reindex_with_another_model(data_dir: Path, dimension: int) -> None:
    """What `citeqa reindex` run with CITEQA_EMBEDDING_MODEL=another-model does, from its own process:
    its own connection and its own vectors in memory, nothing shared with the server's store."""
    encoder, chunker = FakeEncoder(dimension=dimension, name="another-model"), Chunker(100, 10)
    manifest = Manifest(model=encoder.name, dimension=encoder.dimension, chunking=chunker.settings)
    other = IndexStore.open(data_dir, manifest, rebuild=True)
    Indexer(other, encoder, chunker).reindex()
    other.close()


@pytest.mark.parametrize("dimension", [64, 32], ids=["same dimension", "another dimension"])
def test_after_another_process_reindexes_with_another_model_writes_and_searches_get_a_409_model_mismatch(
    client: TestClient, resources: Resources, dimension: int
) -> None:
    # Same dimension is the dangerous case: nothing would fail, vectors of two models would just be mixed.
    assert upload(client, _files(*ARTICLES))["status"] == "done"
    _reindex_with_another_model(resources.settings.data_dir, dimension)

    job = upload(client, _files(LATER))
    deletion = client.delete("/v1/documents/chips")
    search = client.post("/v1/search", json=SEARCH)
    assert job["status"] == "failed" and job["error"] == deletion.json()["message"]
    for refused in (deletion, search):
        assert refused.status_code == 409
        body = refused.json()
        assert body == {"error": "IndexModelMismatch", "message": body["message"], "details": []}
        assert "re-embedded by another process with model 'another-model'" in body["message"]
        assert "Restart CiteQA" in body["message"]
        assert "citeqa reindex" in body["message"]
    assert "No document was written or deleted" in job["error"]
    assert "Nothing was searched" in search.json()["message"]

    # Nothing of the server's model reached the index: it is all the other model's, as reindexed.
    encoder = FakeEncoder(dimension=dimension, name="another-model")
    manifest = Manifest(model=encoder.name, dimension=dimension, chunking=Chunker(100, 10).settings)
    reopened = IndexStore.open(resources.settings.data_dir, manifest)
    assert {d.doc_id for d in reopened.list_documents()} == {"cloud", "chips"}
    assert reopened.manifest.model == "another-model"
    found = Searcher(reopened, encoder).search("晶圆代工产能紧张吗？", top_k=1).passages
    assert found[0].citation.doc_id == "chips"
    reopened.close()


# -- 500: a bug ---------------------------------------------------------------------------------------


def _raise_a_bug(*args: object, **kwargs: object) -> None:
    raise RuntimeError(SECRET)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/search", SEARCH),
        ("/v1/chat", {"messages": [{"role": "user", "content": "晶圆代工产能紧张吗？"}]}),
    ],
)
def test_a_bug_answers_500_with_the_generic_body_and_leaks_nothing_of_the_exception(
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    path: str,
    body: dict[str, Any],
) -> None:
    monkeypatch.setattr(Searcher, "search", _raise_a_bug)
    with caplog.at_level(logging.ERROR, logger="service.errors"):
        response = client.post(path, json=body)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == INTERNAL_ERROR
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    # "The error is in its log": the message says so, and it is.
    [record] = [r for r in caplog.records if r.name == "service.errors"]
    assert record.getMessage() == f"Unexpected error on POST {path}"
    assert record.exc_info is not None and SECRET in str(record.exc_info[1])


# -- after a failure, the same connection and the same index go on ------------------------------------


@dataclass
class LiveServer:
    """A real uvicorn server on a loopback port, and the client address of each HTTP request it received:
    two requests with the same (host, port) came over the same TCP connection."""

    url: str
    connections: list[tuple[str, int]]


@pytest.fixture
def live_server(resources: Resources) -> Iterator[LiveServer]:
    app = create_app(resources.settings, resources)
    connections: list[tuple[str, int]] = []

    async def recording_connections(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            connections.append(tuple(scope["client"]))
        await app(scope, receive, send)

    with serving(recording_connections) as url:
        yield LiveServer(url=url, connections=connections)


def _same_connection(responses: list[httpx.Response], server: LiveServer) -> bool:
    """Whether the responses came over one TCP connection, as the client and as the server saw it."""
    streams = {id(response.extensions["network_stream"]) for response in responses}
    return len(streams) == 1 and len(set(server.connections)) == 1


def test_after_a_500_the_next_request_on_the_same_keep_alive_connection_gets_a_normal_answer(
    live_server: LiveServer, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    search = resources.collection().searcher.search
    failures = iter([RuntimeError(SECRET)])

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        for failure in failures:
            raise failure
        return search(*args, **kwargs)

    monkeypatch.setattr(resources.collection().searcher, "search", failing_once)
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        failed = http.post("/v1/search", json=SEARCH)
        answered = http.post("/v1/search", json=SEARCH)
    assert failed.status_code == 500
    assert failed.json() == INTERNAL_ERROR
    assert answered.status_code == 200
    assert answered.json()["question"] == SEARCH["question"]
    assert len(live_server.connections) == 2
    assert _same_connection([failed, answered], live_server), live_server.connections


def test_a_write_transaction_failing_midway_leaves_the_connection_and_the_index_usable(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_documents = IndexStore._write_documents
    failures = iter([RuntimeError(SECRET)])

    def failing_after_writing_once(store: IndexStore, write: Any, items: Any) -> None:
        write_documents(store, write, items)  # rows written inside the transaction, then the failure
        for failure in failures:
            raise failure

    monkeypatch.setattr(IndexStore, "_write_documents", failing_after_writing_once)
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        failed = upload(http, _files(LATER))
        listed_after_failure = http.get("/v1/documents")
        uploaded = upload(http, _files(*ARTICLES))
        searched = http.post("/v1/search", json=SEARCH)
    # The job tells the generic message, and nothing of the exception.
    assert failed["status"] == "failed" and failed["error"] == INTERNAL_ERROR_MESSAGE
    assert listed_after_failure.json()["total"] == 0  # the failed transaction left nothing behind
    assert uploaded["status"] == "done"
    assert searched.status_code == 200
    assert searched.json()["passages"][0]["citation"]["doc_id"] == "chips"
    assert {p["citation"]["doc_id"] for p in searched.json()["passages"]} == {"cloud", "chips"}
    assert _same_connection([listed_after_failure, searched], live_server)
