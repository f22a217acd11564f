"""Collections: named, independent indexes under one data folder, sharing the model and the translator.

The default collection is the data folder itself (`CITEQA_DATA_DIR`), so an index made before collections
existed is the `default` one; every other collection is a folder `collections/<name>` inside it. A name is
checked against one pattern before it becomes a path, so a collection can never reach another's files.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from citeqa.errors import CollectionExists, CollectionNotFound, InvalidCollectionName
from citeqa.settings import Settings
from index.chunking import Chunker
from index.ingest import Indexer
from index.search import Searcher
from index.storage.documents import DATABASE_FILE
from index.store import IndexStore, Manifest
from index.translation import Translator
from index.vectors import TextEncoder

logger = logging.getLogger(__name__)

DEFAULT_COLLECTION = "default"
COLLECTION_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
COLLECTION_NAME_RULE = (
    "1–64 characters: lower-case letters, digits, '-' and '_', starting with a letter or digit"
)
_NAME = re.compile(COLLECTION_NAME_PATTERN)
# Named collections live here, inside the data folder (the default collection's own folder).
COLLECTIONS_FOLDER = "collections"


def check_collection_name(name: str) -> str:
    """`name` if it can name a collection, else InvalidCollectionName saying what a name may hold."""
    if not _NAME.fullmatch(name):
        raise InvalidCollectionName(f"{name!r} cannot name a collection: use {COLLECTION_NAME_RULE}.")
    return name


@dataclass
class Collection:
    """One collection's open index, and the searcher and indexer working on it."""

    name: str
    store: IndexStore
    searcher: Searcher
    indexer: Indexer


class Collections:
    """The collections of one data folder, each opened on first use and kept open until `close`.

    Thread-safe: requests of several threads may open, create or delete collections at once."""

    def __init__(
        self,
        settings: Settings,
        encoder: TextEncoder,
        translator: Translator | None,
        *,
        rebuild: bool = False,
        passages: TextEncoder | None = None,
    ) -> None:
        self.settings = settings
        self.encoder = encoder
        self.translator = translator
        self.rebuild = rebuild
        """Open indexes built with another model too (`citeqa reindex` re-embeds them)."""
        self.passages = passages or encoder
        """What ingest embeds with: the same model, through the embedding cache if there is one."""
        self._chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
        self._open: dict[str, Collection] = {}
        self._lock = threading.Lock()

    def folder(self, name: str) -> Path:
        """Where the collection `name` keeps its index (the name checked first)."""
        check_collection_name(name)
        if name == DEFAULT_COLLECTION:
            return self.settings.data_dir
        return self.settings.data_dir / COLLECTIONS_FOLDER / name

    def names(self) -> list[str]:
        """Every collection's name, the default first, then by name."""
        root = self.settings.data_dir / COLLECTIONS_FOLDER
        named = (
            sorted(
                p.name for p in root.iterdir() if _NAME.fullmatch(p.name) and (p / DATABASE_FILE).is_file()
            )
            if root.is_dir()
            else []
        )
        return [DEFAULT_COLLECTION, *(name for name in named if name != DEFAULT_COLLECTION)]

    def exists(self, name: str) -> bool:
        return name == DEFAULT_COLLECTION or (self.folder(name) / DATABASE_FILE).is_file()

    def get(self, name: str = DEFAULT_COLLECTION) -> Collection:
        """The collection `name`, opened if it is not yet (the default one is created when missing);
        CollectionNotFound if no such collection was created."""
        check_collection_name(name)
        with self._lock:
            if name in self._open:
                return self._open[name]
            if not self.exists(name):
                raise CollectionNotFound(
                    f"No collection named {name!r}. Create it first (POST /v1/collections or "
                    f"`citeqa collections create {name}`); list them with GET /v1/collections."
                )
            return self._opened(name)

    def create(self, name: str) -> Collection:
        """A new, empty collection; CollectionExists if one has that name."""
        check_collection_name(name)
        with self._lock:
            if name in self._open or self.exists(name):
                raise CollectionExists(f"A collection named {name!r} exists already.")
            return self._opened(name)

    def get_or_create(self, name: str) -> Collection:
        """The collection `name`, created first if there is none (for a command that adds documents)."""
        try:
            return self.create(name)
        except CollectionExists:
            return self.get(name)

    def delete(self, name: str) -> None:
        """Remove a collection and everything in it; the default one cannot be removed."""
        check_collection_name(name)
        if name == DEFAULT_COLLECTION:
            raise InvalidCollectionName(
                "The default collection cannot be deleted; delete its documents instead."
            )
        with self._lock:
            if not self.exists(name):
                raise CollectionNotFound(f"No collection named {name!r}.")
            opened = self._open.pop(name, None)
            if opened is not None:
                opened.store.close()
            folder = self.folder(name)
            # Renamed first, in one step: a process killed while the files are removed leaves a hidden
            # folder that no name reaches, never a collection with half its files.
            doomed = folder.with_name(f".deleted-{name}-{uuid.uuid4().hex}")
            folder.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        logger.info("Deleted collection %s", name)

    def close(self) -> None:
        with self._lock:
            for collection in self._open.values():
                collection.store.close()
            self._open.clear()

    def _opened(self, name: str) -> Collection:
        manifest = Manifest(
            model=self.encoder.name, dimension=self.encoder.dimension, chunking=self._chunker.settings
        )
        store = IndexStore.open(self.folder(name), manifest, rebuild=self.rebuild)
        documents, chunks = store.counts()
        logger.info("Collection %s (%s): %d documents, %d chunks", name, store.directory, documents, chunks)
        collection = Collection(
            name=name,
            store=store,
            searcher=Searcher(store, self.encoder, self.settings.ranking_weights(), self.translator),
            indexer=Indexer(store, self.passages, self._chunker, self.settings.sentence_vectors),
        )
        self._open[name] = collection
        return collection
