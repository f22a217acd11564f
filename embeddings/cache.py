"""Question vectors remembered: a question asked again skips the model.

A chat's follow-up is searched as a rewritten query that often repeats an earlier one, and users ask
the same questions; encoding is most of a search's time (docs/PERF.md), looking a vector up is
microseconds. Keys are the exact text and the model's name, so vectors of another model are never
served.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from embeddings.protocol import WrappedEncoder


class QueryCache:
    """A TextEncoder that keeps the vectors of the last `size` distinct questions (least recent out).

    Only questions are cached: passages are encoded once per ingest and never repeat. Thread-safe; two
    threads missing the same question at once both encode it, which costs time but not correctness."""

    def __init__(self, encoder: WrappedEncoder, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size} (to cache nothing, do not wrap).")
        self._encoder = encoder
        self.size = size
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def name(self) -> str:
        return self._encoder.name

    @property
    def dimension(self) -> int:
        return self._encoder.dimension

    def __len__(self) -> int:
        return len(self._vectors)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for questions, shape (len(texts), dimension): remembered ones as they were, the others
        from the model in one call."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings; wrap a single text in a list.")
        if not texts:
            return self._encoder.encode_queries([])
        model = self._encoder.name
        keys = [(model, text) for text in texts]
        found: dict[tuple[str, str], np.ndarray] = {}
        with self._lock:
            for key in keys:
                vector = self._vectors.get(key)
                if vector is not None:
                    self._vectors.move_to_end(key)
                    found[key] = vector
            self.hits += sum(key in found for key in keys)
        missing = list(dict.fromkeys(key for key in keys if key not in found))
        if missing:
            # Encoded outside the lock: other threads' hits must not wait for the model.
            encoded = self._encoder.encode_queries([text for _, text in missing])
            with self._lock:
                self.misses += len(missing)
                for key, vector in zip(missing, encoded, strict=True):
                    vector = vector.copy()
                    vector.flags.writeable = False  # shared by every caller that asks this question
                    found[key] = vector
                    self._vectors[key] = vector
                    self._vectors.move_to_end(key)
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return np.stack([found[key] for key in keys])

    def encode_passages(
        self, texts: Sequence[str], on_progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        return self._encoder.encode_passages(texts, on_progress)
