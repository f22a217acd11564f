"""The Indexer's two ways to make sentence vectors, and what the embedding cache spares it: a reindex with
unchanged chunking embeds nothing, after a chunking change only the new chunk texts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embeddings.passage_cache import PassageCache, VectorFile
from index.chunking import Chunker, sentence_spans
from index.ingest import Indexer
from index.storage.documents import IndexedDocument
from index.store import IndexStore
from tests.conftest import make_document, manifest_for
from tests.fakes import FakeEncoder

TEXT = (
    "工信部近一个月开展了逾10次5G调研。调研覆盖了多个省份的制造企业！"
    "China has built more than 700,000 5G base stations. The pace is still rising; operators keep building.\n"
    "“九章”量子计算原型机构建了76个光子的量子线路。它的速度远超超级计算机。"
) * 3


class QueriesOnly:
    """An encoder without late chunking: it embeds each text alone."""

    name, dimension = "fake-bigram-64", 64

    def encode_queries(self, texts):  # type: ignore[no-untyped-def]
        return FakeEncoder().encode_queries(texts)

    def encode_passages(self, texts, on_progress=None):  # type: ignore[no-untyped-def]
        return FakeEncoder().encode_passages(texts, on_progress)


@pytest.fixture
def written(store: IndexStore, monkeypatch: pytest.MonkeyPatch) -> list[IndexedDocument]:
    """What the Indexer hands the store, by ingest and by reindex, in order."""
    items: list[IndexedDocument] = []
    upsert, replace_all = store.upsert, store.replace_all

    def recording_upsert(batch):  # type: ignore[no-untyped-def]
        items.extend(batch)
        upsert(batch)

    def recording_replace_all(manifest, batch):  # type: ignore[no-untyped-def]
        items.extend(batch)
        replace_all(manifest, batch)

    monkeypatch.setattr(store, "upsert", recording_upsert)
    monkeypatch.setattr(store, "replace_all", recording_replace_all)
    return items


def sentence_vectors_of(written: list[IndexedDocument], doc_id: str) -> np.ndarray:
    """The sentence vectors last written for `doc_id`."""
    return [item for item in written if item.document.doc_id == doc_id][-1].sentence_vectors


def test_late_sentence_vectors_come_from_each_chunks_own_pass_one_per_sentence_of_each_chunk(
    store: IndexStore, chunker: Chunker, written: list[IndexedDocument]
) -> None:
    encoder = FakeEncoder()
    document = make_document("5G", TEXT)
    progress: list[tuple[int, int]] = []

    Indexer(store, encoder, chunker, sentence_vectors="late").add(
        [document], on_progress=lambda done, total: progress.append((done, total))
    )

    chunks = chunker.split(document)
    spans = [
        [(s.char_start - c.char_start, s.char_end - c.char_start) for s in sentence_spans(c)] for c in chunks
    ]
    _, expected = FakeEncoder().encode_passage_sentences([c.text for c in chunks], spans)
    assert encoder.passages_encoded == len(chunks)  # no sentence embedded alone
    assert progress[-1] == (len(chunks) + sum(map(len, spans)),) * 2
    np.testing.assert_allclose(
        sentence_vectors_of(written, document.doc_id), np.concatenate(expected), atol=1e-6
    )


def test_separate_sentence_vectors_embed_each_distinct_sentence_alone(
    store: IndexStore, chunker: Chunker, written: list[IndexedDocument]
) -> None:
    encoder = FakeEncoder()
    document = make_document("5G", TEXT)

    Indexer(store, encoder, chunker).add([document])

    chunks = chunker.split(document)
    texts = [document.text[s.char_start : s.char_end] for c in chunks for s in sentence_spans(c)]
    assert encoder.passages_encoded == len(chunks) + len(set(texts))
    np.testing.assert_allclose(
        sentence_vectors_of(written, document.doc_id), FakeEncoder().encode_passages(texts), atol=1e-6
    )


def test_late_sentence_vectors_need_an_encoder_that_makes_them(store: IndexStore, chunker: Chunker) -> None:
    with pytest.raises(TypeError, match="QueriesOnly cannot embed sentences within their chunk"):
        Indexer(store, QueriesOnly(), chunker, sentence_vectors="late")


@pytest.mark.parametrize("sentence_vectors", ["separate", "late"])
def test_a_reindex_with_unchanged_chunking_embeds_nothing(
    tmp_path: Path, store: IndexStore, chunker: Chunker, written: list[IndexedDocument], sentence_vectors: str
) -> None:
    model = FakeEncoder()
    cached = PassageCache(model, VectorFile(tmp_path / "cache.sqlite3", 16), model.name)
    indexer = Indexer(store, cached, chunker, sentence_vectors=sentence_vectors)  # type: ignore[arg-type]
    indexer.add([make_document("5G", TEXT), make_document("量子", TEXT[::-1])])
    doc_id = make_document("5G", TEXT).doc_id
    before = sentence_vectors_of(written, doc_id)
    embedded = model.passages_encoded

    indexer.reindex()

    assert model.passages_encoded == embedded
    np.testing.assert_array_equal(sentence_vectors_of(written, doc_id), before)
    assert len(written) == 4  # two documents ingested, the same two reindexed


def test_after_a_chunking_change_only_the_new_chunk_texts_are_embedded(
    tmp_path: Path, fake_encoder: FakeEncoder
) -> None:
    cached = PassageCache(fake_encoder, VectorFile(tmp_path / "cache.sqlite3", 16), fake_encoder.name)
    old, new = Chunker(chunk_size=120, chunk_overlap=20), Chunker(chunk_size=100, chunk_overlap=20)
    document = make_document("5G", TEXT)
    store = IndexStore.open(tmp_path / "index", manifest_for(fake_encoder, old))
    Indexer(store, cached, old).add([document])
    seen = {c.text for c in old.split(document)} | {
        document.text[s.char_start : s.char_end] for c in old.split(document) for s in sentence_spans(c)
    }
    embedded = fake_encoder.passages_encoded

    Indexer(store, cached, new).reindex()
    store.close()

    now = {c.text for c in new.split(document)} | {
        document.text[s.char_start : s.char_end] for c in new.split(document) for s in sentence_spans(c)
    }
    assert 0 < fake_encoder.passages_encoded - embedded == len(now - seen)
