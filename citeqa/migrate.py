"""`citeqa migrate --to milvus`: a local collection copied into Milvus as it is stored.

The chunks, sentences and vectors go as they are, so nothing is embedded again and the Milvus collection
answers as the local one did. A document already in Milvus with the same content is skipped, so a copy
stopped midway is finished by running it again. The local index is only read (an index of an earlier format
is upgraded first, as any opening of it does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from citeqa.collections import LocalStores, MilvusStores, check_collection_name
from citeqa.errors import CollectionNotFound, InvalidSettings
from citeqa.settings import Settings
from index.backend import Store
from index.storage.documents import IndexedDocument
from index.store import IndexStore

# Documents are written in batches of about this many chunks: one Milvus write each.
BATCH_CHUNKS = 2000

MigrationProgress = Callable[[int, int], None]
"""Called with (documents done, documents in all) after each batch."""


@dataclass(frozen=True)
class Migration:
    """What a migration did."""

    collection: str
    copied: int
    unchanged: int
    chunks: int
    """Chunks copied."""


def migrate_to_milvus(
    settings: Settings, collection: str, on_progress: MigrationProgress | None = None
) -> Migration:
    """Copy the local collection `collection` (under CITEQA_DATA_DIR) into the Milvus of
    CITEQA_MILVUS_URI, which must hold no collection of that name built with another model."""
    check_collection_name(collection)
    if not settings.milvus_uri:
        raise InvalidSettings(
            "Set CITEQA_MILVUS_URI to the Milvus server to copy into (e.g. http://127.0.0.1:19530)."
        )
    local = LocalStores(settings.data_dir)
    manifest = IndexStore.stored_manifest(local.folder(collection)) if local.exists(collection) else None
    if manifest is None:
        raise CollectionNotFound(
            f"No local index for collection {collection!r} in {local.describe(collection)}: set "
            "CITEQA_DATA_DIR to the folder `citeqa serve` used with the local backend."
        )
    source = local.open(collection, manifest, rebuild=False)
    milvus = MilvusStores(settings)
    try:
        target = milvus.open(collection, manifest, rebuild=False)
        try:
            return _copy(collection, source, target, on_progress)
        finally:
            target.close()
    finally:
        milvus.close()
        source.close()


def _copy(
    collection: str, source: IndexStore, target: Store, on_progress: MigrationProgress | None
) -> Migration:
    total, _ = source.counts()
    done = copied = unchanged = chunks = 0
    batch: list[IndexedDocument] = []

    def flush() -> None:
        nonlocal copied, chunks
        if batch:
            target.upsert(batch)
            copied += len(batch)
            chunks += sum(len(item.chunks) for item in batch)
            batch.clear()
        if on_progress is not None:
            on_progress(done, total)

    for item in source.indexed_documents():
        done += 1
        there = target.find_document(item.document.doc_id)
        if there is not None and there.content_hash == item.content_hash:
            unchanged += 1
            continue
        batch.append(item)
        if sum(len(queued.chunks) for queued in batch) >= BATCH_CHUNKS:
            flush()
    flush()
    return Migration(collection=collection, copied=copied, unchanged=unchanged, chunks=chunks)
