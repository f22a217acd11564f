"""Wiring ingest to the embedding cache: on by default beside the index, off at 0 MB, int8 vectors kept
apart, and with the real model a reindex with unchanged chunking embeds nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from citeqa.wiring import Resources, load_encoder, passage_encoder
from embeddings.passage_cache import PassageCache
from index.readers import read_path
from tests.conftest import SAMPLE_REPORT, fake_settings, make_document
from tests.embeddings.test_embedded import shared_model_cache
from tests.fakes import FakeEncoder

TEXT = "工信部近一个月开展了逾10次5G调研。调研覆盖了多个省份的制造企业！China has built 700,000 5G base stations."


@pytest.mark.parametrize(("cache_mb", "reembedded"), [(512, 0), (0, 1)])
def test_ingest_embeds_through_a_cache_beside_the_index_unless_it_is_off_and_a_reindex_then_embeds_nothing(
    tmp_path: Path, cache_mb: int, reembedded: int
) -> None:
    settings = fake_settings(tmp_path / "data", translate_questions=False, embedding_cache_mb=cache_mb)
    model = FakeEncoder()
    resources = Resources.from_encoder(settings, model)
    try:
        indexer = resources.collection().indexer
        indexer.add([make_document("5G", TEXT * 4)])
        embedded = model.passages_encoded

        indexer.reindex()

        assert model.passages_encoded == embedded * (1 + reembedded) and embedded > 0
        assert isinstance(indexer.encoder, PassageCache) == (cache_mb > 0)
        assert (tmp_path / "data" / "embedding-cache.sqlite3").exists() == (cache_mb > 0)
    finally:
        resources.close()


def test_int8_vectors_are_cached_under_their_own_model_key(tmp_path: Path) -> None:
    fp32, _ = passage_encoder(fake_settings(tmp_path, embedding_cache=tmp_path / "c.sqlite3"), FakeEncoder())
    int8, _ = passage_encoder(fake_settings(tmp_path, quantize=True), FakeEncoder())

    assert isinstance(fp32, PassageCache) and isinstance(int8, PassageCache)
    assert (fp32.model, int8.model) == ("fake-bigram-64", "fake-bigram-64+int8")
    assert fp32.vectors.path == tmp_path / "c.sqlite3"
    assert int8.vectors.path == tmp_path / "embedding-cache.sqlite3"


@pytest.mark.model
@pytest.mark.parametrize("sentence_vectors", ["separate", "late"])
def test_with_the_real_model_a_reindex_with_unchanged_chunking_embeds_nothing(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, sentence_vectors: str
) -> None:
    settings = fake_settings(
        tmp_path / "data",
        translate_questions=False,
        embedding_model="embedded",
        model_cache=shared_model_cache(tmp_path_factory),
        sentence_vectors=sentence_vectors,
    )
    resources = Resources.from_encoder(settings, load_encoder(settings))
    try:
        indexer = resources.collection().indexer
        assert isinstance(indexer.encoder, PassageCache)
        indexer.add(read_path(SAMPLE_REPORT).documents[:2])
        embedded = indexer.encoder.embedded

        indexer.reindex()

        assert indexer.encoder.embedded == embedded > 0
    finally:
        resources.close()
