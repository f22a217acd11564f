from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.chunking import Chunker, matching_text, sentence_spans
from index.documents import Document, PageStart

CHINESE = "工信部年底密集调研前沿科技行业加快推动产业高质量发展我国基站建设处于全球领先地位"
PUNCTUATION = "。，、；！？“”（）：\n\n \n"

mixed_text = st.text(
    alphabet=st.sampled_from(list(CHINESE + PUNCTUATION + "5G AI abc XYZ 0123456789.,;!?")),
    min_size=0,
    max_size=3000,
)


@settings(max_examples=150, deadline=None)
@given(text=mixed_text, size=st.integers(min_value=20, max_value=600), overlap_share=st.floats(0, 0.5))
def test_every_chunk_is_the_exact_span_of_the_document_it_cites(
    text: str, size: int, overlap_share: float
) -> None:
    document = Document(doc_id="d", title="t", text=text, source="s.txt")
    chunker = Chunker(chunk_size=size, chunk_overlap=int(size * overlap_share))
    chunks = chunker.split(document)
    for chunk in chunks:
        assert document.text[chunk.char_start : chunk.char_end] == chunk.text
        assert 0 < len(chunk.text) <= size
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    assert [c.char_start for c in chunks] == sorted(c.char_start for c in chunks)
    # Nothing but whitespace is left out between chunks.
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.char_start, chunk.char_end))
    assert all(text[i].isspace() for i in range(len(text)) if i not in covered)


def test_chinese_text_is_cut_after_sentence_ends_before_clause_marks() -> None:
    sentence = "我国5G基站建设处于全球领先地位，应用场景不断拓展。"  # 26 characters
    document = Document(doc_id="d", title="t", text=sentence * 6, source="s.txt")
    chunks = Chunker(chunk_size=60, chunk_overlap=0).split(document)
    assert all(chunk.text.endswith("。") for chunk in chunks)
    assert [len(c.text) for c in chunks] == [52, 52, 52]


def test_chunks_know_the_page_they_start_on() -> None:
    text = "第一页的内容。" * 20 + "第二页的内容。" * 20
    document = Document(
        doc_id="d",
        title="t",
        text=text,
        source="s.txt",
        page_map=[PageStart(char_start=0, page=7), PageStart(char_start=140, page=8)],
    )
    chunks = Chunker(chunk_size=70, chunk_overlap=0).split(document)
    assert [(c.char_start, c.page) for c in chunks] == [(0, 7), (70, 7), (140, 8), (210, 8)]


def test_keyword_matching_text_carries_section_and_title_as_context() -> None:
    document = Document(doc_id="d", title="云安全保障数字经济", text="正文。", source="s", section="产业环境")
    chunk = Chunker(chunk_size=50, chunk_overlap=0).split(document)[0]
    assert matching_text(document, chunk) == "产业环境 · 云安全保障数字经济\n正文。"


def test_sentences_are_located_in_the_document_and_short_fragments_left_out() -> None:
    text = "出台背景\n\n“九章”构建了76个光子的量子计算原型机。”他说。处理速度比超级计算机快一百万亿倍！"
    document = Document(doc_id="d", title="t", text="前言。" + text, source="s")
    chunk = Chunker(chunk_size=200, chunk_overlap=0).split(document)[0]
    spans = sentence_spans(chunk)
    assert [document.text[s.char_start : s.char_end] for s in spans] == [
        "“九章”构建了76个光子的量子计算原型机。”",
        "处理速度比超级计算机快一百万亿倍！",
    ]
    assert {s.chunk_index for s in spans} == {0}


@pytest.mark.parametrize(
    ("size", "overlap", "message"),
    [
        (0, 0, "chunk_size must be between 1 and 600"),
        (601, 0, "between 1 and 600"),
        (100, 100, "below chunk_size"),
    ],
)
def test_chunker_rejects_impossible_settings(size: int, overlap: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Chunker(chunk_size=size, chunk_overlap=overlap)
