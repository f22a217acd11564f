"""Evaluation corpora: files indexed through the product's ingestion once, then reused from a cache.

The cache folder of a corpus is named by a key over what the index depends on: the bytes of every file
(with the name the readers give it, since doc ids derive from it), the embedding model, the chunking
settings, how sentence vectors are made, int8 weights or not, the index store format and this module's
format. Modification times are not part of it, so touching or copying the files keeps the cached index;
editing one byte rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from citeqa.errors import CorpusError
from citeqa.settings import Settings
from citeqa.wiring import Resources, load_encoder
from index.chunking import Chunker, ChunkingSettings
from index.ingest import Indexer, ProgressHook, SentenceVectors
from index.store import FORMAT_VERSION as STORE_FORMAT_VERSION
from index.store import IndexStore, Manifest
from index.vectors import TextEncoder

logger = logging.getLogger(__name__)

# Bump when what goes into a cached index changes in a way the other parts of the key do not capture.
CACHE_FORMAT_VERSION = 1
CACHE_DIR_NAME = "eval-cache"
RECORD_FILE = "corpus.json"
_KEY_HEX_CHARS = 24


@dataclass(frozen=True)
class CorpusFile:
    """A file of the corpus: the name the readers give it (a doc id source), its path and content hash."""

    source: str
    path: Path
    sha256: str


@dataclass(frozen=True)
class CorpusIndex:
    """A built index of a corpus: open it with `IndexStore.open(directory, manifest)`."""

    key: str
    directory: Path
    reused: bool
    documents: int
    chunks: int


def check_corpus_paths(paths: Sequence[Path]) -> None:
    """Raise CorpusError naming the paths that do not exist (cheap: run it before loading a model)."""
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise CorpusError(f"No such corpus file or folder: {', '.join(missing)}")


def corpus_files(paths: Sequence[Path]) -> list[CorpusFile]:
    """Every file named or found (recursively) under `paths`, in sorted order of source name then path.

    A named file's source is its name; a file under a folder has its path relative to that folder, as
    `index.readers.read_path` names them. Every file counts, whether a reader takes it or not.
    """
    check_corpus_paths(paths)
    files: list[CorpusFile] = []
    for path in paths:
        if path.is_dir():
            found = [(file.relative_to(path).as_posix(), file) for file in path.rglob("*") if file.is_file()]
        else:
            found = [(path.name, path)]
        files.extend(CorpusFile(source, file, _sha256(file)) for source, file in found)
    return sorted(files, key=lambda file: (file.source, str(file.path)))


def corpus_key(
    files: Sequence[CorpusFile],
    model: str,
    chunking: ChunkingSettings,
    sentence_vectors: SentenceVectors = "separate",
    int8: bool = False,
) -> str:
    """The cache key of an index of `files` built with `model` (with int8 weights or not), `chunking` and
    sentence vectors made as `sentence_vectors` says (hex, 24 characters)."""
    material = {
        "cache_format": CACHE_FORMAT_VERSION,
        "store_format": STORE_FORMAT_VERSION,
        "model": model,
        "vectors": {"sentences": sentence_vectors, "int8": int8},
        "chunking": chunking.model_dump(),
        "files": [[file.source, file.sha256] for file in files],
    }
    encoded = json.dumps(material, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()[:_KEY_HEX_CHARS]


def cache_root_for(data_dir: Path) -> Path:
    """`eval-cache` beside the configured index folder (`var/eval-cache` with the default settings)."""
    return data_dir.parent / CACHE_DIR_NAME


def load_resources(
    settings: Settings, corpus: Sequence[Path] | None, on_progress: ProgressHook | None = None
) -> Resources:
    """The model, loaded once, and the index to search: the configured one (local or Milvus), or the corpus's
    cached one (always local)."""
    if not corpus:
        return Resources.load(settings, show_progress=True)
    encoder = load_encoder(settings, show_progress=True)
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    started = time.perf_counter()
    built = build_corpus_index(
        corpus,
        encoder,
        chunker,
        cache_root_for(settings.data_dir),
        on_progress,
        sentence_vectors=settings.sentence_vectors,
        int8=settings.quantize,
    )
    if not built.reused:
        logger.info("Built the corpus index in %.1f s", time.perf_counter() - started)
    # The corpus's index is a local one, whatever CITEQA_BACKEND says: to evaluate a Milvus collection, ingest
    # into it and run without --corpus.
    local = settings.model_copy(update={"data_dir": built.directory, "backend": "local"})
    return Resources.from_encoder(local, encoder)


def build_corpus_index(
    paths: Sequence[Path],
    encoder: TextEncoder,
    chunker: Chunker,
    cache_root: Path,
    on_progress: ProgressHook | None = None,
    *,
    sentence_vectors: SentenceVectors = "separate",
    int8: bool = False,
) -> CorpusIndex:
    """The index of the files under `paths`, from the cache or built into it (readers, chunker, encoder;
    `int8` tells the key that the encoder has int8 weights).

    A build goes to a temporary folder renamed into place when complete, so an interrupted build is never
    taken for a cached index. Raises CorpusError if a path is missing or no article can be read.
    """
    files = corpus_files(paths)
    key = corpus_key(files, encoder.name, chunker.settings, sentence_vectors, int8)
    directory = cache_root / key
    if (directory / RECORD_FILE).is_file():
        record = _CacheRecord.model_validate_json((directory / RECORD_FILE).read_text(encoding="utf-8"))
        logger.info(
            "Reusing the cached index %s (%d documents, %d chunks)",
            directory,
            record.documents,
            record.chunks,
        )
        return CorpusIndex(key, directory, reused=True, documents=record.documents, chunks=record.chunks)
    manifest = Manifest(model=encoder.name, dimension=encoder.dimension, chunking=chunker.settings)
    cache_root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=cache_root, prefix=f".{key}-building-"))
    try:
        store = IndexStore.open(building, manifest)
        try:
            report = Indexer(store, encoder, chunker, sentence_vectors).ingest_paths(
                sorted(paths, key=str), on_progress=on_progress
            )
            documents, chunks = store.counts()
        finally:
            store.close()
        if not report.documents:
            problems = "; ".join(f"{problem.source}: {problem.message}" for problem in report.problems)
            raise CorpusError(f"No article could be read from {', '.join(map(str, paths))} ({problems})")
        record = _CacheRecord(
            manifest=manifest,
            files=[_RecordedFile(source=file.source, sha256=file.sha256) for file in files],
            documents=documents,
            chunks=chunks,
        )
        (building / RECORD_FILE).write_text(record.model_dump_json(indent=2), encoding="utf-8")
        reused = not _move_into_place(building, directory)
    finally:
        if building.exists():
            shutil.rmtree(building)
    logger.info("Indexed the corpus into %s (%d documents, %d chunks)", directory, documents, chunks)
    return CorpusIndex(key, directory, reused=reused, documents=documents, chunks=chunks)


class _RecordedFile(BaseModel):
    source: str
    sha256: str


class _CacheRecord(BaseModel):
    """What a cached index holds, written last into its folder: the folder is complete when it is there."""

    manifest: Manifest
    files: list[_RecordedFile]
    documents: int
    chunks: int


def _move_into_place(building: Path, directory: Path) -> bool:
    """Rename the finished build to its cache folder; False if another process got there first."""
    try:
        building.rename(directory)
    except OSError as error:
        if not (directory / RECORD_FILE).is_file():
            raise CorpusError(
                f"Cannot move the built index to {directory} ({error.strerror}); if that folder exists, it is "
                "not a complete cached index: delete it and run again"
            ) from error
        logger.info("Another run cached the same corpus meanwhile; using %s", directory)
        return False
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
