"""Collections: named, independent indexes sharing the model and the translator, kept where CITEQA_BACKEND
says.

Local (the default): the default collection is the data folder itself (`CITEQA_DATA_DIR`), so an index made
before collections existed is the `default` one; every other collection is a folder `collections/<name>`
inside it. A name is checked against one pattern before it becomes a path, so a collection can never reach
another's files. Milvus: a collection is the Milvus collections named `citeqa_<name>_...` on the server of
CITEQA_MILVUS_URI (index.milvus.store), the default one created on first use as well.
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
from index.backend import Store
from index.chunking import Chunker
from index.ingest import Indexer
from index.milvus.client import collection_name_of
from index.milvus.connection import Connection
from index.milvus.store import MilvusStore
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
    store: Store
    searcher: Searcher
    indexer: Indexer


class LocalStores:
    """Local collections: index folders under the data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def folder(self, name: str) -> Path:
        return self.data_dir if name == DEFAULT_COLLECTION else self.data_dir / COLLECTIONS_FOLDER / name

    def describe(self, name: str) -> str:
        return str(self.folder(name))

    def names(self) -> list[str]:
        root = self.data_dir / COLLECTIONS_FOLDER
        if not root.is_dir():
            return []
        return sorted(
            p.name for p in root.iterdir() if _NAME.fullmatch(p.name) and (p / DATABASE_FILE).is_file()
        )

    def exists(self, name: str) -> bool:
        return (self.folder(name) / DATABASE_FILE).is_file()

    def open(self, name: str, manifest: Manifest, rebuild: bool) -> Store:
        return IndexStore.open(self.folder(name), manifest, rebuild=rebuild)

    def remove(self, name: str) -> None:
        folder = self.folder(name)
        # Renamed first, in one step: a process killed while the files are removed leaves a hidden
        # folder that no name reaches, never a collection with half its files.
        doomed = folder.with_name(f".deleted-{name}-{uuid.uuid4().hex}")
        folder.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def close(self) -> None:
        pass


class MilvusStores:
    """Collections in a Milvus server: one connection shared by their stores."""

    def __init__(self, settings: Settings) -> None:
        self.connection = Connection(settings.milvus_uri, settings.milvus_token, settings.milvus_db)

    def describe(self, name: str) -> str:
        return f"Milvus {self.connection.uri}"

    def names(self) -> list[str]:
        found = (collection_name_of(milvus_name) for milvus_name in self.connection.list_collections())
        return sorted(name for name in found if name is not None and _NAME.fullmatch(name))

    def exists(self, name: str) -> bool:
        return MilvusStore.exists(self.connection, name)

    def open(self, name: str, manifest: Manifest, rebuild: bool) -> Store:
        return MilvusStore.open(self.connection, name, manifest, rebuild=rebuild)

    def remove(self, name: str) -> None:
        MilvusStore.drop(self.connection, name)

    def close(self) -> None:
        self.connection.close()


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
        self._places = (
            MilvusStores(settings) if settings.backend == "milvus" else LocalStores(settings.data_dir)
        )

    def names(self) -> list[str]:
        """Every collection's name, the default first, then by name."""
        return [DEFAULT_COLLECTION, *(name for name in self._places.names() if name != DEFAULT_COLLECTION)]

    def exists(self, name: str) -> bool:
        check_collection_name(name)
        return name == DEFAULT_COLLECTION or self._places.exists(name)

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
            self._places.remove(name)
        logger.info("Deleted collection %s", name)

    def close(self) -> None:
        with self._lock:
            for collection in self._open.values():
                collection.store.close()
            self._open.clear()
            self._places.close()

    def _opened(self, name: str) -> Collection:
        manifest = Manifest(
            model=self.encoder.name, dimension=self.encoder.dimension, chunking=self._chunker.settings
        )
        store = self._places.open(name, manifest, self.rebuild)
        documents, chunks = store.counts()
        logger.info(
            "Collection %s (%s): %d documents, %d chunks",
            name,
            self._places.describe(name),
            documents,
            chunks,
        )
        collection = Collection(
            name=name,
            store=store,
            searcher=Searcher(store, self.encoder, self.settings.ranking_weights(), self.translator),
            indexer=Indexer(store, self.passages, self._chunker, self.settings.sentence_vectors),
        )
        self._open[name] = collection
        return collection
