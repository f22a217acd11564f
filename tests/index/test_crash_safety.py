"""A process killed with SIGKILL in the middle of a write leaves every document whole or absent.

A writer process ingests new documents in small batches. At a chosen point of its second batch it writes
`reached <point> <pid>` to its stdout and then blocks, so the test's SIGKILL lands exactly there:

- `while-embedding`: the second batch is being embedded, nothing of it written;
- `in-transaction`: its rows written inside the SQLite transaction, not committed;
- `after-commit`: committed to SQLite, no vector file saved yet (the files on disk are one batch old);
- `between-checkpoint-files`: the chunks' vector file renamed into place, the sentences' not yet;
- `after-checkpoint`: both vector files in place, the manifest and the log not yet updated.

The writer saves its vector files after every commit (its checkpoint thresholds set to 0), so that each
point is reached in the second batch. The points are reached by wrapping functions in the writer only (the
encoder's `encode_passages`, `IndexStore._write_documents`, `IndexStore._checkpoint`, `os.replace`), not
by changing product code.
One host process imports the code once and forks a writer per point, each on its own index.
Reopened, an index must hold the earlier documents and the first batch whole and searchable, the
second batch wholly if (and only if) it was committed, and nothing of any later batch.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from index.chunking import Chunker, sentence_spans
from index.documents import Document
from index.ingest import Indexer
from index.search import Searcher, SearchFilters
from index.storage.documents import DATABASE_FILE, UNIT_KINDS
from index.storage.vectors import FaissVectorIndex
from index.store import VECTOR_FILES, IndexStore
from tests.conftest import REPO_ROOT, make_document, manifest_for
from tests.fakes import FakeEncoder

CHUNK_SIZE, CHUNK_OVERLAP = 120, 20
# Each new document makes 2 chunks; the child commits every 8 chunks, so every batch holds 4 documents.
COMMIT_EVERY_CHUNKS = 8
DOCUMENTS_PER_BATCH = 4
KILLED_BATCH = 2  # the kill lands in the second batch: the first one is committed whole before it

EARLIER = [make_document(f"早先的文章{i}", f"第{i}篇早先文章讲述量子计算与芯片产业。" * 8) for i in range(5)]
NEW = [
    make_document(
        f"新文章{i}",
        "".join(f"第{i}篇新文章的第{j}段说，显示面板出货量同比增长{i * 7 + j}个百分点。" for j in range(6)),
    )
    for i in range(4 * DOCUMENTS_PER_BATCH)
]
BATCHES = [NEW[start : start + DOCUMENTS_PER_BATCH] for start in range(0, len(NEW), DOCUMENTS_PER_BATCH)]

# The host: argv is the documents file (JSONL), then a point and its index folder for each writer. It
# prints "forked <point> <pid>" per writer, each writer "reached <point> <pid>" where it blocks, and the
# host "exited <point> <signal number or exit status>" as each one ends. Each event line starts with
# EVENT_MARKER, so that whatever else a library prints on stdout cannot be taken for an event.
EVENT_MARKER = "crash-test-event"
HOST = textwrap.dedent(
    """
    import os, sys, time, traceback
    from pathlib import Path

    sys.path.insert(0, {repo!r})
    import jieba
    import index.ingest as ingest_module
    import index.store as store_module
    from index.chunking import Chunker
    from index.documents import Document
    from index.ingest import Indexer
    from index.store import VECTOR_FILES, IndexStore, Manifest
    from tests.fakes import FakeEncoder

    jieba.initialize()  # once, before the writers fork
    documents = [Document.model_validate_json(line) for line in Path(sys.argv[1]).read_text().splitlines()]
    point, batch = None, 0

    def event(*words):
        # One write(2) per line, atomic on a pipe: print() may write the words apart, and the writers'
        # lines would then interleave.
        os.write(1, (" ".join(map(str, ({marker!r},) + words)) + "\\n").encode())

    def at(name):
        if name == point and batch == {killed_batch}:
            event("reached", point, os.getpid())
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # until the test's SIGKILL, which comes at once
                time.sleep(0.05)
            os._exit(3)

    class Encoder(FakeEncoder):
        def encode_passages(self, texts, on_progress=None):
            global batch
            batch += 1  # the indexer embeds each batch once, then upserts it
            at("while-embedding")
            return super().encode_passages(texts, on_progress)

    write_documents = IndexStore._write_documents
    def _write_documents(self, write, items):
        write_documents(self, write, items)
        at("in-transaction")
    IndexStore._write_documents = _write_documents

    checkpoint = IndexStore._checkpoint
    def _checkpoint(self):
        at("after-commit")
        checkpoint(self)
    IndexStore._checkpoint = _checkpoint

    replace = os.replace
    def _replace(source, destination, *args, **kwargs):
        replace(source, destination, *args, **kwargs)
        if Path(destination).name == VECTOR_FILES["chunks"]:
            at("between-checkpoint-files")
        if Path(destination).name == VECTOR_FILES["sentences"]:
            at("after-checkpoint")
    os.replace = _replace
    ingest_module.COMMIT_EVERY_CHUNKS = {commit_every}
    store_module.CHECKPOINT_MIN_CHANGES, store_module.CHECKPOINT_SHARE = 0, 0.0

    def write(directory):
        encoder, chunker = Encoder(), Chunker({chunk_size}, {chunk_overlap})
        manifest = Manifest(model=encoder.name, dimension=encoder.dimension, chunking=chunker.settings)
        Indexer(IndexStore.open(Path(directory), manifest), encoder, chunker).add(documents)

    writers = {{}}
    for point, directory in zip(sys.argv[2::2], sys.argv[3::2]):  # `point`: the global `at` reads
        pid = os.fork()
        if pid == 0:
            try:
                write(directory)
            except BaseException:
                traceback.print_exc()
                os._exit(5)
            os._exit(4)  # the point was never reached
        writers[pid] = point
        event("forked", point, pid)
    while writers:
        pid, status = os.wait()
        ended = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        event("exited", writers.pop(pid), ended)
    """
).format(
    repo=str(REPO_ROOT),
    marker=EVENT_MARKER,
    killed_batch=KILLED_BATCH,
    chunk_size=CHUNK_SIZE,
    chunk_overlap=CHUNK_OVERLAP,
    commit_every=COMMIT_EVERY_CHUNKS,
)


@dataclass(frozen=True)
class OnDisk:
    """What a killed writer left on disk, read before any CiteQA code opens (and repairs) the index."""

    generation: int
    rows: dict[str, int]
    """Chunks and sentences committed."""
    saved: dict[str, tuple[int, int]]
    """Each kind's vector file: (the generation it holds, its vectors)."""


