"""Collections with CITEQA_BACKEND=milvus: named indexes in one Milvus server, each its own Milvus
collections, listed, created and deleted by their name's prefix. The server is shared by the session's
tests, so each test uses names of its own and checks only those."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from citeqa.collections import DEFAULT_COLLECTION, Collections
from citeqa.errors import CollectionExists, CollectionNotFound, InvalidCollectionName
from citeqa.settings import Settings
from tests.conftest import fake_settings, make_document
from tests.fakes import FakeEncoder

pytestmark = [pytest.mark.server, pytest.mark.milvus]


@pytest.fixture
def settings(milvus_uri: str, tmp_path: Path) -> Settings:
    return fake_settings(tmp_path / "data", backend="milvus", milvus_uri=milvus_uri)


@pytest.fixture
def collections(settings: Settings) -> Iterator[Collections]:
    opened = Collections(settings, FakeEncoder(), None)
    yield opened
    opened.close()


def _name(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:8]}"


def test_milvus_collections_are_independent_and_listed_by_name(collections: Collections) -> None:
    reports_name, notes_name = _name("reports"), _name("notes_x")
    reports = collections.create(reports_name)
    reports.indexer.add([make_document("晶圆代工吃紧", "晶圆代工产能紧张，手机芯片供不应求。")])
    notes = collections.create(notes_name)

    names = collections.names()
    assert names[0] == DEFAULT_COLLECTION
    assert {reports_name, notes_name} <= set(names)
    assert names[1:] == sorted(names[1:])
    assert reports.store.counts() == (1, 1)
    assert notes.store.counts() == (0, 0)
    assert notes.searcher.search("晶圆代工产能").passages == []
    assert reports.searcher.search("晶圆代工产能").passages[0].citation.title == "晶圆代工吃紧"
    with pytest.raises(CollectionExists):
        collections.create(notes_name)
    collections.delete(reports_name)
    collections.delete(notes_name)


def test_milvus_collections_persist_across_processes_and_are_deleted_whole(settings: Settings) -> None:
    name = _name("scratch")
    first = Collections(settings, FakeEncoder(), None)
    first.create(name).indexer.add([make_document("云服务", "云服务市场规模持续扩大。")])
    first.close()

    second = Collections(settings, FakeEncoder(), None)
    try:
        assert name in second.names()
        assert second.get(name).store.counts() == (1, 1)
        second.delete(name)
        assert name not in second.names()
        with pytest.raises(CollectionNotFound, match="Create it first"):
            second.get(name)
        with pytest.raises(InvalidCollectionName, match="default collection cannot be deleted"):
            second.delete(DEFAULT_COLLECTION)
    finally:
        second.close()
