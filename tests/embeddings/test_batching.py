"""QueryBatcher: concurrent questions share forward passes, each caller gets its own rows, errors reach
every caller of the batch, a lone question waits at most the configured time, and close stops cleanly."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from embeddings.batching import QueryBatcher
from tests.fakes import FakeEncoder


class CountingEncoder(FakeEncoder):
    """FakeEncoder that counts forward passes, takes `pass_s` for each, and can be made to fail."""

    def __init__(self, pass_s: float = 0.0) -> None:
        super().__init__()
        self.pass_s = pass_s
        self.batches: list[list[str]] = []
        self.error: Exception | None = None

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        time.sleep(self.pass_s)
        if self.error is not None:
            raise self.error
        return super().encode_queries(texts)


QUESTIONS = [f"第{i}个问题：工信部开展了多少次调研？" for i in range(16)]


@pytest.fixture
def model() -> CountingEncoder:
    return CountingEncoder(pass_s=0.05)


def ask_together(batcher: QueryBatcher, questions: list[str]) -> list[np.ndarray]:
    """Each question from its own thread, all released at once."""
    start = threading.Barrier(len(questions))

    def ask(question: str) -> np.ndarray:
        start.wait()
        return batcher.encode_queries([question])

    with ThreadPoolExecutor(len(questions)) as pool:
        return list(pool.map(ask, questions))


def test_concurrent_callers_get_their_own_vectors_from_fewer_forward_passes(model: CountingEncoder) -> None:
    batcher = QueryBatcher(model, max_wait_ms=20, max_batch=32)
    try:
        answers = ask_together(batcher, QUESTIONS)
    finally:
        batcher.close()
    expected = FakeEncoder().encode_queries(QUESTIONS)
    for row, answer in enumerate(answers):
        assert answer.shape == (1, model.dimension)
        np.testing.assert_array_equal(answer[0], expected[row])
    # 16 questions within 20 ms of each other: one pass, or two if a thread was slow to start.
    assert len(model.batches) <= 2
    assert sorted(text for batch in model.batches for text in batch) == sorted(QUESTIONS)


def test_a_caller_with_several_texts_gets_them_in_order(model: CountingEncoder) -> None:
    batcher = QueryBatcher(model, max_wait_ms=5, max_batch=32)
    try:
        vectors = batcher.encode_queries(QUESTIONS[:3])
    finally:
        batcher.close()
    np.testing.assert_array_equal(vectors, FakeEncoder().encode_queries(QUESTIONS[:3]))


def test_no_forward_pass_holds_more_than_the_batch_size(model: CountingEncoder) -> None:
    batcher = QueryBatcher(model, max_wait_ms=20, max_batch=4)
    try:
        answers = ask_together(batcher, QUESTIONS)
    finally:
        batcher.close()
    assert all(len(batch) <= 4 for batch in model.batches)
    assert len(model.batches) >= 4
    expected = FakeEncoder().encode_queries(QUESTIONS)
    for row, answer in enumerate(answers):
        np.testing.assert_array_equal(answer[0], expected[row])


def test_a_lone_question_waits_at_most_the_configured_time() -> None:
    model = CountingEncoder()
    batcher = QueryBatcher(model, max_wait_ms=30, max_batch=32)
    try:
        batcher.encode_queries(["warm-up"])  # the worker thread is running
        started = time.perf_counter()
        batcher.encode_queries(QUESTIONS[:1])
        waited = time.perf_counter() - started
    finally:
        batcher.close()
    # 30 ms of waiting for company, plus scheduling; a busy 2-core machine may add tens of ms.
    assert 0.025 <= waited < 0.030 + 0.1
    assert model.batches == [["warm-up"], QUESTIONS[:1]]


def test_an_encoder_error_reaches_every_caller_of_the_batch(model: CountingEncoder) -> None:
    model.error = RuntimeError("out of memory in the forward pass")
    batcher = QueryBatcher(model, max_wait_ms=20, max_batch=32)
    start = threading.Barrier(8)

    def ask(question: str) -> Exception | None:
        start.wait()
        try:
            batcher.encode_queries([question])
        except RuntimeError as exc:
            return exc
        return None

    try:
        with ThreadPoolExecutor(8) as pool:
            raised = list(pool.map(ask, QUESTIONS[:8]))
        # The worker survives the error: the next question is answered.
        model.error = None
        assert batcher.encode_queries(["again"]).shape == (1, model.dimension)
    finally:
        batcher.close()
    assert all(isinstance(exc, RuntimeError) and "out of memory" in str(exc) for exc in raised)


def test_close_answers_the_queued_questions_then_refuses_new_ones(model: CountingEncoder) -> None:
    batcher = QueryBatcher(model, max_wait_ms=5, max_batch=2)
    with ThreadPoolExecutor(6) as pool:
        asked = [pool.submit(batcher.encode_queries, [question]) for question in QUESTIONS[:6]]
        time.sleep(0.02)  # queued behind the first pass
        batcher.close()
        answers = [future.result(timeout=10) for future in asked]
    assert all(answer.shape == (1, model.dimension) for answer in answers)
    with pytest.raises(RuntimeError, match="closed"):
        batcher.encode_queries(["too late"])
    batcher.close()  # a second close does nothing


def test_passages_and_the_model_identity_go_to_the_wrapped_encoder(model: CountingEncoder) -> None:
    batcher = QueryBatcher(model, max_wait_ms=5, max_batch=32)
    try:
        vectors = batcher.encode_passages(QUESTIONS[:2])
        assert (batcher.name, batcher.dimension) == (model.name, model.dimension)
        assert batcher.encode_queries([]).shape == (0, model.dimension)
    finally:
        batcher.close()
    np.testing.assert_array_equal(vectors, FakeEncoder().encode_passages(QUESTIONS[:2]))
    # Only the empty list of questions reached encode_queries (answered at once, never queued).
    assert model.batches == [[]] and model.passages_encoded == 2


@pytest.mark.parametrize(("wait", "size", "match"), [(-1, 8, "max_wait_ms"), (2, 0, "max_batch")])
def test_bad_arguments_are_refused_naming_them(wait: float, size: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        QueryBatcher(FakeEncoder(), max_wait_ms=wait, max_batch=size)


def test_a_single_string_is_refused() -> None:
    batcher = QueryBatcher(FakeEncoder(), max_wait_ms=1, max_batch=8)
    try:
        with pytest.raises(TypeError, match="sequence of strings"):
            batcher.encode_queries("one question")  # type: ignore[arg-type]
    finally:
        batcher.close()


# --- the real model -----------------------------------------------------------------------------------

MIXED = [
    "近一个月里，工信部系统围绕5G等前沿科技行业开展了多少次调研？",
    "Which technical characteristics of 5G did the Zhongshan Securities chief economist highlight?",
    "九章",
    "How much faster than the fastest supercomputer is the Jiuzhang quantum prototype at Gaussian boson "
    "sampling, according to the report on China's quantum computing breakthrough?",
    "高通在天津开设了什么实验室？",
    "TWS earphones",
]


@pytest.mark.model
def test_a_batched_encoding_equals_the_questions_encoded_one_by_one(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Batched questions of different lengths are padded to the longest; the attention mask must keep the
    # padding out of each question's vector.
    from embeddings import EMBEDDED_MODEL, Encoder
    from tests.embeddings.test_embedded import shared_model_cache

    encoder = Encoder(EMBEDDED_MODEL, shared_model_cache(tmp_path_factory))
    encoder.load(show_progress=False)
    alone = np.vstack([encoder.encode_queries([question]) for question in MIXED])
    batcher = QueryBatcher(encoder, max_wait_ms=50, max_batch=32)
    try:
        together = np.vstack(ask_together(batcher, MIXED))
    finally:
        batcher.close()
    cosines = np.sum(alone * together, axis=1)
    assert cosines.min() >= 0.999, cosines
