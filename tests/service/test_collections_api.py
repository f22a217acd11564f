"""Collections over HTTP: create, fill, search and delete named indexes; the default one needs no name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citeqa.wiring import Resources
from service.app import create_app
from tests.conftest import fake_settings
from tests.fakes import FakeEncoder
from tests.service.uploads import upload

CHIPS = {
    "title": "晶圆代工吃紧",
    "text": "晶圆代工产能紧张，手机芯片供不应求。",
    "section": "技术情报",
    "doc_id": "chips",
}
CLOUD = {"title": "云服务市场", "text": "云服务市场规模持续扩大。", "section": "产业环境", "doc_id": "cloud"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = fake_settings(tmp_path / "index")
    resources = Resources.from_encoder(settings, FakeEncoder())
    with TestClient(create_app(settings, resources)) as test_client:
        yield test_client
    resources.close()


def _upload(client: TestClient, path: str, article: dict) -> dict:
    content = json.dumps(article, ensure_ascii=False).encode()
    return upload(client, [("files", ("a.jsonl", content, "application/octet-stream"))], path)


def test_a_new_data_folder_has_the_default_collection_only(client: TestClient) -> None:
    response = client.get("/v1/collections")
    assert response.status_code == 200
    assert response.json() == {
        "collections": [{"name": "default", "documents": 0, "chunks": 0, "sections": []}]
    }


def test_documents_go_to_the_collection_their_path_names(client: TestClient) -> None:
    assert client.post("/v1/collections", json={"name": "reports"}).status_code == 201
    assert _upload(client, "/v1/collections/reports/documents", CHIPS)["collection"] == "reports"
    assert _upload(client, "/v1/documents", CLOUD)["collection"] == "default"

    listed = {c["name"]: c for c in client.get("/v1/collections").json()["collections"]}
    assert (listed["reports"]["documents"], listed["reports"]["sections"]) == (1, ["技术情报"])
    assert (listed["default"]["documents"], listed["default"]["sections"]) == (1, ["产业环境"])
    assert [d["doc_id"] for d in client.get("/v1/collections/reports/documents").json()["documents"]] == [
        "chips"
    ]
    assert client.get("/v1/collections/reports/documents/chips").json()["title"] == "晶圆代工吃紧"
    assert client.get("/v1/documents/chips").status_code == 404
    assert client.get("/v1/collections/default/documents/cloud").status_code == 200


def test_search_and_chat_read_the_collection_of_their_body(client: TestClient) -> None:
    client.post("/v1/collections", json={"name": "reports"})
    _upload(client, "/v1/collections/reports/documents", CHIPS)
    _upload(client, "/v1/documents", CLOUD)

    in_reports = client.post("/v1/search", json={"question": "晶圆代工产能", "collection": "reports"}).json()
    in_default = client.post("/v1/search", json={"question": "晶圆代工产能"}).json()
    assert {p["citation"]["doc_id"] for p in in_reports["passages"]} == {"chips"}
    assert {p["citation"]["doc_id"] for p in in_default["passages"]} == {"cloud"}

    chat = client.post(
        "/v1/chat", json={"messages": [{"role": "user", "content": "晶圆代工产能"}], "collection": "reports"}
    ).json()
    assert {p["citation"]["doc_id"] for p in chat["result"]["passages"]} == {"chips"}


def test_deleting_a_collection_removes_its_documents(client: TestClient) -> None:
    client.post("/v1/collections", json={"name": "scratch"})
    _upload(client, "/v1/collections/scratch/documents", CHIPS)

    response = client.delete("/v1/collections/scratch")
    assert response.status_code == 200
    assert response.json() == {"name": "scratch", "deleted": True}
    assert [c["name"] for c in client.get("/v1/collections").json()["collections"]] == ["default"]
    assert client.get("/v1/collections/scratch/documents").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("post", "/v1/collections", {"name": "Bad Name"}, 422, "ValidationError"),
        ("post", "/v1/collections", {"name": "default"}, 409, "CollectionExists"),
        ("delete", "/v1/collections/default", None, 422, "InvalidCollectionName"),
        ("delete", "/v1/collections/missing", None, 404, "CollectionNotFound"),
        ("get", "/v1/collections/missing/documents", None, 404, "CollectionNotFound"),
        ("get", "/v1/collections/Bad%20Name/documents", None, 422, "ValidationError"),
        ("get", "/v1/collections/..%2F..%2Fetc/documents", None, 404, "HTTPError"),
        ("post", "/v1/search", {"question": "芯片", "collection": "missing"}, 404, "CollectionNotFound"),
        ("post", "/v1/search", {"question": "芯片", "collection": "../x"}, 422, "ValidationError"),
    ],
)
def test_bad_collection_names_get_a_4xx_that_says_what_to_fix(
    client: TestClient, method: str, path: str, body: dict | None, status: int, error: str
) -> None:
    response = client.request(method.upper(), path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["message"]