def _on_disk(directory: Path) -> OnDisk:
    # A plain read: SQLite sees the last committed state (an uncommitted write is not in it).
    with contextlib.closing(sqlite3.connect(directory / DATABASE_FILE)) as db:
        generation = int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
        rows = {kind: db.execute(f"SELECT COUNT(*) FROM {kind}").fetchone()[0] for kind in UNIT_KINDS}
    files = {kind: FaissVectorIndex.load(directory / name) for kind, name in VECTOR_FILES.items()}
    saved = {kind: (index.metadata["generation"], len(index)) for kind, index in files.items()}
    return OnDisk(generation, rows, saved)


def _open(directory: Path) -> IndexStore:
    return IndexStore.open(directory, manifest_for(FakeEncoder(), Chunker(CHUNK_SIZE, CHUNK_OVERLAP)))


def _index_with_earlier_documents(directory: Path) -> None:
    encoder, chunker = FakeEncoder(), Chunker(CHUNK_SIZE, CHUNK_OVERLAP)
    store = IndexStore.open(directory, manifest_for(encoder, chunker))
    Indexer(store, encoder, chunker).add(EARLIER)
    store.close()


def _events(
    process: subprocess.Popen[bytes], deadline: float, errors: Path, stray: list[str]
) -> Iterator[tuple[str, str, int]]:
    """The host's events as (event, point, number); other stdout lines go to `stray`, for failures.

    Fails the test if the host falls silent for too long.
    """
    assert process.stdout is not None
    pending = b""
    while True:
        while b"\n" not in pending:
            ready, _, _ = select.select([process.stdout], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                pytest.fail(
                    "the writers did not all reach their points in time:\n"
                    + errors.read_text()
                    + "".join(f"\nstdout: {line}" for line in stray)
                )
            read = os.read(process.stdout.fileno(), 4096)
            if not read:
                return
            pending += read
        line, pending = pending.split(b"\n", 1)
        match line.decode(errors="replace").split():
            case [marker, event, point, number] if marker == EVENT_MARKER:
                yield event, point, int(number)
            case _:
                stray.append(line.decode(errors="replace"))


def _assert_whole(store: IndexStore, document: Document, chunker: Chunker) -> None:
    """Stored as given, with each of its chunks, and each chunk found by its own vector."""
    assert store.get_document(document.doc_id).text == document.text
    chunks = chunker.split(document)
    assert store.chunk_count(document.doc_id) == len(chunks) > 1
    searcher = Searcher(store, FakeEncoder())
    only_this = SearchFilters(doc_ids=[document.doc_id])
    for chunk in chunks:
        # Dense only: a chunk whose vector is missing from FAISS gets the lowest similarity and loses.
        (found,) = searcher.search(chunk.text, top_k=1, filters=only_this, mode="dense").passages
        assert (found.citation.char_start, found.citation.char_end) == (chunk.char_start, chunk.char_end)


def _assert_absent(store: IndexStore, document: Document) -> None:
    assert store.find_document(document.doc_id) is None
    assert store.chunk_count(document.doc_id) == 0


# Each point, and whether the second batch is committed (so kept) when the writer dies there.
POINTS = {
    "while-embedding": False,
    "in-transaction": False,
    "after-commit": True,
    "between-checkpoint-files": True,
    "after-checkpoint": True,
}


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each point's index folder, with the earlier documents, its writer killed at that point."""
    folder = tmp_path_factory.mktemp("crash")
    documents = folder / "new.jsonl"
    documents.write_text("".join(document.model_dump_json() + "\n" for document in NEW))
    directories = {point: folder / point for point in POINTS}
    for directory in directories.values():
        _index_with_earlier_documents(directory)
    errors = folder / "host.stderr"
    arguments = [str(part) for pair in directories.items() for part in pair]
    with open(errors, "w") as stderr:
        host = subprocess.Popen(
            [sys.executable, "-c", HOST, str(documents), *arguments],
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO_ROOT,
        )
    writers: dict[str, int] = {}
    ended: dict[str, int] = {}
    stray: list[str] = []
    try:
        for event, point, number in _events(host, time.monotonic() + 120, errors, stray):
            if event == "forked":
                writers[point] = number
            elif event == "reached":  # the writer's own pid: it may print before the host does
                writers[point] = number
                os.kill(writers[point], signal.SIGKILL)
            else:
                ended[point] = number
        assert host.wait(timeout=10) == 0, errors.read_text()
    finally:
        for point, pid in writers.items():
            if point not in ended:  # the test failed before this writer ended: do not leave it behind
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if host.poll() is None:
            host.kill()
            host.wait()
        assert host.stdout is not None
        host.stdout.close()
    # Each writer died of the SIGKILL sent where it stopped (4: it never reached its point, 5: it failed).
    assert ended == {point: -signal.SIGKILL for point in POINTS}, "\n".join([errors.read_text(), *stray])
    return directories


@pytest.mark.parametrize(("point", "second_batch_kept"), POINTS.items())
def test_sigkill_at_each_point_of_a_write_leaves_documents_whole_or_absent(
    killed: dict[str, Path], point: str, second_batch_kept: bool
) -> None:
    chunker = Chunker(CHUNK_SIZE, CHUNK_OVERLAP)
    assert {len(chunker.split(document)) for document in NEW} == {2}  # so the batches are BATCHES
    directory = killed[point]

    # The kill landed where it was meant to: the files tell the point apart.
    disk = _on_disk(directory)
    if second_batch_kept:
        # Committed; each vector file holds the new generation once saved, else the one before it.
        saved = {
            "chunks": point != "after-commit",
            "sentences": point == "after-checkpoint",
        }
        sentences_per_batch = sum(
            len(sentence_spans(chunk)) for document in BATCHES[1] for chunk in chunker.split(document)
        )
        for kind, new_rows in (("chunks", DOCUMENTS_PER_BATCH * 2), ("sentences", sentences_per_batch)):
            if saved[kind]:
                assert disk.saved[kind] == (disk.generation, disk.rows[kind])
            else:
                assert disk.saved[kind] == (disk.generation - 1, disk.rows[kind] - new_rows)
    else:
        assert disk.saved == {kind: (disk.generation, disk.rows[kind]) for kind in UNIT_KINDS}

    store = _open(directory)
    try:
        kept = EARLIER + BATCHES[0] + (BATCHES[1] if second_batch_kept else [])
        lost = [document for batch in BATCHES[1:] for document in batch if document not in kept]
        for document in kept:
            _assert_whole(store, document, chunker)
        for document in lost:
            _assert_absent(store, document)
        assert [d.doc_id for d in store.list_documents()] == [d.doc_id for d in kept]
        # Whole documents across the index too, and the FAISS indexes hold exactly the stored units.
        searcher = Searcher(store, FakeEncoder())
        for document in EARLIER:
            assert searcher.search(document.text[:12], top_k=1).passages[0].citation.doc_id == document.doc_id
        assert store.vector_counts() == _on_disk(directory).rows
    finally:
        store.close()
