"""QueryCache: a repeated question skips the model and gets the very same vector; the least recent
question goes first; vectors are kept per model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from embeddings.cache import QueryCache
from tests.fakes import FakeEncoder


class RecordingEncoder(FakeEncoder):
    def __init__(self, name: str = "fake-bigram-64") -> None:
        super().__init__(name=name)
        self.asked: list[list[str]] = []

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.asked.append(list(texts))
        return super().encode_queries(texts)


def test_a_repeated_question_gets_the_same_vector_without_the_model() -> None:
    model = RecordingEncoder()
    cache = QueryCache(model, size=8)
    first = cache.encode_queries(["5G基站有多少？"])
    again = cache.encode_queries(["5G基站有多少？"])
    np.testing.assert_array_equal(first, again)
    assert model.asked == [["5G基站有多少？"]]
    assert (cache.hits, cache.misses) == (1, 1)


def test_only_the_questions_not_seen_are_encoded_in_one_call_in_the_callers_order() -> None:
    model = RecordingEncoder()
    cache = QueryCache(model, size=8)
    cache.encode_queries(["b"])
    vectors = cache.encode_queries(["a", "b", "c", "a"])
    assert model.asked == [["b"], ["a", "c"]]
    np.testing.assert_array_equal(vectors, FakeEncoder().encode_queries(["a", "b", "c", "a"]))


def test_the_least_recently_asked_question_is_evicted_first() -> None:
    model = RecordingEncoder()
    cache = QueryCache(model, size=2)
    cache.encode_queries(["one"])
    cache.encode_queries(["two"])
    cache.encode_queries(["one"])  # now "two" is the least recent
    cache.encode_queries(["three"])
    assert len(cache) == 2
    model.asked.clear()
    cache.encode_queries(["one"])
    cache.encode_queries(["three"])
    assert model.asked == []
    cache.encode_queries(["two"])
    assert model.asked == [["two"]]


def test_vectors_are_kept_per_model_name() -> None:
    # One cache whose wrapped encoder changes model (as if re-pointed): the other model's vectors are
    # never served for the same text.
    model = RecordingEncoder(name="model-a")
    cache = QueryCache(model, size=8)
    cache.encode_queries(["same text"])
    model._name = "model-b"
    cache.encode_queries(["same text"])
    assert model.asked == [["same text"], ["same text"]]
    assert len(cache) == 2


def test_a_caller_cannot_change_the_cached_vector() -> None:
    cache = QueryCache(RecordingEncoder(), size=8)
    vectors = cache.encode_queries(["question"])
    vectors[0, :] = 0
    np.testing.assert_array_equal(
        cache.encode_queries(["question"]), FakeEncoder().encode_queries(["question"])
    )


def test_passages_are_never_cached_and_empty_input_gives_no_rows() -> None:
    model = RecordingEncoder()
    cache = QueryCache(model, size=8)
    cache.encode_passages(["p"])
    cache.encode_passages(["p"])
    assert model.passages_encoded == 2 and len(cache) == 0
    assert cache.encode_queries([]).shape == (0, model.dimension)
    assert (cache.name, cache.dimension) == (model.name, model.dimension)


def test_a_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="size must be at least 1"):
        QueryCache(FakeEncoder(), size=0)
