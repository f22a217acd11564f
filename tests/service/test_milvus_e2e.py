"""End to end on Milvus: two `citeqa serve` processes pointed at one Milvus (a real `milvus-lite server`)
serve the same answers and see each other's writes, and neither keeps an index on disk."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from index.storage.documents import DATABASE_FILE
from tests.conftest import REPO_ROOT, citeqa_command, free_port, start_server, stop_server

pytestmark = [pytest.mark.server, pytest.mark.model, pytest.mark.milvus]

# Articles written for this test, one Markdown file each.
ARTICLES = {
    "chips.md": "# 晶圆代工吃紧\n\n晶圆代工产能持续紧张，手机芯片供不应求。分析师认为紧张局面可能延续到明年下半年。\n",
    "quantum.md": "# 量子计算原型机\n\n研究团队发布了新的量子计算原型机，在特定任务上的速度远超传统超级计算机。\n",
    "cloud.md": "# 云服务市场\n\n公有云服务收入同比增长四成，企业上云意愿明显增强，云安全投入随之增加。\n",
}
QUESTION = "手机芯片为什么供不应求"


@pytest.fixture
def milvus_env(milvus_uri: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CITEQA_BACKEND": "milvus",
        "CITEQA_MILVUS_URI": milvus_uri,
        "CITEQA_DATA_DIR": str(tmp_path / "ingest-data"),
    }


@pytest.fixture
def two_servers(milvus_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Both servers, each with a data folder and a port of its own, once the articles are ingested."""
    folder = tmp_path / "articles"
    folder.mkdir()
    for name, text in ARTICLES.items():
        (folder / name).write_text(text, encoding="utf-8")
    ingest = subprocess.run(
        citeqa_command("ingest", str(folder)), env=milvus_env, capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert ingest.returncode == 0, ingest.stderr
    processes, urls = [], []
    try:
        for name in ("a", "b"):
            port = free_port()
            env = {**milvus_env, "CITEQA_DATA_DIR": str(tmp_path / f"data-{name}"), "CITEQA_PORT": str(port)}
            processes.append(start_server([], env, tmp_path / f"server-{name}.log"))
            urls.append(f"http://127.0.0.1:{port}")
        yield urls[0], urls[1]
    finally:
        for process in processes:
            stop_server(process)


def _search(url: str, question: str) -> dict:
    response = httpx.post(f"{url}/v1/search", json={"question": question, "top_k": 3}, timeout=60)
    assert response.status_code == 200, response.text
    found = response.json()
    found.pop("took_ms")
    return found


def test_two_servers_sharing_one_milvus_answer_alike_and_see_each_other_s_writes(
    two_servers: tuple[str, str], tmp_path: Path
) -> None:
    a, b = two_servers
    first = _search(a, QUESTION)
    assert first == _search(b, QUESTION)
    top = first["passages"][0]["citation"]
    assert top["title"] == "晶圆代工吃紧"
    document = httpx.get(f"{b}/v1/documents/{top['doc_id']}", timeout=30).json()
    assert document["text"][top["char_start"] : top["char_end"]] == first["passages"][0]["text"]

    assert httpx.delete(f"{b}/v1/documents/{top['doc_id']}", timeout=60).status_code in (200, 204)
    listed = httpx.get(f"{a}/v1/documents", timeout=30).json()
    assert top["doc_id"] not in {item["doc_id"] for item in listed["documents"]}
    assert {p["citation"]["doc_id"] for p in _search(a, QUESTION)["passages"]} & {top["doc_id"]} == set()
    # Nothing of an index on either server's disk: everything is in Milvus.
    assert not [path for path in tmp_path.rglob(DATABASE_FILE)]
