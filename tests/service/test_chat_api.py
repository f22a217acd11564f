"""POST /v1/chat: the last user message searched in the context of the earlier ones, in process with a
fake encoder (the rules themselves: tests/index/test_followups.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citeqa.settings import Settings
from citeqa.wiring import Resources
from index.text import question_terms
from service.app import create_app
from tests.conftest import make_document
from tests.fakes import FakeEncoder

ARTICLES = [
    ("手机销量下滑", "第三季度小米智能手机销量约为1180万部，华为智能手机销量约为2880万部。", "企业情报"),
    ("九章问世", "九章量子计算原型机构建了76个光子，比超级计算机快一百万亿倍。", "技术情报"),
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    # allowed_hosts: the Host of TestClient's requests.
    settings = Settings(
        data_dir=tmp_path / "index", chunk_size=100, chunk_overlap=10, allowed_hosts=["testserver"]
    )
    resources = Resources.from_encoder(settings, FakeEncoder())
    resources.collection().indexer.add(
        [make_document(title, text, section) for title, text, section in ARTICLES]
    )
    with TestClient(create_app(settings, resources)) as test_client:
        yield test_client
    resources.close()


def _user(content: str) -> dict:
    return {"role": "user", "content": content}


def test_a_follow_up_is_searched_as_the_rewritten_question(client: TestClient) -> None:
    messages = [_user("小米第三季度智能手机销量是多少？"), _user("那华为呢？")]
    response = client.post("/v1/chat", json={"messages": messages, "top_k": 2})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"query", "rewritten", "terms", "result"}
    assert body["query"] == "华为第三季度智能手机销量是多少？"
    assert body["rewritten"] is True
    assert body["terms"] == question_terms("华为第三季度智能手机销量是多少？")
    searched = client.post("/v1/search", json={"question": body["query"], "top_k": 2}).json()
    assert body["result"]["question"] == searched["question"]
    assert body["result"]["passages"] == searched["passages"]
    assert body["result"]["passages"][0]["citation"]["title"] == "手机销量下滑"


def test_a_first_question_is_searched_as_asked(client: TestClient) -> None:
    body = client.post("/v1/chat", json={"messages": [_user("  九章有多少个光子？ ")]}).json()
    assert (body["query"], body["rewritten"]) == ("九章有多少个光子？", False)
    assert body["result"]["passages"][0]["citation"]["title"] == "九章问世"


def test_assistant_messages_do_not_change_the_query(client: TestClient) -> None:
    with_assistant = [
        _user("小米第三季度智能手机销量是多少？"),
        {"role": "assistant", "content": "九章量子计算原型机构建了76个光子。"},
        _user("那华为呢？"),
    ]
    body = client.post("/v1/chat", json={"messages": with_assistant}).json()
    assert body["query"] == "华为第三季度智能手机销量是多少？"


def test_chat_filters_limit_the_search_to_a_section(client: TestClient) -> None:
    body = client.post(
        "/v1/chat", json={"messages": [_user("销量是多少？")], "filters": {"sections": ["技术情报"]}}
    ).json()
    assert [p["citation"]["section"] for p in body["result"]["passages"]] == ["技术情报"]


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({}, "body.messages", "Field required"),
        ({"messages": []}, "body.messages", "at least 1 item"),
        ({"messages": [_user("华为")] * 51}, "body.messages", "at most 50 items"),
        ({"messages": [{"role": "user", "content": ""}]}, "body.messages.0.content", "at least 1 character"),
        ({"messages": [{"role": "user", "content": "  \n"}]}, "body.messages.0.content", "is blank"),
        ({"messages": [_user("华" * 2001)]}, "body.messages.0.content", "at most 2000 characters"),
        (
            {"messages": [{"role": "system", "content": "hi"}]},
            "body.messages.0.role",
            "'user' or 'assistant'",
        ),
        (
            {"messages": [_user("华为"), {"role": "assistant", "content": "ok"}]},
            "body",
            "the last message must come from the user",
        ),
        ({"messages": [_user("华为")], "top_k": 0}, "body.top_k", "greater than or equal to 1"),
        ({"messages": [_user("华为")], "top_k": 51}, "body.top_k", "less than or equal to 50"),
    ],
)
def test_invalid_chat_requests_get_a_422_that_names_the_problem(
    client: TestClient, body: dict, field: str, says: str
) -> None:
    response = client.post("/v1/chat", json=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["error"] == "ValidationError"
    assert payload["details"][0]["field"] == field
    assert says in payload["message"]


def test_openapi_documents_the_chat_route_with_a_follow_up_example(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/v1/chat" in schema["paths"]
    example = schema["components"]["schemas"]["ChatRequest"]["examples"][0]
    assert example["messages"][-1] == {"role": "user", "content": "那华为呢？"}
