"""The HTTP contract, in process with a fake encoder (the real server and model: test_e2e.py)."""

from __future__ import annotations

import json
import random
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citeqa.wiring import Resources
from service.app import create_app
from tests.conftest import fake_settings
from tests.fakes import FakeEncoder
from tests.service.uploads import upload

ARTICLES = [
    {
        "title": "云服务市场驾云腾飞",
        "text": "云服务市场规模持续扩大。公有云收入同比增长超过百分之四十。",
        "section": "产业环境",
    },
    {
        "title": "晶圆代工吃紧",
        "text": "晶圆代工产能紧张，手机芯片供不应求。",
        "section": "技术情报",
        "doc_id": "chips",
    },
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = fake_settings(tmp_path / "index", max_upload_mb=1)
    resources = Resources.from_encoder(settings, FakeEncoder())
    with TestClient(create_app(settings, resources)) as test_client:
        yield test_client
    resources.close()


def _files(name: str, content: bytes) -> list:
    return [("files", (name, content, "application/octet-stream"))]


def _upload(client: TestClient, name: str, content: bytes):
    return client.post("/v1/documents", files=_files(name, content))


def _jsonl(articles: list[dict]) -> bytes:
    return "\n".join(json.dumps(a, ensure_ascii=False) for a in articles).encode()


def test_uploaded_articles_are_searchable_with_citations(client: TestClient) -> None:
    job = upload(client, _files("articles.jsonl", _jsonl(ARTICLES)))
    assert job["status"] == "done" and job["files"] == ["articles.jsonl"]
    assert [d["status"] for d in job["documents"]] == ["added", "added"]
    assert job["texts_embedded"] == job["texts_total"] > 0

    response = client.post("/v1/search", json={"question": "晶圆代工产能紧张吗？", "top_k": 1})
    assert response.status_code == 200
    body = response.json()
    assert body["question"] == "晶圆代工产能紧张吗？"
    assert isinstance(body["took_ms"], float)
    [passage] = body["passages"]
    assert passage["rank"] == 1
    assert passage["citation"] == {
        "doc_id": "chips",
        "title": "晶圆代工吃紧",
        "section": "技术情报",
        "page": None,
        "source": "articles.jsonl",
        "char_start": 0,
        "char_end": len(ARTICLES[1]["text"]),
    }
    document = client.get("/v1/documents/chips").json()
    assert (
        document["text"][passage["citation"]["char_start"] : passage["citation"]["char_end"]]
        == passage["text"]
    )


def test_documents_are_listed_and_deleted(client: TestClient) -> None:
    upload(client, _files("articles.jsonl", _jsonl(ARTICLES)))
    listed = client.get("/v1/documents").json()
    assert listed["total"] == 2
    assert {d["title"] for d in listed["documents"]} == {"云服务市场驾云腾飞", "晶圆代工吃紧"}
    assert client.delete("/v1/documents/chips").json() == {"doc_id": "chips", "deleted": True}
    assert client.get("/v1/documents").json()["total"] == 1
    missing = client.get("/v1/documents/chips")
    assert missing.status_code == 404
    assert "No document with id 'chips'" in missing.json()["message"]
    assert client.delete("/v1/documents/chips").status_code == 404


def test_filters_limit_search_to_a_section(client: TestClient) -> None:
    upload(client, _files("articles.jsonl", _jsonl(ARTICLES)))
    body = client.post(
        "/v1/search", json={"question": "市场", "top_k": 5, "filters": {"sections": ["产业环境"]}}
    ).json()
    assert {p["citation"]["section"] for p in body["passages"]} == {"产业环境"}


def test_health_and_readiness_report_the_index(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    upload(client, _files("articles.jsonl", _jsonl(ARTICLES)))
    ready = client.get("/readyz").json()
    assert ready == {
        "status": "ready",
        "model": "fake-bigram-64",
        "dimension": 64,
        "documents": 2,
        "chunks": 2,
        "sections": ["产业环境", "技术情报"],
        "vector_indexes": {"chunks": "flat/fp32", "sentences": "flat/fp32"},
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": ""}, "body.question"),
        ({"question": "x" * 100_000}, "body.question"),
        ({"question": "云", "top_k": 0}, "body.top_k"),
        ({"question": "云", "top_k": 1000}, "body.top_k"),
        ({"top_k": 5}, "body.question"),
        ({"question": "云", "filters": {"sections": "产业环境"}}, "body.filters.sections"),
    ],
)
def test_invalid_search_requests_get_a_422_naming_the_field(
    client: TestClient, body: dict, field: str
) -> None:
    response = client.post("/v1/search", json=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["error"] == "ValidationError"
    assert field in payload["message"]
    assert payload["details"][0]["field"] == field


def test_a_blank_question_is_rejected(client: TestClient) -> None:
    response = client.post("/v1/search", json={"question": "   "})
    assert response.status_code == 400
    assert "question is blank" in response.json()["message"]


def test_malformed_json_gets_a_422_that_says_so(client: TestClient) -> None:
    response = client.post(
        "/v1/search", content=b'{"question": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "not valid JSON" in response.json()["message"]


def test_a_binary_upload_is_rejected_with_the_reason(client: TestClient) -> None:
    response = _upload(client, "photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    assert response.status_code == 422
    payload = response.json()
    assert "No article could be read" in payload["message"]
    assert payload["details"][0]["source"] == "photo.txt"
    assert client.get("/v1/documents").json()["total"] == 0


def test_an_upload_over_the_size_limit_is_rejected(client: TestClient) -> None:
    response = _upload(client, "big.txt", "大".encode() * (1024 * 1024))
    assert response.status_code == 413
    assert "CITEQA_MAX_UPLOAD_MB" in response.json()["message"]


def test_an_upload_without_files_is_a_422(client: TestClient) -> None:
    assert client.post("/v1/documents").status_code == 422


def test_an_upload_is_answered_at_once_with_a_job_that_says_what_it_did(client: TestClient) -> None:
    response = _upload(client, "articles.jsonl", _jsonl(ARTICLES))
    assert response.status_code == 202
    queued = response.json()
    assert queued["status"] in ("queued", "running", "done") and queued["collection"] == "default"
    done = upload(client, _files("articles.jsonl", _jsonl(ARTICLES)))  # the same file again
    assert [d["status"] for d in done["documents"]] == ["unchanged", "unchanged"]
    missing = client.get("/v1/jobs/nope")
    assert (missing.status_code, missing.json()["error"]) == (404, "JobNotFound")


def test_openapi_documents_every_route_with_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/v1/search", "/v1/documents", "/v1/documents/{doc_id}", "/healthz", "/readyz"} <= set(
        schema["paths"]
    )
    examples = schema["components"]["schemas"]["SearchRequest"]["examples"]
    assert examples[0]["question"] == "How many 5G base stations has China built?"
    assert client.get("/docs").status_code == 200


def test_metrics_count_requests_by_route(client: TestClient) -> None:
    client.get("/healthz")
    metrics = client.get("/metrics").text
    assert 'citeqa_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in metrics


def _series(metrics: str) -> set[str]:
    """The HTTP metrics' series: each sample name with one set of labels."""
    return {line.split(" ")[0] for line in metrics.splitlines() if line.startswith("citeqa_http_")}


def test_made_up_methods_and_random_paths_add_a_bounded_number_of_metric_series(client: TestClient) -> None:
    # A label set costs 17 series (a counter and a histogram of 12 buckets, each with its totals): labels
    # taken from the request as sent would let any client grow the registry, and every scrape, without end.
    picker = random.Random(15)
    paths = ["/v1/search", "/healthz", "/v1/documents/x", "/v1/documents"]
    client.get("/metrics")
    before = _series(client.get("/metrics").text)
    for _ in range(100):
        method = "".join(picker.choices(string.ascii_uppercase, k=7))
        path = picker.choice([*paths, "/" + "".join(picker.choices(string.ascii_lowercase, k=10))])
        client.request(method, path)
    added = _series(client.get("/metrics").text) - before
    assert {label for series in added for label in series.split(",") if label.startswith("method=")} == {
        'method="other"'
    }
    assert len(added) <= 2 * 17, sorted(added)
