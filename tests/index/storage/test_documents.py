from __future__ import annotations

from pathlib import Path

import numpy as np

from index.chunking import Chunker, sentence_spans
from index.storage.documents import DocumentStore, IndexedDocument
from tests.conftest import make_document

ARTICLES = [
    make_document(
        f"第{i}篇", "".join(f"第{i}篇的第{j}句说，产值增长了{j}个百分点。" for j in range(12)), page=i + 1
    )
    for i in range(3)
]


def _indexed(chunker: Chunker) -> list[IndexedDocument]:
    items = []
    for document in ARTICLES:
        chunks = chunker.split(document)
        # Sentences listed chunk by chunk in reverse: the store must still give each chunk a range of ids.
        sentences = [span for chunk in reversed(chunks) for span in sentence_spans(chunk)]
        items.append(
            IndexedDocument(
                document=document,
                content_hash="hash",
                chunks=chunks,
                chunk_vectors=np.ones((len(chunks), 4), dtype=np.float32),
                chunk_terms=[[] for _ in chunks],
                sentences=sentences,
                sentence_vectors=np.ones((len(sentences), 4), dtype=np.float32),
            )
        )
    return items


def test_the_sentences_of_chunks_found_from_their_ranges_are_those_stored_for_them(tmp_path: Path) -> None:
    documents = DocumentStore.open(tmp_path)
    with documents.writing() as write:
        documents.put(write, _indexed(Chunker(chunk_size=60, chunk_overlap=10)))
    chunk_ids = documents.ids("chunks")
    assert chunk_ids.size > len(ARTICLES)  # several chunks per article
    for chunk_id in chunk_ids:
        rows = documents.sentences_of_chunks([int(chunk_id)])
        ids, chunks = documents.sentence_ids_of_chunks([int(chunk_id)])
        assert ids.tolist() == rows.ids.tolist() and set(chunks.tolist()) == {int(chunk_id)}
    some = chunk_ids[::2]
    ids, chunks = documents.sentence_ids_of_chunks(some)
    rows = documents.sentences_of_chunks(some)
    assert ids.tolist() == rows.ids.tolist() and chunks.tolist() == rows.chunk_ids.tolist()
    documents.close()


def test_a_filter_of_more_values_than_sqlite_binds_still_finds_the_chunks(tmp_path: Path) -> None:
    documents = DocumentStore.open(tmp_path)
    with documents.writing() as write:
        documents.put(write, _indexed(Chunker(chunk_size=60, chunk_overlap=10)))
    wanted = ARTICLES[1].doc_id
    many = [f"missing-{i}" for i in range(300_000)] + [wanted]  # past SQLite's 250,000 bound values
    found = documents.chunk_ids_matching(sections=["产业环境", *many[:40_000]], doc_ids=many)
    assert found.tolist() == documents.chunk_ids_matching([], [wanted]).tolist()
    assert found.size > 0
    documents.close()
