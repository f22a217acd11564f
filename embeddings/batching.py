"""Questions that arrive together, encoded in one forward pass.

On CPU a forward pass over 16 short questions costs far less than 16 passes over one: the weights are
read once and the matrix products are wider. Requests run in the server's thread pool, each asking for
its own question's vector; `QueryBatcher` puts them in a queue, and one worker thread encodes what has
gathered. While the model is busy the next batch gathers by itself; when it is idle, the worker waits
at most `max_wait_ms` after the first question for company, so a lone question is hardly delayed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from embeddings.protocol import WrappedEncoder

logger = logging.getLogger(__name__)


@dataclass
class _Request:
    texts: list[str]
    arrived: float = field(default_factory=time.monotonic)
    result: Future[np.ndarray] = field(default_factory=Future)


# Put in the queue by `close`: the worker encodes what came before it, then ends.
_STOP = None


class QueryBatcher:
    """A TextEncoder whose `encode_queries` calls from many threads share forward passes.

    Each caller gets exactly the rows of its own texts; if the model raises, every caller of that batch
    gets the exception. Passages go straight to the wrapped encoder (ingest batches them itself). Call
    `close` to stop the worker; questions asked after it are refused."""

    def __init__(self, encoder: WrappedEncoder, *, max_wait_ms: float, max_batch: int) -> None:
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be 0 or more, got {max_wait_ms}.")
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}.")
        self._encoder = encoder
        self._max_wait = max_wait_ms / 1000
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        # Taken from the queue while a batch was full: it opens the next batch.
        self._held: _Request | None = None
        self._closed = False
        # Orders `close` against callers: no request can be queued after the stop mark, where the worker
        # would never see it and its caller would wait for ever.
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._run, name="query-batcher", daemon=True)
        self._worker.start()

    @property
    def name(self) -> str:
        return self._encoder.name

    @property
    def dimension(self) -> int:
        return self._encoder.dimension

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for questions, shape (len(texts), dimension), encoded with other threads' questions."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings; wrap a single text in a list.")
        request = _Request(list(texts))
        if not request.texts:
            return self._encoder.encode_queries([])
        with self._lock:
            if self._closed:
                raise RuntimeError("The query batcher is closed; questions can no longer be encoded.")
            self._queue.put(request)
        return request.result.result()

    def encode_passages(
        self, texts: Sequence[str], on_progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        return self._encoder.encode_passages(texts, on_progress)

    def close(self, timeout_s: float = 30) -> None:
        """Encode the questions already queued, then stop the worker. Later calls do nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._worker.join(timeout_s)

    def _run(self) -> None:
        while True:
            batch, stopping = self._gather()
            if batch:
                self._encode(batch)
            if stopping:
                return

    def _gather(self) -> tuple[list[_Request], bool]:
        """The next batch: the first waiting request, and those that arrive within `max_wait` of it
        (those already queued join at once), up to `max_batch` texts; and whether `close` was called."""
        first = self._held or self._queue.get()
        self._held = None
        if first is _STOP:
            return [], True
        batch, size = [first], len(first.texts)
        deadline = first.arrived + self._max_wait
        while size < self._max_batch:
            try:
                waited = max(0.0, deadline - time.monotonic())
                nxt = self._queue.get(timeout=waited) if waited else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                return batch, True
            if size + len(nxt.texts) > self._max_batch:
                self._held = nxt
                break
            batch.append(nxt)
            size += len(nxt.texts)
        return batch, False

    def _encode(self, batch: list[_Request]) -> None:
        texts = [text for request in batch for text in request.texts]
        try:
            vectors = self._encoder.encode_queries(texts)
        except BaseException as exc:
            # Each caller of the batch raises it in its own thread; none is left waiting.
            for request in batch:
                request.result.set_exception(exc)
            return
        logger.debug("Encoded %d questions of %d requests in one pass", len(texts), len(batch))
        start = 0
        for request in batch:
            end = start + len(request.texts)
            # A copy: a caller may keep or change its rows without touching another caller's.
            request.result.set_result(vectors[start:end].copy())
            start = end
