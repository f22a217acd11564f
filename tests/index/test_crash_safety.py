"""A process killed in the middle of a write leaves every earlier document whole and searchable."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from index.chunking import Chunker
from index.ingest import Indexer
from index.search import Searcher
from index.store import IndexStore
from tests.conftest import REPO_ROOT, make_document, manifest_for
from tests.fakes import FakeEncoder

EARLIER = [make_document(f"早先的文章{i}", f"第{i}篇早先文章讲述量子计算与芯片产业。" * 8) for i in range(5)]

# The child ingests 40 new documents in batches; `CRASH` picks where it dies.
CHILD = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {repo!r})
    from index import store as store_module
    from index.chunking import Chunker
    from index.ingest import Indexer
    from index.store import IndexStore
    from tests.conftest import make_document, manifest_for
    from tests.fakes import FakeEncoder

    crash = sys.argv[1]
    encoder, chunker = FakeEncoder(), Chunker(120, 20)

    class SlowEncoder(FakeEncoder):
        def encode_passages(self, texts, on_progress=None):
            print("embedding", flush=True)
            time.sleep(0.3)
            return super().encode_passages(texts, on_progress)

    if crash == "inside-transaction":
        original = IndexStore._write_documents
        def write_then_die(db, items):
            original(db, items)
            os._exit(9)  # rows written, transaction not committed
        IndexStore._write_documents = staticmethod(write_then_die)
    if crash == "before-faiss-rename":
        def die(*args, **kwargs):
            os._exit(9)  # committed to SQLite, FAISS file not yet replaced
        store_module.os.replace = die

    store = IndexStore.open(__import__("pathlib").Path(sys.argv[2]), manifest_for(encoder, chunker))
    store_module.COMMIT_EVERY_CHUNKS = 16
    import index.ingest as ingest_module
    ingest_module.COMMIT_EVERY_CHUNKS = 16
    new = [make_document(f"新文章{{i}}", f"第{{i}}篇新文章讲述显示面板出货量。" * 8) for i in range(40)]
    Indexer(store, SlowEncoder() if crash == "sigkill" else encoder, chunker).add(new)
    print("finished", flush=True)
    """
).format(repo=str(REPO_ROOT))


def _index_with_earlier_documents(directory: Path) -> None:
    encoder, chunker = FakeEncoder(), Chunker(120, 20)
    store = IndexStore.open(directory, manifest_for(encoder, chunker))
    Indexer(store, encoder, chunker).add(EARLIER)
    store.close()


def _assert_earlier_documents_whole(directory: Path) -> IndexStore:
    encoder, chunker = FakeEncoder(), Chunker(120, 20)
    store = IndexStore.open(directory, manifest_for(encoder, chunker))
    ids = {d.doc_id for d in store.list_documents()}
    assert {d.doc_id for d in EARLIER} <= ids
    for document in EARLIER:
        assert store.get_document(document.doc_id).text == document.text
        hits = Searcher(store, encoder).search(document.text[:12], top_k=1).passages
        assert hits[0].citation.doc_id == document.doc_id
    # Every stored chunk is searchable: the FAISS index holds exactly the stored chunks.
    assert store.vector_counts()["chunks"] == store.counts()[1]
    return store


def test_sigkill_in_the_middle_of_an_ingest_keeps_earlier_documents(tmp_path: Path) -> None:
    directory = tmp_path / "idx"
    _index_with_earlier_documents(directory)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, "sigkill", str(directory)], stdout=subprocess.PIPE, text=True
    )
    seen = 0
    assert child.stdout is not None
    for line in child.stdout:
        seen += line.startswith("embedding")
        if seen == 3:  # two batches committed, the third being embedded
            break
    time.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    store = _assert_earlier_documents_whole(directory)
    documents, _ = store.counts()
    assert len(EARLIER) < documents < len(EARLIER) + 40  # some batches landed whole, not all
    store.close()


@pytest.mark.parametrize("crash", ["inside-transaction", "before-faiss-rename"])
def test_dying_at_the_worst_moment_of_a_write_leaves_a_consistent_index(tmp_path: Path, crash: str) -> None:
    directory = tmp_path / "idx"
    _index_with_earlier_documents(directory)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, crash, str(directory)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 9, result.stderr
    store = _assert_earlier_documents_whole(directory)
    documents, _ = store.counts()
    if crash == "inside-transaction":
        assert documents == len(EARLIER)  # the uncommitted batch is gone entirely
    else:
        assert documents == len(EARLIER) + 8  # the committed first batch (8 documents of 2 chunks) is kept
    store.close()
