"""API keys: stored hashed, checked on every /v1 call once one exists, by scope and by collection."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from citeqa.errors import KeyManagementError
from citeqa.settings import Settings, get_settings
from citeqa.wiring import Resources
from service import cli
from service.app import create_app
from service.cli import app as cli_app
from service.keys import KeyStore
from tests.conftest import fake_settings
from tests.fakes import FakeEncoder
from tests.service.uploads import upload

ARTICLE = {"title": "晶圆代工吃紧", "text": "晶圆代工产能紧张，手机芯片供不应求。", "doc_id": "chips"}


def test_a_key_is_shown_once_and_stored_only_as_a_hash(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    stored, key = store.create("alice", "read")

    on_disk = (tmp_path / "keys.json").read_text()
    assert key.startswith("citeqa_") and len(key) > 40
    assert key not in on_disk
    assert stored.sha256 in on_disk
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    assert store.find(key) == stored
    assert store.find(key + "x") is None
    assert KeyStore(tmp_path / "keys.json").find(key) == stored


def test_revoked_keys_stop_working_and_names_are_unique(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    _, key = store.create("alice", "write", ["reports"])
    with pytest.raises(KeyManagementError, match="exists already"):
        store.create("alice", "read")
    KeyStore(tmp_path / "keys.json").revoke("alice")  # another process, e.g. the CLI
    assert store.find(key) is None
    with pytest.raises(KeyManagementError, match="No key named"):
        store.revoke("alice")


@pytest.mark.parametrize("name", ["", "a b", "../x", "x" * 65])
def test_a_key_name_that_cannot_be_used_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(KeyManagementError, match="cannot name a key"):
        KeyStore(tmp_path / "keys.json").create(name, "read")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fake_settings(tmp_path / "index")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    resources = Resources.from_encoder(settings, FakeEncoder())
    with TestClient(create_app(settings, resources)) as test_client:
        yield test_client
    resources.close()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _files() -> list:
    return [("files", ("a.jsonl", json.dumps(ARTICLE, ensure_ascii=False).encode(), "text/plain"))]


def _upload(client: TestClient, path: str, key: str):
    return client.post(path, files=_files(), headers=_bearer(key))


def test_without_keys_the_api_is_open(client: TestClient) -> None:
    assert client.post("/v1/search", json={"question": "芯片"}).status_code == 200
    assert client.get("/metrics").status_code == 200


def test_with_a_key_every_v1_call_needs_one(client: TestClient, settings: Settings) -> None:
    KeyStore(settings.keys_path).create("alice", "read")

    missing = client.post("/v1/search", json={"question": "芯片"})
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in missing.json()["message"]
    wrong = client.get("/v1/documents", headers=_bearer("citeqa_wrong"))
    assert (wrong.status_code, wrong.json()["error"]) == (401, "Unauthorized")
    assert client.get("/v1/collections").status_code == 401
    assert client.get("/metrics").status_code == 401
    # Liveness, readiness, the web tool and the API docs stay open.
    for path in ("/healthz", "/readyz", "/", "/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_each_scope_grants_what_the_lower_ones_do_and_no_more(client: TestClient, settings: Settings) -> None:
    keys = KeyStore(settings.keys_path)
    read, write, admin = (keys.create(scope, scope)[1] for scope in ("read", "write", "admin"))

    assert client.post("/v1/search", json={"question": "芯片"}, headers=_bearer(read)).status_code == 200
    assert client.get("/v1/documents", headers=_bearer(read)).status_code == 200
    refused = _upload(client, "/v1/documents", read)
    assert (refused.status_code, refused.json()["error"]) == (403, "Forbidden")
    assert "needs 'write'" in refused.json()["message"]

    assert upload(client, _files(), headers=_bearer(write))["status"] == "done"
    assert client.delete("/v1/documents/chips", headers=_bearer(write)).status_code == 200
    assert client.post("/v1/collections", json={"name": "notes"}, headers=_bearer(write)).status_code == 403
    assert client.get("/metrics", headers=_bearer(write)).status_code == 403

    assert client.post("/v1/collections", json={"name": "notes"}, headers=_bearer(admin)).status_code == 201
    assert client.get("/metrics", headers=_bearer(admin)).status_code == 200
    assert client.delete("/v1/collections/notes", headers=_bearer(admin)).status_code == 200


def test_a_key_for_some_collections_reaches_no_other(client: TestClient, settings: Settings) -> None:
    keys = KeyStore(settings.keys_path)
    admin = keys.create("root", "admin")[1]
    client.post("/v1/collections", json={"name": "reports"}, headers=_bearer(admin))
    reports = keys.create("analyst", "write", ["reports"])[1]

    assert (
        upload(client, _files(), "/v1/collections/reports/documents", headers=_bearer(reports))["status"]
        == "done"
    )
    assert _upload(client, "/v1/documents", reports).status_code == 403
    body = {"question": "晶圆代工", "collection": "reports"}
    assert client.post("/v1/search", json=body, headers=_bearer(reports)).status_code == 200
    other = client.post("/v1/search", json={"question": "晶圆代工"}, headers=_bearer(reports))
    assert other.status_code == 403 and "'default'" in other.json()["message"]
    listed = client.get("/v1/collections", headers=_bearer(reports)).json()["collections"]
    assert [c["name"] for c in listed] == ["reports"]


def test_the_cli_creates_lists_and_revokes_keys(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CITEQA_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        created = runner.invoke(cli_app, ["keys", "create", "--name", "ci", "--scope", "write", "--json"])
        assert created.exit_code == 0, created.output
        body = json.loads(created.output)
        assert body["name"] == "ci" and body["scope"] == "write" and body["collections"] == []
        assert KeyStore(tmp_path / "keys.json").find(body["key"]) is not None

        listed = runner.invoke(cli_app, ["keys", "list", "--json"])
        assert json.loads(listed.output)[0]["name"] == "ci"
        assert body["key"] not in listed.output and "sha256" not in listed.output

        assert runner.invoke(cli_app, ["keys", "revoke", "ci"]).exit_code == 0
        assert KeyStore(tmp_path / "keys.json").keys() == []
    finally:
        get_settings.cache_clear()


def test_serve_refuses_a_public_address_without_a_key(tmp_path: Path, monkeypatch) -> None:
    def load(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model was loaded although serving must be refused")

    monkeypatch.setattr(cli.Resources, "load", load)
    monkeypatch.setenv("CITEQA_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["serve", "--host", "0.0.0.0"])
        assert isinstance(result.exception, cli.CliError)
        assert "citeqa keys create" in result.exception.message
        assert "CITEQA_ALLOW_ANONYMOUS=true" in result.exception.message
    finally:
        get_settings.cache_clear()
