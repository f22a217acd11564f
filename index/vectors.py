"""What the index needs from an embedding model; `embeddings.encoder.Encoder` provides it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np


class TextEncoder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_passages(
        self, texts: Sequence[str], on_progress: Callable[[int], None] | None = None
    ) -> np.ndarray: ...


@runtime_checkable
class SentenceSpanEncoder(TextEncoder, Protocol):
    """An encoder that embeds each passage once and its sentences within it ("late chunking").

    `sentences[i]` are character spans (start, end) of `texts[i]`; it returns the passages' vectors,
    shape (len(texts), dimension), and for each passage its sentences' vectors, one row per span.
    `on_progress(n)` counts a passage and its sentences as 1 + len(spans)."""

    def encode_passage_sentences(
        self,
        texts: Sequence[str],
        sentences: Sequence[Sequence[tuple[int, int]]],
        on_progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]: ...
