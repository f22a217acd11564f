"""The terminal chat, driven by piped lines over a small index embedded with the fake encoder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rich.console import Console

from index.ingest import Indexer
from index.search import Searcher
from index.store import IndexStore
from service.terminal_chat import run_terminal_chat
from tests.conftest import make_document
from tests.fakes import FakeEncoder

ARTICLES = [
    ("手机销量下滑", "第三季度小米智能手机销量约为1180万部，华为智能手机销量约为2880万部。", "企业情报", 58),
    ("华为与学界握手", "那华为呢？华为公司与高校进行科研合作，推动半导体新技术导入。", "产业环境", 4),
    ("九章问世", "九章量子计算原型机构建了76个光子，比超级计算机快一百万亿倍。", "技术情报", 25),
]


@pytest.fixture
def searcher(store: IndexStore, indexer: Indexer, fake_encoder: FakeEncoder) -> Searcher:
    indexer.add([make_document(title, text, section, page) for title, text, section, page in ARTICLES])
    return Searcher(store, fake_encoder)


def _chat(searcher: Searcher, lines: list[str], sections: list[str] | None = None, top_k: int = 1) -> str:
    console = Console(record=True, width=200, color_system=None)
    run_terminal_chat(searcher, sections or [], console, input_lines=iter(lines), top_k=top_k)
    return console.export_text()


def _answers(transcript: str) -> list[list[str]]:
    """The citation lines printed after each question, question by question."""
    blocks = transcript.split("› ")[1:]
    return [[line for line in block.splitlines() if line.startswith("[")] for block in blocks]


def test_each_passage_is_printed_with_a_numbered_citation_and_its_text(searcher: Searcher) -> None:
    transcript = _chat(searcher, ["九章有多少个光子？"], top_k=2)
    assert "› 九章有多少个光子？" in transcript
    citations = _answers(transcript)[0]
    assert citations[0].startswith("[1] 《九章问世》, 技术情报, p. 25  score ")
    assert citations[1].startswith("[2] 《")
    assert "    九章量子计算原型机构建了76个光子，比超级计算机快一百万亿倍。" in transcript
    assert "2 passages in " in transcript


def test_a_follow_up_is_searched_in_the_context_of_the_question_before(searcher: Searcher) -> None:
    transcript = _chat(searcher, ["小米第三季度智能手机销量是多少？", "那华为呢？"])
    assert "searched as: 华为第三季度智能手机销量是多少？" in transcript
    first, follow_up = _answers(transcript)
    assert first[0].startswith("[1] 《手机销量下滑》, 企业情报, p. 58  score ")
    assert follow_up[0].startswith("[1] 《手机销量下滑》, 企业情报, p. 58  score ")


def test_clear_forgets_the_conversation(searcher: Searcher) -> None:
    transcript = _chat(searcher, ["小米第三季度智能手机销量是多少？", "/clear", "那华为呢？"])
    assert "Conversation cleared" in transcript
    assert "searched as" not in transcript
    # Alone, the follow-up matches the article that happens to contain its words.
    assert _answers(transcript)[2][0].startswith("[1] 《华为与学界握手》, 产业环境, p. 4")


def test_sections_limit_every_search(searcher: Searcher) -> None:
    transcript = _chat(searcher, ["华为智能手机销量"], sections=["技术情报"], top_k=3)
    assert "CiteQA chat in 技术情报" in transcript
    assert [line.split(", ")[1] for line in _answers(transcript)[0]] == ["技术情报"]


def test_help_lists_the_commands_and_unknown_commands_point_to_it(searcher: Searcher) -> None:
    transcript = _chat(searcher, ["/help", "/nonsense"])
    for command in ("/clear", "/help", "/quit"):
        assert command in transcript
    assert "Unknown command '/nonsense'; /help lists the commands." in transcript


def test_quit_stops_reading_input(searcher: Searcher) -> None:
    lines: Iterator[str] = iter(["/quit", "九章有多少个光子？"])
    console = Console(record=True, width=200, color_system=None)
    run_terminal_chat(searcher, [], console, input_lines=lines)
    assert next(lines) == "九章有多少个光子？"
    assert "九章问世" not in console.export_text()


def test_an_empty_index_says_how_to_fill_it(store: IndexStore, fake_encoder: FakeEncoder) -> None:
    transcript = _chat(Searcher(store, fake_encoder), ["九章有多少个光子？"])
    assert "No passages found. Is the index empty? Add articles with `citeqa ingest PATH`." in transcript
