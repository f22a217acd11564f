"""Settings → encoder → collections (store, searcher, indexer): the one place that builds a running CiteQA.

The HTTP app, the CLI, `citeqa eval` and the scripts all call `Resources.load` (or `from_encoder` with a
model already loaded), so that they search exactly alike. Nothing here is global: the caller owns the
`Resources` it gets and closes it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from threadpoolctl import threadpool_limits

from citeqa.collections import DEFAULT_COLLECTION, Collection, Collections
from citeqa.settings import Settings
from embeddings.batching import QueryBatcher
from embeddings.cache import QueryCache
from embeddings.passage_cache import PassageCache, VectorFile
from index.lexical import Concept
from index.translation import QueryTranslator, cc_cedict_translator
from index.vectors import TextEncoder

if TYPE_CHECKING:
    from embeddings.encoder import Encoder

logger = logging.getLogger(__name__)


def limit_blas_threads() -> None:
    """Give numpy's BLAS (and FAISS's) one thread, for the whole process.

    A search's matrix products are small (a question against a few thousand candidate vectors): a second
    BLAS thread gains nothing and, right after the model encoded the question, contends with the model's
    own threads for the two cores. Measured on the sample report, a search with the question's encoding
    took about 100 ms at p50 with two BLAS threads and 36-52 ms with one (docs/PERF.md). The model keeps
    its threads (torch's own pool, not BLAS)."""
    threadpool_limits(limits=1, user_api="blas")


def torch_threads(settings: Settings) -> int:
    """Torch's intra-op threads: CITEQA_TORCH_THREADS, or with 0 (the default) one per CPU this process may
    run on (torch itself would count physical cores and ignore a container's CPU set).

    One thread was faster on a busy 2-core machine (docs/PERF.md, "Concurrent questions": a question
    encoded in 76-80 ms against 92-98 ms with two, and about 1,050 ms once in the main thread), but that
    was measured with three other loads on the cores, and ingest embeds whole batches, which two threads
    speed up: the default stays one per CPU until a quiet machine decides."""
    return settings.torch_threads or len(os.sched_getaffinity(0))


def load_encoder(
    settings: Settings, *, show_progress: bool = False, encoder_class: type[Encoder] | None = None
) -> TextEncoder:
    """The configured embedding model, loaded (and, for the embedded one, prepared once), as an `Encoder`
    or as `encoder_class` (a subclass: bench/ingest.py counts the texts embedded)."""
    # Imported here: sentence-transformers takes seconds to import, and only loading a model needs it.
    from embeddings.encoder import Encoder

    encoder = (encoder_class or Encoder)(
        settings.embedding_model,
        cache_dir=settings.model_cache,
        batch_size=settings.batch_size,
        quantize=settings.quantize,
        threads=torch_threads(settings),
    )
    encoder.load(show_progress=show_progress)
    return encoder


def query_encoder(settings: Settings, encoder: TextEncoder) -> tuple[TextEncoder, QueryBatcher | None]:
    """The encoder searches use: questions looked up in a cache of vectors (CITEQA_QUERY_CACHE_SIZE),
    the others batched with those of concurrent requests (CITEQA_QUERY_BATCH_WAIT_MS); and the batcher,
    which the caller closes."""
    batcher = None
    if settings.query_batch_wait_ms > 0:
        batcher = QueryBatcher(
            encoder, max_wait_ms=settings.query_batch_wait_ms, max_batch=settings.query_batch_size
        )
        encoder = batcher
    if settings.query_cache_size > 0:
        encoder = QueryCache(encoder, settings.query_cache_size)
    return encoder, batcher


def passage_encoder(settings: Settings, encoder: TextEncoder) -> tuple[TextEncoder, VectorFile | None]:
    """The encoder ingest uses: passages looked up in the embedding cache (CITEQA_EMBEDDING_CACHE) before
    the model, unless CITEQA_EMBEDDING_CACHE_MB is 0; and the cache's file, which the caller closes."""
    if settings.embedding_cache_mb == 0:
        return encoder, None
    vectors = VectorFile(settings.embedding_cache_path, settings.embedding_cache_mb)
    # int8 weights give other vectors under the same model name: they are cached apart.
    model = f"{encoder.name}+int8" if settings.quantize else encoder.name
    return PassageCache(encoder, vectors, model), vectors


def load_translator(settings: Settings) -> QueryTranslator | None:
    """The English → Chinese keyword translator, unless switched off."""
    return _timed_translator() if settings.translate_questions else None


def _timed_translator() -> QueryTranslator:
    started = time.perf_counter()
    translator = cc_cedict_translator()
    logger.info("CC-CEDICT query translator ready in %.1f s", time.perf_counter() - started)
    return translator


class BackgroundTranslator:
    """The CC-CEDICT translator, built in a thread of its own: building it takes seconds (17 s on a busy
    2-core machine, more than loading the model), and the server is ready without it. A search that
    needs it first waits for it; if building failed, that search raises the error."""

    def __init__(self, build: Callable[[], QueryTranslator]) -> None:
        self._built: Future[QueryTranslator] = Future()
        threading.Thread(target=self._build, args=(build,), name="translator-build", daemon=True).start()

    def _build(self, build: Callable[[], QueryTranslator]) -> None:
        try:
            self._built.set_result(build())
        except Exception as exc:
            logger.exception("Could not build the CC-CEDICT query translator")
            self._built.set_exception(exc)

    @property
    def ready(self) -> bool:
        return self._built.done()

    def wait(self) -> QueryTranslator:
        return self._built.result()

    def translate(self, question: str, *, with_source_words: bool = False) -> list[Concept]:
        return self.wait().translate(question, with_source_words=with_source_words)


@dataclass
class Resources:
    """The model, the translator and the collections they serve, for one process."""

    settings: Settings
    encoder: TextEncoder
    """The encoder searches use: the model behind the question cache and batcher."""
    collections: Collections
    batcher: QueryBatcher | None = None
    embedding_cache: VectorFile | None = None

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
        searching, batcher = query_encoder(settings, encoder)
        ingesting, embedding_cache = passage_encoder(settings, encoder)
        translator = BackgroundTranslator(_timed_translator) if settings.translate_questions else None
        collections = Collections(settings, searching, translator, rebuild=rebuild, passages=ingesting)
        try:
            collections.get(DEFAULT_COLLECTION)  # opened now: a bad index fails at start, not at a request
        except BaseException:
            if batcher is not None:
                batcher.close()
            raise
        return cls(
            settings=settings,
            encoder=searching,
            collections=collections,
            batcher=batcher,
            embedding_cache=embedding_cache,
        )

    def collection(self, name: str = DEFAULT_COLLECTION) -> Collection:
        """An open collection (CollectionNotFound if `name` was never created)."""
        return self.collections.get(name)

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self.collections.close()
        if self.embedding_cache is not None:
            self.embedding_cache.close()
