"""The API docs pages work offline (every asset served by CiteQA itself), and every page is sent with the
headers that keep it from being framed, sniffed or made to run another site's scripts. In process with a
fake encoder; the pages in a real browser: test_web_browser.py."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citeqa.settings import Settings
from citeqa.wiring import Resources
from service.app import create_app
from tests.fakes import FakeEncoder

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "index", allowed_hosts=["testserver"])
    resources = Resources.from_encoder(settings, FakeEncoder())
    with TestClient(create_app(settings, resources)) as test_client:
        yield test_client
    resources.close()


def _urls(html: str) -> list[str]:
    """What the page loads: its src and href attributes, and URLs in its inline scripts."""
    return re.findall(r'(?:src|href)="([^"]*)"', html) + re.findall(r"url: '([^']*)'", html)


def _policy(header: str) -> dict[str, list[str]]:
    return {
        name: sources
        for name, *sources in (directive.split() for directive in header.split(";") if directive.strip())
    }


def _sha256(text: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_only_assets_that_citeqa_serves(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    urls = _urls(response.text)
    assert urls, response.text
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url} from another site"
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url


def test_the_swagger_ui_assets_are_its_script_and_stylesheet(client: TestClient) -> None:
    html = client.get("/docs").text
    [script] = [url for url in _urls(html) if url.endswith(".js")]
    [stylesheet] = [url for url in _urls(html) if url.endswith(".css")]
    assert "SwaggerUIBundle" in client.get(script).text
    assert client.get(script).headers["content-type"].startswith("text/javascript")
    assert client.get(stylesheet).headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    "path", ["/", "/docs", "/redoc", "/healthz", "/openapi.json", "/v1/documents/nothing"]
)
def test_every_response_carries_the_security_headers(client: TestClient, path: str) -> None:
    response = client.get(path)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, (path, name)
    policy = _policy(response.headers["content-security-policy"])
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in policy.get("script-src", []), path
    if path != "/redoc":  # ReDoc writes its styles as it renders: test_redoc_may_write_styles_and_no_script
        assert "'unsafe-inline'" not in policy.get("style-src", []), path


def test_the_chat_page_may_load_its_own_scripts_and_styles_and_nothing_inline(client: TestClient) -> None:
    response = client.get("/")
    assert response.headers["content-type"].startswith("text/html")
    policy = _policy(response.headers["content-security-policy"])
    assert policy.get("script-src", policy["default-src"]) == ["'self'"]
    assert policy.get("style-src", policy["default-src"]) == ["'self'"]
    assert (
        "<script>" not in response.text and "<style" not in response.text and " style=" not in response.text
    )


def test_swagger_ui_may_run_its_own_inline_script_and_no_other(client: TestClient) -> None:
    response = client.get("/docs")
    [script] = re.findall(r"<script>(.*?)</script>", response.text, flags=re.DOTALL)
    policy = _policy(response.headers["content-security-policy"])
    assert policy["script-src"] == ["'self'", _sha256(script)]
    assert "style-src" not in policy  # default-src: its stylesheet only


def test_redoc_may_write_styles_and_no_script(client: TestClient) -> None:
    response = client.get("/redoc")
    assert "<script>" not in response.text
    policy = _policy(response.headers["content-security-policy"])
    assert "script-src" not in policy  # default-src: its bundle only
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["worker-src"] == ["'self'", "blob:"]
