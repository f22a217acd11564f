"""`citeqa migrate --to milvus`: a local collection copied into a real Milvus (milvus-lite server) as it is
stored, so that it answers as the local one did without embedding anything again."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from citeqa.collections import LocalStores
from citeqa.errors import IndexModelMismatch
from citeqa.migrate import migrate_to_milvus
from citeqa.settings import Settings
from index.chunking import Chunker
from index.ingest import Indexer
from index.milvus.connection import Connection
from index.milvus.store import MilvusStore
from index.report import parse_report
from index.search import RankingWeights, Searcher
from index.store import IndexStore, Manifest
from tests.conftest import REPO_ROOT, SAMPLE_REPORT, citeqa_command, make_document, manifest_for
from tests.fakes import FakeEncoder

pytestmark = [pytest.mark.server, pytest.mark.milvus]

# Questions written for this test.
QUESTIONS = ["晶圆代工产能为什么紧张", "量子计算原型机九章", "天津社会信用条例禁止什么", "江西物联网产业收入"]


@pytest.fixture
def chunker() -> Chunker:
    return Chunker(chunk_size=120, chunk_overlap=20)


@pytest.fixture
def settings(tmp_path: Path, milvus_uri: str) -> Settings:
    return Settings(data_dir=tmp_path / "index", milvus_uri=milvus_uri)


@pytest.fixture
def manifest(chunker: Chunker) -> Manifest:
    return manifest_for(FakeEncoder(), chunker)


@pytest.fixture
def local(
    settings: Settings, milvus_collection: str, manifest: Manifest, chunker: Chunker
) -> Iterator[IndexStore]:
    """The sample report in a local collection, embedded by the fake encoder."""
    store = IndexStore.open(LocalStores(settings.data_dir).folder(milvus_collection), manifest)
    Indexer(store, FakeEncoder(), chunker).add(
        parse_report(SAMPLE_REPORT.read_text(encoding="utf-8"), SAMPLE_REPORT.name)
    )
    yield store
    store.close()


def _searcher(store) -> Searcher:
    weights = RankingWeights(answerable_threshold_cjk=-1.0, answerable_threshold_other=-1.0)
    return Searcher(store, FakeEncoder(), weights)


def test_a_local_collection_is_copied_whole_and_answers_as_before(
    settings: Settings,
    milvus_collection: str,
    local: IndexStore,
    milvus_connection: Connection,
    manifest: Manifest,
) -> None:
    documents, chunks = local.counts()
    migration = migrate_to_milvus(settings, milvus_collection)
    assert (migration.copied, migration.unchanged, migration.chunks) == (documents, 0, chunks)

    milvus = MilvusStore.open(milvus_connection, milvus_collection, manifest)
    try:
        assert milvus.counts() == (documents, chunks)
        for stored in local.list_documents():
            assert milvus.get_document(stored.doc_id) == local.get_document(stored.doc_id)
            assert milvus.chunk_count(stored.doc_id) == local.chunk_count(stored.doc_id)
        for question in QUESTIONS:
            before = _searcher(local).search(question, top_k=5)
            after = _searcher(milvus).search(question, mode="dense", top_k=5)
            dense_before = _searcher(local).search(question, mode="dense", top_k=5)
            # The vectors were copied, not re-embedded: dense search ranks the same passages, same scores.
            assert [p.citation for p in after.passages] == [p.citation for p in dense_before.passages]
            assert np.allclose([p.score for p in after.passages], [p.score for p in dense_before.passages])
            assert (
                before.passages[0].citation.doc_id
                == _searcher(milvus).search(question, top_k=5).passages[0].citation.doc_id
            )
    finally:
        milvus.close()


def test_running_it_again_copies_only_what_changed(
    settings: Settings, milvus_collection: str, local: IndexStore, chunker: Chunker
) -> None:
    documents, _ = local.counts()
    migrate_to_milvus(settings, milvus_collection)
    changed = local.get_document(local.list_documents()[0].doc_id)
    Indexer(local, FakeEncoder(), chunker).add(
        [changed.model_copy(update={"text": changed.text + "补充一句。"})]
    )
    Indexer(local, FakeEncoder(), chunker).add([make_document("新增文章", "这是一篇新增的文章。")])
    again = migrate_to_milvus(settings, milvus_collection)
    assert (again.copied, again.unchanged) == (2, documents - 1)


def test_a_milvus_collection_of_another_model_is_refused_and_left_alone(
    settings: Settings,
    milvus_collection: str,
    local: IndexStore,
    milvus_connection: Connection,
    manifest: Manifest,
) -> None:
    other = MilvusStore.open(
        milvus_connection, milvus_collection, manifest.model_copy(update={"model": "another-model"})
    )
    other.close()
    with pytest.raises(IndexModelMismatch, match="another-model"):
        migrate_to_milvus(settings, milvus_collection)
    reopened = MilvusStore.open(
        milvus_connection, milvus_collection, manifest.model_copy(update={"model": "another-model"})
    )
    assert reopened.counts() == (0, 0)
    reopened.close()


def test_the_command_copies_and_reports_and_its_errors_say_what_to_fix_without_a_traceback(
    settings: Settings, milvus_collection: str, local: IndexStore, milvus_uri: str
) -> None:
    documents, _ = local.counts()
    env = {**os.environ, "CITEQA_DATA_DIR": str(settings.data_dir), "CITEQA_MILVUS_URI": milvus_uri}
    done = subprocess.run(
        citeqa_command("migrate", "--to", "milvus", "-c", milvus_collection),
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"Copied {documents} documents" in done.stdout
    for arguments, message in (
        (["-c", "no-such-collection"], "No local index for collection 'no-such-collection'"),
        (["-c", milvus_collection, "--to", "faiss"], "'faiss' is not one of 'milvus'"),
    ):
        failed = subprocess.run(
            citeqa_command("migrate", "--to", "milvus", *arguments),
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert failed.returncode != 0
        assert message in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr
