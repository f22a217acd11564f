"""What the question cache and batcher wrap: any encoder of the shape `index.vectors.TextEncoder` names.

Declared again here because `embeddings` may not import `index` (the import-linter contract keeps the
two independent); `tests/embeddings/test_protocol.py` checks that the two declarations stay the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np


class WrappedEncoder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_passages(
        self, texts: Sequence[str], on_progress: Callable[[int], None] | None = None
    ) -> np.ndarray: ...


@runtime_checkable
class SpanEncoder(WrappedEncoder, Protocol):
    """An encoder that also embeds sentences within their passage (`index.vectors.SentenceSpanEncoder`)."""

    def encode_passage_sentences(
        self,
        texts: Sequence[str],
        sentences: Sequence[Sequence[tuple[int, int]]],
        on_progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]: ...
