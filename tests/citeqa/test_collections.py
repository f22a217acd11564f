"""Collections: named indexes in one data folder, each with its own files."""

from __future__ import annotations

from pathlib import Path

import pytest

from citeqa.collections import DEFAULT_COLLECTION, Collections, check_collection_name
from citeqa.errors import CollectionExists, CollectionNotFound, InvalidCollectionName
from tests.conftest import fake_settings, make_document
from tests.fakes import FakeEncoder


@pytest.fixture
def collections(tmp_path: Path):
    opened = Collections(fake_settings(tmp_path / "data"), FakeEncoder(), None)
    yield opened
    opened.close()


@pytest.mark.parametrize("name", ["default", "reports-2020", "a", "x_1", "9" * 64])
def test_names_of_letters_digits_dashes_and_underscores_are_accepted(name: str) -> None:
    assert check_collection_name(name) == name


@pytest.mark.parametrize("name", ["", "..", "../default", "a/b", "Reports", "-lead", "名字", "a" * 65, "a b"])
def test_names_that_could_leave_the_data_folder_or_surprise_are_refused(name: str) -> None:
    with pytest.raises(InvalidCollectionName, match="lower-case letters"):
        check_collection_name(name)


def test_the_default_collection_is_the_data_folder_itself(collections: Collections, tmp_path: Path) -> None:
    default = collections.get()
    assert default.name == DEFAULT_COLLECTION
    assert default.store.directory == tmp_path / "data"
    assert collections.names() == [DEFAULT_COLLECTION]


def test_collections_are_independent(collections: Collections) -> None:
    reports = collections.create("reports")
    reports.indexer.add([make_document("晶圆代工吃紧", "晶圆代工产能紧张，手机芯片供不应求。")])
    notes = collections.create("notes")

    assert collections.names() == ["default", "notes", "reports"]
    assert reports.store.counts()[0] == 1
    assert notes.store.counts() == (0, 0)
    assert collections.get().store.counts() == (0, 0)
    assert notes.searcher.search("晶圆代工产能").passages == []
    assert reports.searcher.search("晶圆代工产能").passages[0].citation.title == "晶圆代工吃紧"


def test_a_collection_must_be_created_before_it_is_used(collections: Collections) -> None:
    with pytest.raises(CollectionNotFound, match="Create it first"):
        collections.get("missing")
    collections.create("missing")
    with pytest.raises(CollectionExists):
        collections.create("missing")
    assert collections.get_or_create("missing").name == "missing"


def test_collections_persist_across_processes(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path / "data")
    first = Collections(settings, FakeEncoder(), None)
    first.create("reports").indexer.add([make_document("云服务", "云服务市场规模持续扩大。")])
    first.close()

    second = Collections(settings, FakeEncoder(), None)
    try:
        assert second.names() == ["default", "reports"]
        assert second.get("reports").store.counts()[0] == 1
    finally:
        second.close()


def test_deleting_a_collection_removes_its_files_and_nothing_else(
    collections: Collections, tmp_path: Path
) -> None:
    collections.get().indexer.add([make_document("云服务", "云服务市场规模持续扩大。")])
    folder = collections.create("scratch").store.directory
    collections.delete("scratch")

    assert not folder.exists()
    assert collections.names() == ["default"]
    assert collections.get().store.counts()[0] == 1
    with pytest.raises(CollectionNotFound):
        collections.get("scratch")
    with pytest.raises(InvalidCollectionName, match="default collection cannot be deleted"):
        collections.delete(DEFAULT_COLLECTION)
