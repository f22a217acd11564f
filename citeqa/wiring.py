"""Settings → encoder → collections (store, searcher, indexer): the one place that builds a running CiteQA.

The HTTP app, the CLI, `citeqa eval` and the scripts all call `Resources.load` (or `from_encoder` with a
model already loaded), so that they search exactly alike. Nothing here is global: the caller owns the
`Resources` it gets and closes it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from threadpoolctl import threadpool_limits

from citeqa.collections import DEFAULT_COLLECTION, Collection, Collections
from citeqa.settings import Settings
from index.translation import QueryTranslator, cc_cedict_translator
from index.vectors import TextEncoder

logger = logging.getLogger(__name__)


def limit_blas_threads() -> None:
    """Give numpy's BLAS (and FAISS's) one thread, for the whole process.

    A search's matrix products are small (a question against a few thousand candidate vectors): a second
    BLAS thread gains nothing and, right after the model encoded the question, contends with the model's
    own threads for the two cores. Measured on the sample report, a search with the question's encoding
    took about 100 ms at p50 with two BLAS threads and 36-52 ms with one (docs/PERF.md). The model keeps
    its threads (torch's own pool, not BLAS)."""
    threadpool_limits(limits=1, user_api="blas")


def load_encoder(settings: Settings, *, show_progress: bool = False) -> TextEncoder:
    """The configured embedding model, loaded (and, for the embedded one, prepared once)."""
    # Imported here: sentence-transformers takes seconds to import, and only loading a model needs it.
    from embeddings.encoder import Encoder

    encoder = Encoder(
        settings.embedding_model,
        cache_dir=settings.model_cache,
        batch_size=settings.batch_size,
        quantize=settings.quantize,
    )
    encoder.load(show_progress=show_progress)
    return encoder


def load_translator(settings: Settings) -> QueryTranslator | None:
    """The English → Chinese keyword translator, unless switched off."""
    if not settings.translate_questions:
        return None
    started = time.perf_counter()
    translator = cc_cedict_translator()
    logger.info("CC-CEDICT query translator ready in %.1f s", time.perf_counter() - started)
    return translator


@dataclass
class Resources:
    """The model, the translator and the collections they serve, for one process."""

    settings: Settings
    encoder: TextEncoder
    collections: Collections

    @classmethod
    def load(cls, settings: Settings, *, show_progress: bool = False, rebuild: bool = False) -> Resources:
        """Load the model and open the default collection; `rebuild` accepts indexes built with another
        model."""
        return cls.from_encoder(
            settings, load_encoder(settings, show_progress=show_progress), rebuild=rebuild
        )

    @classmethod
    def from_encoder(cls, settings: Settings, encoder: TextEncoder, *, rebuild: bool = False) -> Resources:
        limit_blas_threads()
        collections = Collections(settings, encoder, load_translator(settings), rebuild=rebuild)
        collections.get(DEFAULT_COLLECTION)  # opened now: a bad index fails at start, not at a request
        return cls(settings=settings, encoder=encoder, collections=collections)

    def collection(self, name: str = DEFAULT_COLLECTION) -> Collection:
        """An open collection (CollectionNotFound if `name` was never created)."""
        return self.collections.get(name)

    def close(self) -> None:
        self.collections.close()
