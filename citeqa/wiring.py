"""Settings → encoder → store → searcher: the one place that builds a running CiteQA.

The HTTP app, the CLI, `citeqa eval` and the scripts all call `Resources.load` (or `from_encoder` with a
model already loaded), so that they search exactly alike. Nothing here is global: the caller owns the
`Resources` it gets and closes it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from threadpoolctl import threadpool_limits

from citeqa.settings import Settings
from index.chunking import Chunker
from index.ingest import Indexer
from index.search import Searcher
from index.store import IndexStore, Manifest
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
    settings: Settings
    encoder: TextEncoder
    store: IndexStore
    searcher: Searcher
    indexer: Indexer

    @classmethod
    def load(cls, settings: Settings, *, show_progress: bool = False, rebuild: bool = False) -> Resources:
        """Load the model and open the index; `rebuild` accepts an index built with another model."""
        return cls.from_encoder(
            settings, load_encoder(settings, show_progress=show_progress), rebuild=rebuild
        )

    @classmethod
    def from_encoder(cls, settings: Settings, encoder: TextEncoder, *, rebuild: bool = False) -> Resources:
        limit_blas_threads()
        chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
        manifest = Manifest(model=encoder.name, dimension=encoder.dimension, chunking=chunker.settings)
        store = IndexStore.open(settings.data_dir, manifest, rebuild=rebuild)
        documents, chunks = store.counts()
        logger.info("Index %s: %d documents, %d chunks", settings.data_dir, documents, chunks)
        return cls(
            settings=settings,
            encoder=encoder,
            store=store,
            searcher=Searcher(store, encoder, settings.ranking_weights(), load_translator(settings)),
            indexer=Indexer(store, encoder, chunker),
        )

    def close(self) -> None:
        self.store.close()
