"""Limits that protect the server: each refuses with a 4xx that names the setting to change."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from citeqa.settings import Settings
from citeqa.wiring import Resources
from service.app import create_app
from tests.conftest import fake_settings, serving
from tests.fakes import FakeEncoder

ARTICLE = {"title": "晶圆代工吃紧", "text": "晶圆代工产能紧张，手机芯片供不应求。", "doc_id": "chips"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fake_settings(
        tmp_path / "index",
        max_upload_mb=1,
        max_upload_files=3,
        max_article_chars=1000,
        max_request_kb=8,
        max_filter_values=5,
    )


@pytest.fixture
def resources(settings: Settings) -> Iterator[Resources]:
    built = Resources.from_encoder(settings, FakeEncoder())
    yield built
    built.close()


@pytest.fixture
def client(settings: Settings, resources: Resources) -> Iterator[TestClient]:
    with TestClient(create_app(settings, resources)) as test_client:
        yield test_client


def _jsonl(*articles: dict) -> bytes:
    return "\n".join(json.dumps(a, ensure_ascii=False) for a in articles).encode()


def _refused(response: httpx.Response, status: int, setting: str) -> None:
    assert response.status_code == status, response.text
    assert setting in response.json()["message"]


def test_a_json_body_over_the_limit_is_a_413(client: TestClient) -> None:
    response = client.post("/v1/search", json={"question": "芯片", "filters": {"doc_ids": ["x" * 10_000]}})
    _refused(response, 413, "CITEQA_MAX_REQUEST_KB")
    assert response.json()["error"] == "RequestTooLarge"


def test_a_filter_of_too_many_values_is_a_422(client: TestClient) -> None:
    body = {"question": "芯片", "filters": {"sections": [f"s{i}" for i in range(6)]}}
    _refused(client.post("/v1/search", json=body), 422, "CITEQA_MAX_FILTER_VALUES")
    chat = {"messages": [{"role": "user", "content": "芯片"}], "filters": {"doc_ids": list("abcdef")}}
    _refused(client.post("/v1/chat", json=chat), 422, "CITEQA_MAX_FILTER_VALUES")
    assert client.post("/v1/search", json={**body, "filters": {"sections": ["s1"] * 5}}).status_code == 200


def test_an_upload_over_the_size_limit_is_a_413(client: TestClient) -> None:
    files = [("files", ("big.txt", "大".encode() * 400_000, "text/plain"))]
    _refused(client.post("/v1/documents", files=files), 413, "CITEQA_MAX_UPLOAD_MB")


def test_an_upload_of_too_many_files_is_a_413(client: TestClient) -> None:
    files = [
        ("files", (f"a{i}.jsonl", _jsonl({**ARTICLE, "doc_id": f"d{i}"}), "text/plain")) for i in range(4)
    ]
    _refused(client.post("/v1/documents", files=files), 413, "CITEQA_MAX_UPLOAD_FILES")


def test_an_article_over_the_length_limit_is_a_413_and_nothing_is_queued(client: TestClient) -> None:
    long = {"title": "长文", "text": "很长的文章。" * 200, "doc_id": "long"}
    response = client.post(
        "/v1/documents", files=[("files", ("a.jsonl", _jsonl(ARTICLE, long), "text/plain"))]
    )
    _refused(response, 413, "CITEQA_MAX_ARTICLE_CHARS")
    assert response.json()["details"] == [{"source": "a.jsonl", "title": "长文", "characters": 1200}]
    assert client.get("/v1/documents").json()["total"] == 0


def test_an_upload_streamed_without_a_length_is_stopped_once_it_passes_the_limit(
    settings: Settings, resources: Resources
) -> None:
    with serving(create_app(settings, resources)) as url:
        sent, answer = _stream_until_answered(int(url.rpartition(":")[2]), limit_bytes=50 * 1024 * 1024)
    status_line, _, body = answer.partition(b"\r\n\r\n")
    assert status_line.startswith(b"HTTP/1.1 413")
    assert b"CITEQA_MAX_UPLOAD_MB" in body
    # Answered long before the 50 MB were sent: the server stopped reading near its 1 MB limit.
    assert sent < 10 * 1024 * 1024


def _stream_until_answered(port: int, limit_bytes: int) -> tuple[int, bytes]:
    """POST a multipart upload in chunks with no Content-Length, up to `limit_bytes`, stopping as soon as
    the server answers: (bytes sent, the answer)."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(
            b"POST /v1/documents HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
        )
        part = b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\n'
        connection.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        piece = b"x" * (64 * 1024)
        chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
        sent = 0
        while sent < limit_bytes:
            if select.select([connection], [], [], 0)[0]:
                break
            try:
                connection.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        connection.settimeout(10)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            received = connection.recv(65536)
            if not received:
                break
            answer += received
    return sent, answer
