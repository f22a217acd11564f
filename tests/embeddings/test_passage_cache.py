"""PassageCache and VectorFile: a passage embedded once is read back, not embedded again, across processes;
vectors are kept per model and kind; the file stays within its bound; a kill never corrupts it, and an
unreadable file costs a warning, never the ingest."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embeddings.passage_cache import PassageCache, VectorFile, vector_key
from tests.conftest import REPO_ROOT
from tests.fakes import FakeEncoder


class CountingEncoder(FakeEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[list[str]] = []

    def encode_passages(self, texts, on_progress=None):  # type: ignore[no-untyped-def]
        self.asked.append(list(texts))
        return super().encode_passages(texts, on_progress)


def cache_at(path: Path, model: str = "fake", max_mb: float = 16) -> tuple[PassageCache, CountingEncoder]:
    encoder = CountingEncoder()
    return PassageCache(encoder, VectorFile(path, max_mb), model), encoder


def test_a_passage_embedded_once_is_read_back_without_the_model(tmp_path: Path) -> None:
    cache, encoder = cache_at(tmp_path / "cache.sqlite3")
    first = cache.encode_passages(["5G基站超过70万个", "量子计算"])
    again = cache.encode_passages(["量子计算", "5G基站超过70万个"])

    np.testing.assert_array_equal(again, first[::-1])
    assert encoder.asked == [["5G基站超过70万个", "量子计算"]]
    assert (cache.embedded, cache.reused) == (2, 2)


def test_only_unseen_texts_reach_the_model_each_once_and_vectors_come_back_in_the_callers_order(
    tmp_path: Path,
) -> None:
    cache, encoder = cache_at(tmp_path / "cache.sqlite3")
    cache.encode_passages(["b"])
    done: list[int] = []

    vectors = cache.encode_passages(["a", "b", "c", "a"], on_progress=done.append)

    assert encoder.asked == [["b"], ["a", "c"]]
    assert sum(done) == 4  # the stored one and the repeated one count as done too
    np.testing.assert_array_equal(vectors, FakeEncoder().encode_passages(["a", "b", "c", "a"]))


def test_vectors_persist_for_the_next_process(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    first, _ = cache_at(path)
    vectors = first.encode_passages(["一段文字", "another passage"])
    first.vectors.close()

    second, encoder = cache_at(path)

    np.testing.assert_array_equal(second.encode_passages(["一段文字", "another passage"]), vectors)
    assert encoder.asked == []


def test_vectors_are_kept_per_model_and_kind(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    fp32, _ = cache_at(path, model="e5")
    fp32.encode_passages(["same text"])
    int8, encoder = cache_at(path, model="e5+int8")

    int8.encode_passages(["same text"])

    assert encoder.asked == [["same text"]]
    assert vector_key("e5", "passage", "x") != vector_key("e5", "passage-sentence", "x")


def test_the_least_recently_used_vectors_go_first_past_the_size_bound(tmp_path: Path) -> None:
    # 64 float32 values + overhead: about 350 bytes a vector, so 0.01 MB holds about 30.
    cache, encoder = cache_at(tmp_path / "cache.sqlite3", max_mb=0.01)
    cache.encode_passages(["kept"])
    for n in range(100):
        cache.encode_passages([f"filler {n}"])
        cache.encode_passages(["kept"])  # used again each time: never the least recent

    assert len(cache.vectors) <= 0.01 * 2**20 // (64 * 4 + 96)
    encoder.asked.clear()
    cache.encode_passages(["kept", "filler 99", "filler 0"])
    assert encoder.asked == [["filler 0"]]


def test_sentences_in_context_are_cached_with_their_passage(tmp_path: Path) -> None:
    cache, encoder = cache_at(tmp_path / "cache.sqlite3")
    texts, spans = ["第一句话很长。第二句话也长。", "another one. and more."], [[(0, 7), (7, 14)], [(0, 12)]]
    vectors, sentences = cache.encode_passage_sentences(texts, spans)
    calls = encoder.passages_encoded

    again, again_sentences = cache.encode_passage_sentences(texts, spans)
    _, other_spans = cache.encode_passage_sentences(texts[:1], [[(0, 7)]])

    assert encoder.passages_encoded == calls
    np.testing.assert_array_equal(again, vectors)
    for row, expected in zip(again_sentences, sentences, strict=True):
        np.testing.assert_array_equal(row, expected)
    np.testing.assert_array_equal(other_spans[0], sentences[0][:1])
    # A new span of a known passage needs that passage's forward pass again.
    cache.encode_passage_sentences(texts[:1], [[(2, 7)]])
    assert encoder.passages_encoded == calls + 1


def test_an_unreadable_file_is_set_aside_with_a_warning_and_a_new_one_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.sqlite3"
    path.write_bytes(b"not a database, whatever its name says" * 100)
    cache, encoder = cache_at(path)

    with caplog.at_level(logging.WARNING, logger="embeddings.passage_cache"):
        cache.encode_passages(["text"])
        cache.encode_passages(["text"])

    assert "cannot be read" in caplog.text
    assert (tmp_path / "cache.sqlite3.corrupt").is_file()
    assert encoder.asked == [["text"]]


def test_a_cache_that_cannot_be_written_leaves_ingest_to_the_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the cache's folder should be")
    cache, encoder = cache_at(blocker / "cache.sqlite3")

    with caplog.at_level(logging.WARNING, logger="embeddings.passage_cache"):
        first = cache.encode_passages(["text"])
        second = cache.encode_passages(["text"])

    np.testing.assert_array_equal(first, second)
    assert encoder.asked == [["text"], ["text"]]
    assert not cache.vectors.usable
    assert "going on without it" in caplog.text


def test_a_file_another_process_holds_is_skipped_for_that_call_and_used_again_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.sqlite3"
    cache = PassageCache(CountingEncoder(), VectorFile(path, 16, busy_s=0.1), "fake")
    cache.encode_passages(["first"])
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing

    with caplog.at_level(logging.WARNING, logger="embeddings.passage_cache"):
        cache.encode_passages(["second"])
    other.execute("ROLLBACK")
    other.close()
    cache.encode_passages(["third"])

    assert "was busy" in caplog.text
    assert cache.vectors.usable
    assert set(
        cache.vectors.get([vector_key("fake", "passage", t) for t in ("first", "second", "third")])
    ) == {
        vector_key("fake", "passage", "first"),
        vector_key("fake", "passage", "third"),
    }


_WRITER = """
import sys
import numpy as np
from embeddings.passage_cache import VectorFile
cache = VectorFile(sys.argv[1], 64)
n = 0
while True:
    batch = {f"{n}-{i}".encode().ljust(32, b"."): np.full(384, n + i, np.float32) for i in range(200)}
    cache.put(batch)
    n += 200
    print(n, flush=True)
"""


def test_a_writer_killed_mid_write_leaves_a_readable_file_with_whole_batches(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    for _ in range(5):  # a few batches committed, then killed while writing more
        writer.stdout.readline()
    time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()

    cache = VectorFile(path, 64)
    stored = len(cache)
    assert cache.usable and stored >= 1000
    assert stored % 200 == 0  # whole batches only
    found = cache.get([f"{n}-{i}".encode().ljust(32, b".") for n in range(0, stored, 200) for i in (0, 199)])
    assert len(found) == 2 * stored // 200
    for key, vector in found.items():
        n, i = (int(part) for part in key.rstrip(b".").decode().split("-"))
        np.testing.assert_array_equal(vector, np.full(384, n + i, np.float32))
