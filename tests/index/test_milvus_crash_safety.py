"""A writer killed with SIGKILL in the middle of a write to Milvus leaves every document whole or absent.

A writer process replaces a stored document and adds a new one, in one batch. At a chosen point it writes
`reached <point>` to its stdout and blocks, so the test's SIGKILL lands exactly there:

- `after-chunks`: the first document's text parts and chunks written, its sentences not;
- `before-commit`: every row of both documents written, no document row;
- `after-commit`: the document rows written, the collection's state (stamp, trash) not.

The points are reached by wrapping `Connection.insert` and `Connection.upsert` in the writer only. Reopened,
the index must hold the replaced document's old version whole and the new one absent before the commit,
both new versions whole after it; and the next write of the documents removes what the killed one left.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from index.chunking import Chunker
from index.documents import Document
from index.ingest import Indexer
from index.milvus.client import literal
from index.milvus.connection import Connection
from index.milvus.store import MilvusStore
from index.search import Searcher, SearchFilters
from tests.conftest import REPO_ROOT, make_document, manifest_for
from tests.fakes import FakeEncoder

pytestmark = [pytest.mark.server, pytest.mark.milvus]

CHUNK_SIZE, CHUNK_OVERLAP = 120, 20
STORED = make_document(
    "早先的文章",
    "".join(f"早先的文章第{j}段讲述量子计算与芯片产业在第{j * 5}个城市的进展。" for j in range(10)),
)
REPLACED = STORED.model_copy(
    update={"text": "".join(f"改写后的第{j}段说，显示面板出货量同比增长{j * 7}个百分点。" for j in range(10))}
)
ADDED = make_document(
    "新文章", "".join(f"新文章的第{j}段说，五G基站数量增加了{j * 3}万个。" for j in range(10))
)
# Each point, and whether the batch is committed (so kept) when the writer dies there.
POINTS = {"after-chunks": False, "before-commit": False, "after-commit": True}

WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    sys.path.insert(0, {repo!r})
    from index.chunking import Chunker
    from index.documents import Document
    from index.ingest import Indexer
    from index.milvus.connection import Connection
    from index.milvus.store import MilvusStore
    from index.store import Manifest
    from tests.fakes import FakeEncoder

    uri, collection, point, path = sys.argv[1:5]
    documents = [Document.model_validate_json(line) for line in Path(path).read_text().splitlines()]

    def at(name):
        if name == point:
            os.write(1, f"reached {{point}}\\n".encode())
            time.sleep(120)  # until the test's SIGKILL, which comes at once
            os._exit(3)

    insert, upsert = Connection.insert, Connection.upsert

    def _insert(self, name, rows):
        insert(self, name, rows)
        if name.endswith("_chunks"):
            at("after-chunks")

    def _upsert(self, name, rows):
        if name.endswith("_documents"):
            at("before-commit")
        if name.endswith("_meta"):
            at("after-commit")
        upsert(self, name, rows)

    Connection.insert, Connection.upsert = _insert, _upsert
    encoder, chunker = FakeEncoder(), Chunker({chunk_size}, {chunk_overlap})
    manifest = Manifest(model=encoder.name, dimension=encoder.dimension, chunking=chunker.settings)
    Indexer(MilvusStore.open(Connection(uri), collection, manifest), encoder, chunker).add(documents)
    os._exit(4)  # the point was never reached
    """
).format(repo=str(REPO_ROOT), chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)


def _open(connection: Connection, collection: str) -> MilvusStore:
    return MilvusStore.open(
        connection, collection, manifest_for(FakeEncoder(), Chunker(CHUNK_SIZE, CHUNK_OVERLAP))
    )


def _kill_writer_at(point: str, uri: str, collection: str, folder: Path) -> None:
    documents = folder / "batch.jsonl"
    documents.write_text("".join(document.model_dump_json() + "\n" for document in (REPLACED, ADDED)))
    errors = folder / "writer.stderr"
    with open(errors, "w") as stderr:
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, uri, collection, point, str(documents)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO_ROOT,
        )
    try:
        assert writer.stdout is not None
        line = writer.stdout.readline().decode()  # blocks until the writer reaches its point (or ends)
        assert line.split() == ["reached", point], errors.read_text()
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(timeout=30) == -signal.SIGKILL
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()


def _assert_whole(store: MilvusStore, document: Document) -> None:
    """Stored as given, with each of its chunks, and each chunk found by its own vector."""
    chunks = Chunker(CHUNK_SIZE, CHUNK_OVERLAP).split(document)
    assert store.get_document(document.doc_id).text == document.text
    assert store.chunk_count(document.doc_id) == len(chunks) > 1
    searcher = Searcher(store, FakeEncoder())
    for chunk in chunks:
        only_this = SearchFilters(doc_ids=[document.doc_id])
        (found,) = searcher.search(chunk.text, top_k=1, filters=only_this, mode="dense").passages
        assert (found.citation.char_start, found.citation.char_end) == (chunk.char_start, chunk.char_end)


def _chunk_rows(store: MilvusStore, doc_id: str) -> int:
    with store.snapshot():
        name = store._name("chunks")
    return len(store.connection.query(name, f"doc_id == {literal(doc_id)}", ["id"]))


@pytest.mark.parametrize(("point", "committed"), POINTS.items())
def test_sigkill_at_each_point_of_a_milvus_write_leaves_documents_whole_or_absent(
    point: str, committed: bool, milvus_connection: Connection, milvus_uri: str, tmp_path: Path
) -> None:
    collection = f"crash-{uuid.uuid4().hex[:10]}"
    try:
        store = _open(milvus_connection, collection)
        Indexer(store, FakeEncoder(), Chunker(CHUNK_SIZE, CHUNK_OVERLAP)).add([STORED])
        _kill_writer_at(point, milvus_uri, collection, tmp_path)

        reopened = _open(milvus_connection, collection)
        if committed:
            _assert_whole(reopened, REPLACED)
            _assert_whole(reopened, ADDED)
        else:
            _assert_whole(reopened, STORED)
            assert reopened.find_document(ADDED.doc_id) is None
            assert reopened.chunk_count(ADDED.doc_id) == 0
            found = Searcher(reopened, FakeEncoder()).search(ADDED.text[:40], top_k=5).passages
            assert {p.citation.doc_id for p in found} == {STORED.doc_id}

        # Written again, the documents keep only their committed rows (and, for GRACE_S, the rows of the
        # version the write replaced): what the killed writer left is gone.
        results = Indexer(reopened, FakeEncoder(), Chunker(CHUNK_SIZE, CHUNK_OVERLAP)).add([REPLACED, ADDED])
        assert [r.status for r in results] == (["unchanged"] * 2 if committed else ["updated", "added"])
        _assert_whole(reopened, REPLACED)
        _assert_whole(reopened, ADDED)
        chunks = Chunker(CHUNK_SIZE, CHUNK_OVERLAP)
        replaced_rows = len(chunks.split(REPLACED)) + (0 if committed else len(chunks.split(STORED)))
        assert _chunk_rows(reopened, ADDED.doc_id) == len(chunks.split(ADDED))
        if not committed:
            assert _chunk_rows(reopened, REPLACED.doc_id) == replaced_rows
    finally:
        MilvusStore.drop(milvus_connection, collection)
