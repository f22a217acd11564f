"""A deterministic stand-in for the embedding model, for fast unit tests.

Texts are embedded as hashed character bigrams, so passages that share words with a question
score higher: enough to test ranking plumbing without a real model (the real model has its own
tests and end-to-end tests).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np


class FakeEncoder:
    def __init__(self, dimension: int = 64, name: str = "fake-bigram-64") -> None:
        self._dimension = dimension
        self._name = name
        self.passages_encoded = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            compact = "".join(text.lower().split())
            for i in range(len(compact) - 1):
                bucket = int(hashlib.md5(compact[i : i + 2].encode()).hexdigest(), 16) % self._dimension
                vectors[row, bucket] += 1.0
            norm = np.linalg.norm(vectors[row])
            vectors[row] = vectors[row] / norm if norm else vectors[row]
        return vectors

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def encode_passages(
        self, texts: Sequence[str], on_progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        vectors = self._encode(texts)
        self.passages_encoded += len(texts)
        if on_progress:
            on_progress(len(texts))
        return vectors

    def encode_passage_sentences(
        self,
        texts: Sequence[str],
        sentences: Sequence[Sequence[tuple[int, int]]],
        on_progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Late chunking's shape: a sentence's vector is its own text's, mixed with its passage's, so that
        a test can tell it from one embedded alone. Counts the passages in `passages_encoded`."""
        vectors = self._encode(texts)
        in_context = []
        for text, vector, spans in zip(texts, vectors, sentences, strict=True):
            own = self._encode([text[start:end] for start, end in spans]).reshape(len(spans), self._dimension)
            mixed = own + vector
            in_context.append(mixed / np.linalg.norm(mixed, axis=1, keepdims=True))
        self.passages_encoded += len(texts)
        if on_progress:
            on_progress(len(texts) + sum(len(spans) for spans in sentences))
        return vectors, in_context
