"""Text -> vectors: questions and passages through one sentence-transformers model, on CPU."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from citeqa.errors import EmbeddingModelError
from embeddings.embedded import EMBEDDED_MODEL, embedded_model_name, prepare_embedded_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

# Where a model keeps its prompt under another name: sentence-transformers 6 calls passages "document".
_PROMPT_KEYS = {"query": ("query",), "passage": ("passage", "document")}
# e5 models were trained with these prefixes and lose quality without them.
_E5_PROMPTS = {"query": "query: ", "passage": "passage: "}


def resolve_model(model: str, cache_dir: Path, show_progress: bool = True) -> str:
    """What to hand to `SentenceTransformer`: the prepared folder for "embedded", else `model` unchanged."""
    if model == EMBEDDED_MODEL:
        return str(prepare_embedded_model(cache_dir, show_progress=show_progress))
    return model


class Encoder:
    """Turns questions and passages into L2-normalised float32 vectors.

    `model` is "embedded" (the bundled multilingual-e5-small), a sentence-transformers folder, or a hub
    name. Nothing is loaded until `load()`, so building an Encoder is cheap and never touches the disk.
    """

    def __init__(
        self,
        model: str,
        cache_dir: Path,
        batch_size: int = 32,
        quantize: bool = False,
        threads: int | None = None,
    ) -> None:
        """`threads`: torch's intra-op threads for the whole process, set at `load()` (None: torch's own
        choice, one per physical core)."""
        if not model.strip():
            raise ValueError(
                "model must be 'embedded', a sentence-transformers folder or a hub name, not empty."
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}.")
        self._setting = model
        self._cache_dir = Path(cache_dir)
        self.batch_size = batch_size
        self.quantize = quantize
        self.threads = threads
        self._model: SentenceTransformer | None = None
        self._dimension = 0
        self._prompts: dict[str, str | None] = {"query": None, "passage": None}

    @functools.cached_property
    def name(self) -> str:
        """A stable identifier of the weights, recorded in index manifests."""
        # Cached: every question's cache key asks for it, and the embedded model's name reads the
        # installed package's metadata (about 5 ms a call).
        if self._setting == EMBEDDED_MODEL:
            return embedded_model_name()
        return self._setting

    @property
    def dimension(self) -> int:
        """Length of every vector this encoder returns."""
        self._loaded()
        return self._dimension

    @property
    def prompts(self) -> dict[str, str | None]:
        """The prefixes put before queries and passages (None: no prefix); known after `load()`."""
        return dict(self._prompts)

    def load(self, show_progress: bool = True) -> None:
        """Load the model on CPU (converting the embedded one first if needed). Later calls do nothing."""
        if self._model is not None:
            return
        import torch
        from sentence_transformers import SentenceTransformer

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        target = resolve_model(self._setting, self._cache_dir, show_progress=show_progress)
        try:
            model = SentenceTransformer(target, device="cpu")
        except Exception as exc:
            raise EmbeddingModelError(
                f"Could not load the embedding model '{self._setting}' ({type(exc).__name__}: {exc}). Use "
                f"'{EMBEDDED_MODEL}', the path of a sentence-transformers folder, or a hub name this machine "
                f"can download."
            ) from exc
        model.eval()
        if self.quantize:
            # int8 weights for the Linear layers, activations quantised on the fly: about twice the CPU
            # throughput for vectors within cosine ~0.98 of the float ones.
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        # Measured rather than asked: the method for asking was renamed between sentence-transformers 5 and 6.
        dimension = model.encode(["dimension"], show_progress_bar=False).shape[1]
        self._prompts = {kind: _pick_prompt(model.prompts, kind, self._setting) for kind in _PROMPT_KEYS}
        self._dimension = int(dimension)
        self._model = model
        logger.info(
            "Loaded embedding model %s (%d dimensions, prompts %s, int8=%s, %d torch threads)",
            self.name,
            self._dimension,
            self._prompts,
            self.quantize,
            torch.get_num_threads(),
        )

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for questions, shape (len(texts), dimension)."""
        return self._encode(texts, self._prompts["query"], None)

    def encode_passages(
        self, texts: Sequence[str], on_progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Vectors for passages, shape (len(texts), dimension); `on_progress(n)` follows each batch of n."""
        return self._encode(texts, self._prompts["passage"], on_progress)

    def encode_passage_sentences(
        self,
        texts: Sequence[str],
        sentences: Sequence[Sequence[tuple[int, int]]],
        on_progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Passage vectors as `encode_passages` gives them, and each passage's sentences (character spans
        (start, end) of its text) embedded within it, from the same forward pass: the mean of the tokens
        that overlap the span, normalised ("late chunking"). A sentence past the model's length limit, or
        of a model that does not mean-pool its tokens, is embedded on its own. `on_progress(n)` counts a
        passage and its sentences as 1 + len(spans)."""
        model = self._loaded()
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings; wrap a single text in a list.")
        items, spans = list(texts), [list(s) for s in sentences]
        if len(items) != len(spans):
            raise ValueError(f"{len(items)} texts but sentence spans for {len(spans)}.")
        vectors = np.empty((len(items), self._dimension), dtype=np.float32)
        in_context = [np.empty((len(s), self._dimension), dtype=np.float32) for s in spans]
        alone: list[tuple[int, int]] = []  # (passage, sentence) embedded on their own
        prompt = self._prompts["passage"] or ""
        order = sorted(range(len(items)), key=lambda i: len(items[i]), reverse=True)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            pooled = self._late_batch(
                model, [prompt + items[i] for i in batch], len(prompt), [spans[i] for i in batch]
            )
            for i, (vector, rows) in zip(batch, pooled, strict=True):
                vectors[i] = vector
                for j, row in enumerate(rows):
                    if row is None:
                        alone.append((i, j))
                    else:
                        in_context[i][j] = row
            if on_progress is not None:
                on_progress(sum(1 + len(spans[i]) for i in batch))
        if alone:
            logger.debug("%d sentences past the model's length limit embedded on their own", len(alone))
            own = self.encode_passages([items[i][slice(*spans[i][j])] for i, j in alone])
            for (i, j), vector in zip(alone, own, strict=True):
                in_context[i][j] = vector
        return vectors, in_context

    def _late_batch(
        self, model: SentenceTransformer, texts: list[str], shift: int, spans: list[list[tuple[int, int]]]
    ) -> list[tuple[np.ndarray, list[np.ndarray | None]]]:
        """One forward pass over `texts` (prompt included, `shift` characters of it): each text's vector,
        and its spans' pooled vectors (None for a span to embed on its own)."""
        import torch

        features = model.preprocess(texts, prompt=None)
        with torch.inference_mode():
            output = model(features)
        passage_vectors = output["sentence_embedding"].float().numpy()
        # As `encode_passages` returns them: normalised here, whether the model ends in Normalize or not.
        passage_vectors /= np.linalg.norm(passage_vectors, axis=1, keepdims=True)
        tokens = output["token_embeddings"].float().numpy()
        # The tokenizer again, for each token's characters: the ids must be those the model just read.
        limit = model.max_seq_length
        encoded = model.tokenizer(
            texts, padding=True, truncation="longest_first", max_length=limit, return_offsets_mapping=True
        )
        same = np.array_equal(np.asarray(encoded["input_ids"]), features["input_ids"].numpy())
        mean_pooled = _mean_pools(model)
        results = []
        for row, text_spans in enumerate(spans):
            mask = np.asarray(encoded["attention_mask"][row], dtype=bool)
            offsets = np.asarray(encoded["offset_mapping"][row])
            real = mask & (offsets[:, 1] > offsets[:, 0])  # special tokens and padding span no character
            truncated = limit is not None and int(mask.sum()) >= limit
            covered = int(offsets[real, 1].max()) if real.any() else 0
            pooled: list[np.ndarray | None] = []
            for start, end in text_spans:
                start, end = start + shift, end + shift
                inside = real & (offsets[:, 1] > start) & (offsets[:, 0] < end)
                if not (same and mean_pooled and inside.any()) or (truncated and end > covered):
                    pooled.append(None)
                    continue
                vector = tokens[row][inside].mean(axis=0)
                pooled.append(vector / np.linalg.norm(vector))
            results.append((passage_vectors[row], pooled))
        return results

    def _loaded(self) -> SentenceTransformer:
        if self._model is None:
            raise RuntimeError("The embedding model has not been loaded. Call Encoder.load() first.")
        return self._model

    def _encode(
        self, texts: Sequence[str], prompt: str | None, on_progress: Callable[[int], None] | None
    ) -> np.ndarray:
        model = self._loaded()
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings; wrap a single text in a list.")
        items = list(texts)
        vectors = np.empty((len(items), self._dimension), dtype=np.float32)
        # Batching texts of similar length wastes less work on padding; longest first so that a batch too
        # large for memory fails at once rather than at the end.
        order = sorted(range(len(items)), key=lambda i: len(items[i]), reverse=True)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            vectors[batch] = model.encode(
                [items[i] for i in batch],
                prompt=prompt,
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
            if on_progress is not None:
                on_progress(len(batch))
        return vectors


def _mean_pools(model: SentenceTransformer) -> bool:
    """Whether the model's vector is the mean of all its tokens (prompt included): only then is a span's
    mean comparable with it."""
    for module in model:
        mode = getattr(module, "pooling_mode", None)
        if mode is not None:
            return mode == "mean" and getattr(module, "include_prompt", True)
    return False


def _pick_prompt(prompts: dict[str, str | None], kind: str, setting: str) -> str | None:
    # sentence-transformers 6 fills prompts a model lacks with None or "" placeholders; only text counts.
    known = {name: text for name, text in prompts.items() if text}
    for key in _PROMPT_KEYS[kind]:
        if key in known:
            return known[key]
    # The last part of a hub name or path names the model; a folder above it ("/home/e5user") does not.
    if not known and "e5" in Path(setting.rstrip("/")).name.lower():
        return _E5_PROMPTS[kind]
    return None
