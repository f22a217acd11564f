"""The OpenAPI schema describes what the server sends: every status each operation can answer, errors with
the one body they all have (ErrorBody), checked by hand and by schemathesis against the running app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from citeqa.settings import Settings
from citeqa.wiring import Resources
from service.app import create_app
from service.errors import ErrorBody
from tests.fakes import FakeEncoder
from tests.service.uploads import upload

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
ARTICLES = [
    {
        "title": "云服务市场驾云腾飞",
        "text": "云服务市场规模持续扩大。公有云收入同比增长超过百分之四十。",
        "doc_id": "cloud",
    },
    {"title": "晶圆代工吃紧", "text": "晶圆代工产能紧张，手机芯片供不应求。", "doc_id": "chips"},
]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    settings = Settings(
        data_dir=tmp_path / "index",
        chunk_size=100,
        chunk_overlap=10,
        max_upload_mb=1,
        allowed_hosts=["testserver"],  # the Host of TestClient's and schemathesis's requests
    )
    resources = Resources.from_encoder(settings, FakeEncoder())
    built = create_app(settings, resources)
    with TestClient(built) as client:
        jsonl = "\n".join(json.dumps(a, ensure_ascii=False) for a in ARTICLES).encode()
        assert upload(client, [("files", ("a.jsonl", jsonl, "text/plain"))])["status"] == "done"
    yield built
    resources.close()


@pytest.fixture
def openapi(app: FastAPI) -> dict[str, Any]:
    with TestClient(app) as client:
        return client.get("/openapi.json").json()


def _operations(openapi: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _error_statuses(operation: dict[str, Any]) -> set[int]:
    return {int(status) for status in operation["responses"] if int(status) >= 400}


def test_every_error_response_is_documented_as_the_error_body_the_server_sends(
    openapi: dict[str, Any],
) -> None:
    assert openapi["components"]["schemas"]["ErrorBody"] == ErrorBody.model_json_schema(mode="serialization")
    assert "HTTPValidationError" not in openapi["components"]["schemas"]
    for method, path, operation in _operations(openapi):
        for status in _error_statuses(operation):
            response = operation["responses"][str(status)]
            assert response["content"] == {"application/json": {"schema": ERROR_BODY}}, (method, path, status)
            assert response["description"].startswith("- `"), (method, path, status)


def test_each_operation_declares_the_statuses_it_can_send(openapi: dict[str, Any]) -> None:
    declared = {
        (method, path): _error_statuses(operation) for method, path, operation in _operations(openapi)
    }
    # 400: a Host not allowed (any operation) or a blank question; 401/403: no key or one that does not grant
    # the call (operations an API key guards), 403 also a write from another origin; 404: an unknown
    # collection, document or job; 409: the index's write lock or model; 413: a body over its limit; 422: a
    # request that breaks the schema; 429: the ingest queue full; 500: a bug; 503: still loading.
    guarded = {400, 401, 403, 404, 500, 503}
    assert declared == {
        ("POST", "/v1/search"): guarded | {409, 413, 422},
        ("POST", "/v1/chat"): guarded | {409, 413, 422},
        ("GET", "/v1/collections"): {400, 401, 403, 500, 503},
        ("POST", "/v1/collections"): {400, 401, 403, 409, 413, 422, 500, 503},
        ("DELETE", "/v1/collections/{name}"): guarded | {422},
        ("GET", "/v1/jobs/{job_id}"): guarded | {422},
        ("GET", "/v1/documents"): guarded,
        ("POST", "/v1/documents"): guarded | {413, 422, 429},
        ("GET", "/v1/documents/{doc_id}"): guarded | {422},
        ("DELETE", "/v1/documents/{doc_id}"): guarded | {409, 422},
        ("GET", "/v1/collections/{collection}/documents"): guarded | {422},
        ("POST", "/v1/collections/{collection}/documents"): guarded | {413, 422, 429},
        ("GET", "/v1/collections/{collection}/documents/{doc_id}"): guarded | {422},
        ("DELETE", "/v1/collections/{collection}/documents/{doc_id}"): guarded | {409, 422},
        ("GET", "/healthz"): {400, 500},
        ("GET", "/readyz"): {400, 500, 503},
    }
    descriptions = openapi["paths"]["/v1/documents"]["post"]["responses"]
    assert "`UploadTooLarge`" in descriptions["413"]["description"]
    assert "`JobQueueFull`" in descriptions["429"]["description"]
    assert "`Unauthorized`" in descriptions["401"]["description"]
    assert "`UploadRejected`" in descriptions["422"]["description"]
    assert "`ValidationError`" in descriptions["422"]["description"]
    assert "`HostNotAllowed`" in descriptions["400"]["description"]


# Property-based: schemathesis sends generated requests, valid and invalid, to every operation of the
# schema, and checks each answer against it. The schema is read at import from an app that loads nothing
# (no model, no index: only its routes count); the requests go to the `app` of each test, over a fake
# index. Bounded to run in well under a minute.
schema = schemathesis.openapi.from_dict(create_app(Settings(allowed_hosts=["testserver"])).openapi())


@schema.parametrize()
@settings(max_examples=25, deadline=5000, suppress_health_check=list(HealthCheck))
def test_every_response_matches_the_schema(case: schemathesis.Case, app: FastAPI) -> None:
    case.call_and_validate(
        app=app, checks=[not_a_server_error, response_schema_conformance, status_code_conformance]
    )
