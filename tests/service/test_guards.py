"""Requests refused for where they come from: a Host header the server does not answer to (DNS rebinding),
and a write sent by a page of another site (cross-site request forgery). In process with a fake encoder."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citeqa.errors import HostNotAllowed
from citeqa.settings import Settings
from citeqa.wiring import Resources
from service.app import create_app
from service.guards import RequestGuard
from tests.fakes import FakeEncoder
from tests.service.uploads import upload

ARTICLE = {"title": "晶圆代工吃紧", "text": "晶圆代工产能紧张，手机芯片供不应求。", "doc_id": "chips"}
FILES = [("files", ("articles.jsonl", json.dumps(ARTICLE, ensure_ascii=False).encode(), "text/plain"))]
SEARCH = {"question": "晶圆代工产能紧张吗？"}

ClientFor = Callable[..., TestClient]


@pytest.fixture
def client_for(tmp_path: Path) -> Iterator[ClientFor]:
    """A client of an app built with the given settings, requests sent as from `base_url`."""
    opened: list[tuple[TestClient, Resources]] = []

    def build(base_url: str = "http://127.0.0.1:8000", **settings: object) -> TestClient:
        configured = Settings(
            data_dir=tmp_path / f"index{len(opened)}", chunk_size=100, chunk_overlap=10, **settings
        )
        resources = Resources.from_encoder(configured, FakeEncoder())
        client = TestClient(create_app(configured, resources), base_url=base_url)
        client.__enter__()
        opened.append((client, resources))
        return client

    yield build
    for client, resources in opened:
        client.__exit__(None, None, None)
        resources.close()


# -- the Host header -----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST"])
def test_by_default_the_loopback_names_are_served(client_for: ClientFor, host: str) -> None:
    response = client_for().get("/healthz", headers={"host": host})
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:8000", "testserver", "127.0.0.2:8000"]
)
def test_another_host_gets_a_400_naming_it_and_the_setting(client_for: ClientFor, host: str) -> None:
    client = client_for()
    for response in (
        client.get("/healthz", headers={"host": host}),
        client.post("/v1/search", json=SEARCH, headers={"host": host}),
        client.get("/", headers={"host": host}),
    ):
        assert response.status_code == 400
        body = response.json()
        assert body == {"error": "HostNotAllowed", "message": body["message"], "details": []}
        assert f"'{host.rpartition(':')[0] if host.endswith(':8000') else host}'" in body["message"]
        assert "CITEQA_ALLOWED_HOSTS" in body["message"]


def test_a_request_without_a_host_header_is_refused() -> None:
    # HTTP/1.0 allows it; test clients add one, so the guard is asked directly.
    guard = RequestGuard(app=None, allowed_hosts=["localhost", "127.0.0.1"])
    assert isinstance(guard.refusal({"type": "http", "method": "GET", "headers": []}), HostNotAllowed)
    assert (
        RequestGuard(app=None, allowed_hosts=["*"]).refusal({"type": "http", "method": "GET", "headers": []})
        is None
    )


def test_the_configured_names_are_served_and_no_other(client_for: ClientFor) -> None:
    client = client_for(allowed_hosts=["citeqa.example.org", "*.corp.example"])
    assert client.get("/healthz", headers={"host": "citeqa.example.org"}).status_code == 200
    assert client.get("/healthz", headers={"host": "qa.corp.example:8443"}).status_code == 200
    assert client.get("/healthz", headers={"host": "corp.example"}).status_code == 400
    assert client.get("/healthz", headers={"host": "evilcorp.example"}).status_code == 400
    assert client.get("/healthz", headers={"host": "localhost"}).status_code == 400


def test_a_star_serves_any_host(client_for: ClientFor) -> None:
    client = client_for(allowed_hosts=["*"])
    assert client.get("/healthz", headers={"host": "anything.example:1234"}).status_code == 200


def test_refused_requests_are_counted_in_the_metrics(client_for: ClientFor) -> None:
    client = client_for()
    client.get("/healthz", headers={"host": "attacker.example"})
    metrics = client.get("/metrics").text
    assert 'citeqa_http_requests_total{method="GET",route="unmatched",status="400"} 1.0' in metrics


# -- writes from another origin -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["http://attacker.example", "http://127.0.0.1:8001", "https://localhost", "null"]
)
def test_a_write_from_another_origin_is_refused_with_a_403_and_writes_nothing(
    client_for: ClientFor, origin: str
) -> None:
    client = client_for()
    assert upload(client, FILES)["status"] == "done"
    refused = [
        client.post("/v1/documents", files=FILES, headers={"origin": origin}),
        client.delete("/v1/documents/chips", headers={"origin": origin}),
        client.post("/v1/search", json=SEARCH, headers={"origin": origin}),
    ]
    for response in refused:
        assert response.status_code == 403
        body = response.json()
        assert body == {"error": "CrossOriginWrite", "message": body["message"], "details": []}
        assert f"'{origin}'" in body["message"]
        assert "127.0.0.1:8000" in body["message"]
    assert client.get("/v1/documents").json()["total"] == 1
    assert client.get("/v1/documents/chips").status_code == 200


def test_writes_from_the_servers_own_pages_and_from_clients_without_an_origin_go_through(
    client_for: ClientFor,
) -> None:
    client = client_for()
    own_page = {"origin": "http://127.0.0.1:8000"}
    assert upload(client, FILES, headers=own_page)["status"] == "done"
    assert (
        client.post("/v1/search", json=SEARCH, headers={"origin": "http://127.0.0.1:8000"}).status_code == 200
    )
    assert client.post("/v1/search", json=SEARCH).status_code == 200  # curl, the CLI: no Origin header
    assert (
        client.delete("/v1/documents/chips", headers={"origin": "HTTP://127.0.0.1:8000"}).status_code == 200
    )


def test_a_read_from_another_origin_is_answered(client_for: ClientFor) -> None:
    # The browser keeps the answer from the other site's page (no CORS header): nothing to refuse.
    response = client_for().get("/v1/documents", headers={"origin": "http://attacker.example"})
    assert response.status_code == 200


def test_behind_a_proxy_the_origin_is_compared_with_the_host_the_client_asked_for(
    client_for: ClientFor,
) -> None:
    # TLS ends at the proxy: the app sees http, the page's origin is https; the Host header is the same.
    client = client_for(base_url="http://citeqa.example.org", allowed_hosts=["citeqa.example.org"])
    own = client.post("/v1/search", json=SEARCH, headers={"origin": "https://citeqa.example.org"})
    assert own.status_code == 200
    other = client.post("/v1/search", json=SEARCH, headers={"origin": "https://other.example.org"})
    assert other.status_code == 403
