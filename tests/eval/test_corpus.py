from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from citeqa.errors import CorpusError
from eval.corpus import build_corpus_index, cache_root_for, corpus_files, corpus_key
from index.chunking import Chunker, ChunkingSettings
from index.search import Searcher
from index.store import IndexStore
from tests.conftest import manifest_for
from tests.fakes import FakeEncoder

ARTICLES = [
    {"doc_id": "quantum", "title": "量子计算", "text": "九章量子计算原型机求解高斯玻色取样只需200秒。"},
    {"doc_id": "display", "title": "显示产业", "text": "Micro-LED有望重塑显示技术格局，面板出货创新高。"},
]
CHUNKING = ChunkingSettings(chunk_size=120, chunk_overlap=20)


def _write_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(article, ensure_ascii=False) for article in ARTICLES]
    (folder / "articles.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "notes").mkdir(exist_ok=True)
    (folder / "notes" / "extra.md").write_text("# 5G建设\n\n我国已建成5G基站超过70万个。\n", encoding="utf-8")
    return folder


def _key(paths: list[Path], model: str = "m", chunking: ChunkingSettings = CHUNKING) -> str:
    return corpus_key(corpus_files(paths), model, chunking)


def test_corpus_files_lists_a_folder_recursively_by_the_names_the_readers_give(tmp_path):
    corpus = _write_corpus(tmp_path / "corpus")
    files = corpus_files([corpus])
    assert [(file.source, file.path) for file in files] == [
        ("articles.jsonl", corpus / "articles.jsonl"),
        ("notes/extra.md", corpus / "notes" / "extra.md"),
    ]


def test_cache_key_ignores_modification_times(tmp_path):
    corpus = _write_corpus(tmp_path / "corpus")
    before = _key([corpus])
    os.utime(corpus / "articles.jsonl", (1_000_000, 1_000_000))
    assert _key([corpus]) == before


def test_cache_key_changes_when_one_byte_of_a_file_changes(tmp_path):
    corpus = _write_corpus(tmp_path / "corpus")
    before = _key([corpus])
    extra = corpus / "notes" / "extra.md"
    extra.write_bytes(extra.read_bytes().replace("70万".encode(), "71万".encode()))
    assert _key([corpus]) != before


def test_cache_key_changes_with_a_file_name_since_doc_ids_derive_from_it(tmp_path):
    corpus = _write_corpus(tmp_path / "corpus")
    before = _key([corpus])
    (corpus / "notes" / "extra.md").rename(corpus / "notes" / "renamed.md")
    assert _key([corpus]) != before


def test_cache_key_does_not_depend_on_the_order_of_the_paths(tmp_path):
    corpus = _write_corpus(tmp_path / "corpus")
    first, second = corpus / "articles.jsonl", corpus / "notes"
    assert _key([first, second]) == _key([second, first])


def test_cache_key_changes_with_the_model_and_the_chunking(tmp_path):
    corpus = _write_corpus(tmp_path / "corpus")
    keys = {
        _key([corpus]),
        _key([corpus], model="other-model"),
        _key([corpus], chunking=ChunkingSettings(chunk_size=120, chunk_overlap=30)),
    }
    assert len(keys) == 3


def test_cache_root_sits_beside_the_configured_index_folder(tmp_path):
    assert cache_root_for(tmp_path / "var" / "index") == tmp_path / "var" / "eval-cache"


def test_second_build_reuses_the_cached_index_without_embedding_again(tmp_path, chunker: Chunker):
    corpus = _write_corpus(tmp_path / "corpus")
    encoder = FakeEncoder()
    first = build_corpus_index([corpus], encoder, chunker, tmp_path / "cache")
    embedded = encoder.passages_encoded
    second = build_corpus_index([corpus], encoder, chunker, tmp_path / "cache")
    assert embedded > 0
    assert encoder.passages_encoded == embedded
    assert (first.reused, second.reused) == (False, True)
    assert second.directory == first.directory == tmp_path / "cache" / first.key
    assert (second.documents, second.chunks) == (first.documents, first.chunks) == (3, 3)


def test_a_changed_file_builds_a_new_index_beside_the_old_one(tmp_path, chunker: Chunker):
    corpus = _write_corpus(tmp_path / "corpus")
    encoder = FakeEncoder()
    first = build_corpus_index([corpus], encoder, chunker, tmp_path / "cache")
    (corpus / "notes" / "extra.md").write_text("# 5G建设\n\n5G终端连接数突破1.8亿。\n", encoding="utf-8")
    embedded = encoder.passages_encoded
    second = build_corpus_index([corpus], encoder, chunker, tmp_path / "cache")
    assert second.reused is False
    assert second.key != first.key
    assert encoder.passages_encoded > embedded
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == sorted([first.key, second.key])


def test_the_cached_index_keeps_jsonl_doc_ids_and_answers_searches(tmp_path, chunker: Chunker):
    corpus = _write_corpus(tmp_path / "corpus")
    encoder = FakeEncoder()
    built = build_corpus_index([corpus], encoder, chunker, tmp_path / "cache")
    store = IndexStore.open(built.directory, manifest_for(encoder, chunker))
    try:
        doc_ids = [summary.doc_id for summary in store.list_documents()]
        passages = Searcher(store, encoder).search("九章量子计算需要多少秒", top_k=1, mode="dense").passages
    finally:
        store.close()
    assert doc_ids[:2] == ["quantum", "display"]
    assert [passage.citation.doc_id for passage in passages] == ["quantum"]


class _FailingEncoder(FakeEncoder):
    def encode_passages(self, texts, on_progress=None):
        raise RuntimeError("model crashed mid-build")


def test_an_interrupted_build_leaves_nothing_in_the_cache(tmp_path, chunker: Chunker):
    corpus = _write_corpus(tmp_path / "corpus")
    with pytest.raises(RuntimeError, match="mid-build"):
        build_corpus_index([corpus], _FailingEncoder(), chunker, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_missing_corpus_path_is_named_in_the_error(tmp_path, chunker: Chunker):
    with pytest.raises(CorpusError, match=r"No such corpus file or folder: .*missing\.jsonl"):
        build_corpus_index([tmp_path / "missing.jsonl"], FakeEncoder(), chunker, tmp_path / "cache")


def test_a_corpus_without_a_readable_article_is_refused_and_not_cached(tmp_path, chunker: Chunker):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"title": "no text"}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"No article could be read from .*broken\.jsonl"):
        build_corpus_index([broken], FakeEncoder(), chunker, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []
