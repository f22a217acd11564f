"""The Milvus backend's row cache (index.milvus.rows): rows read once by id, kept within a bound."""

from __future__ import annotations

import pytest

from index.milvus.rows import Row, RowCache


class Source:
    """Rows of ids 0-99 (`value` ten times the id), counting the ids each fetch asks for."""

    def __init__(self) -> None:
        self.asked: list[list[int]] = []

    def fetch(self, ids: list[int]) -> list[Row]:
        self.asked.append(ids)
        return [{"id": i, "value": 10 * i} for i in ids if i < 100]


def test_only_the_rows_not_kept_are_fetched_and_in_one_call() -> None:
    cache, source = RowCache(10), Source()
    assert cache.get("c", [1, 2, 3], source.fetch)[2] == {"id": 2, "value": 20}
    found = cache.get("c", [3, 4, 1, 4], source.fetch)
    assert sorted(found) == [1, 3, 4]
    assert source.asked == [[1, 2, 3], [4]]


def test_rows_of_two_collections_with_the_same_id_are_kept_apart() -> None:
    cache = RowCache(10)
    cache.get("a", [1], lambda ids: [{"id": 1, "value": "a"}])
    assert cache.get("b", [1], lambda ids: [{"id": 1, "value": "b"}])[1]["value"] == "b"
    assert cache.get("a", [1], lambda ids: [])[1]["value"] == "a"


def test_ids_the_source_lacks_are_left_out_and_asked_again_next_time() -> None:
    cache, source = RowCache(10), Source()
    assert cache.get("c", [5, 500], source.fetch).keys() == {5}
    cache.get("c", [500], source.fetch)
    assert source.asked == [[5, 500], [500]]


def test_the_least_recently_used_rows_are_forgotten_past_the_bound() -> None:
    cache, source = RowCache(3), Source()
    cache.get("c", [1, 2, 3], source.fetch)
    cache.get("c", [1], source.fetch)  # 1 used again: 2 is now the oldest
    cache.get("c", [4], source.fetch)
    assert len(cache) == 3
    cache.get("c", [1, 3, 4, 2], source.fetch)
    assert source.asked[-1] == [2]


def test_a_cache_holds_at_least_one_row() -> None:
    with pytest.raises(ValueError, match="at least one row"):
        RowCache(0)
