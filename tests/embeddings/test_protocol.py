"""The encoder shape embeddings' wrappers declare is the one the index asks for."""

from __future__ import annotations

import inspect

from embeddings.protocol import SpanEncoder, WrappedEncoder
from index.vectors import SentenceSpanEncoder, TextEncoder


def members(protocol: type) -> dict[str, str]:
    return {
        name: str(inspect.signature(value.fget if isinstance(value, property) else value))
        for name, value in vars(protocol).items()
        if not name.startswith("_")
    }


def test_the_wrapped_encoder_protocol_matches_the_text_encoder_protocol() -> None:
    assert members(WrappedEncoder) == members(TextEncoder)
    assert set(members(TextEncoder)) == {"name", "dimension", "encode_queries", "encode_passages"}


def test_the_span_encoder_protocol_matches_the_indexs_sentence_span_encoder() -> None:
    assert members(SpanEncoder) == members(SentenceSpanEncoder)
    assert set(members(SentenceSpanEncoder)) == {"encode_passage_sentences"}
