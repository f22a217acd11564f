"""Text -> vectors: the bundled multilingual-e5-small model and the encoder used by indexing and search."""

from citeqa.errors import EmbeddedModelError, EmbeddingModelError
from embeddings.embedded import (
    EMBEDDED_MODEL,
    embedded_model_name,
    prepare_embedded_model,
    prepared_model_path,
)
from embeddings.encoder import Encoder, resolve_model

__all__ = [
    "EMBEDDED_MODEL",
    "EmbeddedModelError",
    "EmbeddingModelError",
    "Encoder",
    "embedded_model_name",
    "prepare_embedded_model",
    "prepared_model_path",
    "resolve_model",
]
