"""Eight clients search while documents are uploaded and deleted: no error, and never a deleted document.

Over a real uvicorn server (threads, keep-alive connections), with the fake encoder so that the writes
are many and fast."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from citeqa.wiring import Resources
from service.app import create_app
from tests.conftest import fake_settings, serving
from tests.fakes import FakeEncoder
from tests.service.uploads import upload

STABLE = {"title": "晶圆代工吃紧", "text": "晶圆代工产能紧张，手机芯片供不应求。", "doc_id": "stable"}
CHURNING = {
    "title": "晶圆产能再度吃紧",
    "text": "晶圆代工产能依然紧张，芯片交付周期拉长。",
    "doc_id": "churning",
}
QUESTION = {"question": "晶圆代工产能紧张吗？", "top_k": 5}
CLIENTS = 8
ROUNDS = 12


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    settings = fake_settings(tmp_path / "index")
    resources = Resources.from_encoder(settings, FakeEncoder())
    try:
        with serving(create_app(settings, resources)) as served:
            yield served
    finally:
        resources.close()


def _files(article: dict) -> list:
    return [("files", ("a.jsonl", json.dumps(article, ensure_ascii=False).encode(), "text/plain"))]


def test_searches_during_uploads_and_deletes_never_fail_nor_return_a_deleted_document(url: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as http:
        assert upload(http, _files(STABLE))["status"] == "done"
    # Periods in which `churning` is deleted and not yet uploaded again, by the monotonic clock.
    absent: list[tuple[float, float]] = []
    failures: list[str] = []
    searches: list[tuple[float, float, set[str]]] = []
    writing = threading.Event()
    writing.set()

    def write() -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            for _ in range(ROUNDS):
                job = upload(http, _files(CHURNING))
                if job["status"] != "done":
                    failures.append(f"upload: {job}")
                deleted = http.delete("/v1/documents/churning")
                gone = time.monotonic()
                if deleted.status_code != 200:
                    failures.append(f"delete: {deleted.status_code} {deleted.text}")
                time.sleep(0.2)  # long enough for searches to begin and end while it is gone
                absent.append((gone, time.monotonic()))
        writing.clear()

    def search() -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            while writing.is_set():
                started = time.monotonic()
                response = http.post("/v1/search", json=QUESTION)
                if response.status_code != 200:
                    failures.append(f"search: {response.status_code} {response.text}")
                    continue
                found = {p["citation"]["doc_id"] for p in response.json()["passages"]}
                searches.append((started, time.monotonic(), found))

    threads = [threading.Thread(target=write)] + [threading.Thread(target=search) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert failures == []
    assert len(searches) >= 4 * CLIENTS
    assert all("stable" in found for _, _, found in searches)
    # A search that began after a delete had answered, and ended before the next upload, never saw it.
    during_absence = [
        found for began, ended, found in searches for gone, back in absent if gone <= began and ended <= back
    ]
    assert during_absence and all("churning" not in found for found in during_absence)
    assert any("churning" in found for _, _, found in searches)  # the test saw both states
