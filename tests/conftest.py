from __future__ import annotations

from pathlib import Path

import pytest

from index.chunking import Chunker
from index.documents import Document, PageStart, make_doc_id
from index.ingest import Indexer
from index.store import IndexStore, Manifest
from tests.fakes import FakeEncoder

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
SAMPLE_REPORT = REPO_ROOT / "data" / "sample" / "info-industry-monitor-2020-12.txt"


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def chunker() -> Chunker:
    return Chunker(chunk_size=120, chunk_overlap=20)


def manifest_for(encoder: FakeEncoder, chunker: Chunker) -> Manifest:
    return Manifest(model=encoder.name, dimension=encoder.dimension, chunking=chunker.settings)


@pytest.fixture
def store(tmp_path: Path, fake_encoder: FakeEncoder, chunker: Chunker):
    opened = IndexStore.open(tmp_path / "index", manifest_for(fake_encoder, chunker))
    yield opened
    opened.close()


@pytest.fixture
def indexer(store: IndexStore, fake_encoder: FakeEncoder, chunker: Chunker) -> Indexer:
    return Indexer(store, fake_encoder, chunker)


def make_document(title: str, text: str, section: str | None = "产业环境", page: int | None = 3) -> Document:
    return Document(
        doc_id=make_doc_id("test.txt", title),
        title=title,
        text=text,
        source="test.txt",
        section=section,
        page_map=[PageStart(char_start=0, page=page)] if page else [],
    )
