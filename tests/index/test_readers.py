from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from index.documents import PageStart, make_doc_id
from index.readers import SUPPORTED_EXTENSIONS, ReadProblem, read_path, read_upload

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "data" / "sample" / "info-industry-monitor-2020-12.txt"


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A PDF whose pages show the given lines in Helvetica, written with pypdf's public API."""
    writer = PdfWriter()
    helvetica = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    for lines in pages:
        page = writer.add_blank_page(width=612, height=792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): helvetica})}
        )
        content = DecodedStreamObject()
        shown = " T* ".join(f"({line}) Tj" for line in lines)
        content.set_data(f"BT /F1 12 Tf 14 TL 72 720 Td {shown} ET".encode() if lines else b"")
        page.replace_contents(content)
    if title is not None:
        writer.add_metadata({"/Title": title})
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


# --- text and Markdown ---------------------------------------------------------------------------


def test_a_text_file_is_one_article_titled_by_its_first_non_empty_line(tmp_path: Path) -> None:
    path = write(tmp_path / "notes.txt", "\n\n  云计算市场观察  \n\n第一段。\n\n第二段。\n\n")
    result = read_path(path)
    assert result.problems == []
    (document,) = result.documents
    assert document.title == "云计算市场观察"
    assert document.text == "第一段。\n\n第二段。"
    assert document.source == "notes.txt"
    assert document.doc_id == make_doc_id("notes.txt", "云计算市场观察")
    assert document.page_map == []
    assert document.page_at(0) is None


def test_markdown_takes_its_title_from_the_first_heading_wherever_it_is(tmp_path: Path) -> None:
    path = write(tmp_path / "brief.md", "Draft, do not share\n\n## Chip supply outlook ##\n\nPrices rise.\n")
    (document,) = read_path(path).documents
    assert document.title == "Chip supply outlook"
    assert document.text == "Draft, do not share\n\nPrices rise."


def test_a_setext_underline_under_the_title_is_not_text(tmp_path: Path) -> None:
    path = write(tmp_path / "brief.md", "Chip supply outlook\n===================\n\nPrices rise.")
    (document,) = read_path(path).documents
    assert (document.title, document.text) == ("Chip supply outlook", "Prices rise.")


def test_a_title_without_text_is_a_problem(tmp_path: Path) -> None:
    result = read_path(write(tmp_path / "title-only.md", "# Just a title\n"))
    assert result.documents == []
    assert result.problems == [
        ReadProblem(
            source="title-only.md",
            message="no article found: it needs a title (a '# heading' or the first line) and text after it.",
        )
    ]


@pytest.mark.parametrize("content", [b"", b"  \n\n\t\n"])
def test_an_empty_text_file_is_a_problem(tmp_path: Path, content: bytes) -> None:
    result = read_path(write(tmp_path / "empty.txt", content))
    assert result.documents == []
    assert [(p.source, p.line) for p in result.problems] == [("empty.txt", None)]
    assert result.problems[0].message.startswith("the file is empty")


def test_gb18030_text_is_decoded(tmp_path: Path) -> None:
    path = write(tmp_path / "legacy.txt", "芯片产业观察\n\n晶圆代工产能吃紧。".encode("gb18030"))
    result = read_path(path)
    assert result.problems == []
    assert [(d.title, d.text) for d in result.documents] == [("芯片产业观察", "晶圆代工产能吃紧。")]


@pytest.mark.parametrize(
    "encoded",
    [
        "\ufeff芯片产业观察\r\n\r\n晶圆代工产能吃紧。".encode(),
        "芯片产业观察\r\n\r\n晶圆代工产能吃紧。".encode("utf-16"),
    ],
    ids=["utf-8 with BOM and CRLF", "utf-16 with BOM"],
)
def test_a_bom_and_crlf_line_ends_are_dropped(tmp_path: Path, encoded: bytes) -> None:
    (document,) = read_path(write(tmp_path / "bom.txt", encoded)).documents
    assert (document.title, document.text) == ("芯片产业观察", "晶圆代工产能吃紧。")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"^binary file \(it contains NUL bytes\)"),
        (b"title\n\nbody \x1b[31m text", r"^binary file \(control character '\\x1b' at character 12\)"),
        (b"title\n\ncaf\xe9 au lait", r"^neither UTF-8 nor GB18030 text \(undecodable byte at offset 10\)"),
    ],
    ids=["NUL bytes", "control character", "undecodable"],
)
def test_unreadable_text_is_a_problem_not_a_document(tmp_path: Path, content: bytes, message: str) -> None:
    result = read_path(write(tmp_path / "odd.txt", content))
    assert result.documents == []
    (problem,) = result.problems
    assert (problem.source, problem.line) == ("odd.txt", None)
    assert re.match(message, problem.message)


# --- the monthly report --------------------------------------------------------------------------


def test_a_report_is_detected_and_split_into_its_articles(tmp_path: Path) -> None:
    result = read_path(SAMPLE)
    assert result.problems == []
    assert len(result.documents) == 34
    assert result.documents[0].title == "工信部年底密集调研前沿科技行业 加快推动 5G 产业高质量发展"
    assert {d.source for d in result.documents} == {SAMPLE.name}


def test_format_text_reads_a_report_as_one_article() -> None:
    result = read_path(SAMPLE, format="text")
    (document,) = result.documents
    assert document.title == "行业信息监测与市场分析之"
    assert document.text.startswith("信息产业篇\n\n\n\n目录")


def test_format_report_on_a_plain_text_file_is_a_problem(tmp_path: Path) -> None:
    result = read_path(write(tmp_path / "notes.txt", "标题\n\n正文。"), format="report")
    assert result.documents == []
    (problem,) = result.problems
    assert problem.source == "notes.txt"
    assert problem.message.startswith("no table of contents found; a report needs a line '目录'")


def test_format_report_forces_the_report_reader_whatever_the_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "report.log", SAMPLE.read_bytes())
    assert read_path(path).problems[0].message.startswith("unsupported file type '.log'")
    assert len(read_path(path, format="report").documents) == 34


def test_a_report_whose_toc_does_not_match_its_body_is_a_problem(tmp_path: Path) -> None:
    broken = SAMPLE.read_text(encoding="utf-8").replace("\n云服务市场驾“云”腾飞\n", "\n别的标题\n")
    result = read_path(write(tmp_path / "broken.txt", broken))
    assert result.documents == []
    (problem,) = result.problems
    assert problem.source == "broken.txt"
    assert problem.message.startswith("1 table-of-contents title(s) have no matching line in the body")
    assert "云服务市场驾“云”腾飞" in problem.message


# --- JSON Lines ----------------------------------------------------------------------------------

GOOD_LINE = {"title": "云服务市场驾“云”腾飞", "text": "云为企业数字业务转型提供了动力。"}
FULL_LINE = {
    "title": "Chip shortage",
    "text": "Foundries are full.",
    "doc_id": "chips-1",
    "section": "Overseas",
    "date": "2020-12-08",
    "source": "feed.xml",
    "url": "https://example.com/chips",
    "extra": "ignored",
}


def jsonl(*rows: object) -> str:
    return "\n".join(row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows)


def test_jsonl_reads_one_article_per_line_with_optional_fields(tmp_path: Path) -> None:
    result = read_path(write(tmp_path / "feed.jsonl", jsonl(GOOD_LINE, "", FULL_LINE) + "\n"))
    assert result.problems == []
    first, second = result.documents
    assert (first.title, first.text, first.source) == (GOOD_LINE["title"], GOOD_LINE["text"], "feed.jsonl")
    assert first.doc_id == make_doc_id("feed.jsonl", GOOD_LINE["title"])
    assert (first.section, first.date, first.url) == (None, None, None)
    assert second.model_dump(exclude={"page_map"}) == {
        "doc_id": "chips-1",
        "title": "Chip shortage",
        "text": "Foundries are full.",
        "source": "feed.xml",
        "section": "Overseas",
        "date": "2020-12-08",
        "url": "https://example.com/chips",
    }


def test_a_jsonl_source_field_also_feeds_the_derived_doc_id(tmp_path: Path) -> None:
    row = {"title": "Chip shortage", "text": "Foundries are full.", "source": "feed.xml"}
    (document,) = read_path(write(tmp_path / "feed.jsonl", jsonl(row))).documents
    assert document.doc_id == make_doc_id("feed.xml", "Chip shortage")


def test_malformed_jsonl_lines_are_problems_with_line_numbers_and_the_rest_loads(tmp_path: Path) -> None:
    content = jsonl(
        GOOD_LINE,  # 1
        "",  # 2: blank, skipped
        '{"title": "broken",',  # 3
        {"title": "no text"},  # 4
        {"title": "   ", "text": "blank title"},  # 5
        {"title": 5, "text": "numeric title"},  # 6
        ["a", "list"],  # 7
        {"title": "Chip shortage", "text": "Foundries are full.", "date": 2020},  # 8
        FULL_LINE,  # 9
    )
    path = write(tmp_path / "feed.jsonl", content.encode() + b"\n" + b'{"title": "\xff", "text": "x"}')  # 10
    result = read_path(path)
    assert [d.title for d in result.documents] == [GOOD_LINE["title"], "Chip shortage"]
    assert [(p.source, p.line) for p in result.problems] == [
        ("feed.jsonl", n) for n in (3, 4, 5, 6, 7, 8, 10)
    ]
    messages = [p.message for p in result.problems]
    assert messages[0].startswith(
        "invalid JSON (Expecting property name enclosed in double quotes at column 20)"
    )
    assert messages[1].startswith("'text': Field required (each line must be a JSON object")
    assert messages[2].startswith("'title' is empty and there is no 'doc_id'; give one of them")
    assert messages[3].startswith("'title': Input should be a valid string")
    assert messages[4].startswith("a JSON list, not an object")
    assert messages[5].startswith("'date': Input should be a valid string")
    assert messages[6] == "not UTF-8 (byte 11 of the line); save the file as UTF-8."


def test_an_untitled_jsonl_article_with_its_own_doc_id_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "bench.jsonl", jsonl({"doc_id": "xquad-1", "title": "", "text": "超级碗五十。"}))
    result = read_path(path)
    assert result.problems == []
    assert [(d.doc_id, d.title, d.text) for d in result.documents] == [("xquad-1", "", "超级碗五十。")]


def test_an_empty_or_binary_jsonl_file_is_one_problem(tmp_path: Path) -> None:
    empty = read_path(write(tmp_path / "empty.jsonl", "\n\n"))
    binary = read_path(write(tmp_path / "blob.jsonl", b'{"a": 1}\n\x00\x01'))
    assert [(p.source, p.line) for p in empty.problems + binary.problems] == [
        ("empty.jsonl", None),
        ("blob.jsonl", None),
    ]
    assert empty.problems[0].message.startswith("the file is empty")
    assert binary.problems[0].message.startswith("binary file (it contains NUL bytes)")


def test_the_same_doc_id_twice_keeps_the_later_article_and_reports_the_earlier(tmp_path: Path) -> None:
    first = {"title": "快讯", "text": "第一条。"}
    second = {"title": "快讯", "text": "第二条。"}
    result = read_path(write(tmp_path / "feed.jsonl", jsonl(first, GOOD_LINE, second)))
    assert [d.text for d in result.documents] == [GOOD_LINE["text"], "第二条。"]
    doc_id = make_doc_id("feed.jsonl", "快讯")
    assert result.problems == [
        ReadProblem(
            source="feed.jsonl",
            line=1,
            message=(
                f"doc_id {doc_id} ('快讯') is read again from feed.jsonl line 3, which replaces this one; "
                "give the articles distinct titles or doc_ids."
            ),
        )
    ]


# --- PDF -----------------------------------------------------------------------------------------


def test_a_pdf_is_one_article_with_real_page_numbers(tmp_path: Path) -> None:
    data = make_pdf([["Chip Outlook", "Foundries are full."], [], ["Prices (again) rise."]], title="Q4 Chips")
    result = read_path(write(tmp_path / "chips.pdf", data))
    assert result.problems == []
    (document,) = result.documents
    assert document.title == "Q4 Chips"
    assert document.text == "Chip Outlook\nFoundries are full.\n\nPrices (again) rise."
    # The blank second page holds no text, so the third page starts right after the first (32 + 2).
    assert document.page_map == [PageStart(char_start=0, page=1), PageStart(char_start=34, page=3)]
    assert document.text[34:].startswith("Prices")
    assert (document.page_at(33), document.page_at(34)) == (1, 3)
    assert document.doc_id == make_doc_id("chips.pdf", "Q4 Chips")


def test_a_pdf_without_a_metadata_title_takes_its_first_line(tmp_path: Path) -> None:
    (document,) = read_path(
        write(tmp_path / "chips.pdf", make_pdf([["", "Chip Outlook", "Text."]]))
    ).documents
    assert document.title == "Chip Outlook"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty; it is not a PDF."),
        (b"%PDF-1.4\nnot really a pdf", "not a readable PDF ("),
        (b"plain text named .pdf", "not a readable PDF ("),
        (make_pdf([[], []]), "the PDF has no extractable text (scanned images?); run OCR on it first."),
    ],
    ids=["empty", "truncated", "not a pdf", "no text"],
)
def test_an_unreadable_pdf_is_a_problem(tmp_path: Path, data: bytes, message: str) -> None:
    result = read_path(write(tmp_path / "bad.pdf", data))
    assert result.documents == []
    (problem,) = result.problems
    assert (problem.source, problem.line) == ("bad.pdf", None)
    assert problem.message.startswith(message)


# --- directories, paths and uploads --------------------------------------------------------------


def test_a_directory_is_read_recursively_in_sorted_order_skipping_hidden_and_unsupported_files(
    tmp_path: Path,
) -> None:
    write(tmp_path / "b.txt", "B title\n\nB text.")
    write(tmp_path / "a" / "z.md", "# Z title\n\nZ text.")
    write(tmp_path / "a" / "deeper" / "feed.jsonl", jsonl(GOOD_LINE))
    write(tmp_path / "a" / "chips.PDF", make_pdf([["PDF title", "PDF text."]]))
    write(tmp_path / ".hidden.txt", "Hidden\n\ntext.")
    write(tmp_path / ".git" / "notes.txt", "Hidden\n\ntext.")
    write(tmp_path / "slides.docx", b"PK\x03\x04")
    result = read_path(tmp_path)
    assert result.problems == []
    assert [(d.source, d.title) for d in result.documents] == [
        ("a/chips.PDF", "PDF title"),
        ("a/deeper/feed.jsonl", GOOD_LINE["title"]),
        ("a/z.md", "Z title"),
        ("b.txt", "B title"),
    ]


def test_one_bad_file_in_a_directory_does_not_stop_the_others(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", b"\x00\x01\x02")
    write(tmp_path / "b.txt", "B title\n\nB text.")
    result = read_path(tmp_path)
    assert [d.source for d in result.documents] == ["b.txt"]
    assert [p.source for p in result.problems] == ["a.txt"]


def test_doc_ids_are_stable_across_reads_and_uploads(tmp_path: Path) -> None:
    write(tmp_path / "feed.jsonl", jsonl(GOOD_LINE, {"title": "Chip shortage", "text": "Full."}))
    write(tmp_path / "notes.md", "# 标题\n\n正文。")
    first = [d.doc_id for d in read_path(tmp_path).documents]
    second = [d.doc_id for d in read_path(tmp_path).documents]
    uploaded = [
        d.doc_id
        for name in ("feed.jsonl", "notes.md")
        for d in read_upload(name, (tmp_path / name).read_bytes()).documents
    ]
    assert first == second == uploaded
    assert len(set(first)) == 3


def test_an_upload_uses_the_last_component_of_its_file_name_as_source() -> None:
    result = read_upload("C:\\Users\\me\\..\\notes.txt", "标题\n\n正文。".encode())
    assert [(d.source, d.title, d.text) for d in result.documents] == [("notes.txt", "标题", "正文。")]


def test_an_uploaded_report_is_split_like_the_file() -> None:
    uploaded = read_upload(SAMPLE.name, SAMPLE.read_bytes())
    assert uploaded == read_path(SAMPLE)


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        ("slides.docx", "unsupported file type '.docx'; supported: .jsonl, .md, .pdf, .txt"),
        ("README", "unsupported file type '(none)'"),
        ("", "the upload has no file name"),
    ],
)
def test_an_upload_the_readers_cannot_pick_a_reader_for_is_a_problem(filename: str, message: str) -> None:
    result = read_upload(filename, b"data")
    assert result.documents == []
    (problem,) = result.problems
    assert problem.message.startswith(message)


def test_an_explicit_format_overrides_the_upload_extension() -> None:
    result = read_upload("feed.txt", jsonl(GOOD_LINE).encode(), format="jsonl")
    assert [d.title for d in result.documents] == [GOOD_LINE["title"]]


@pytest.mark.parametrize(
    ("relative", "message"),
    [("missing.txt", "no such file or directory."), ("empty-dir", "no supported files found")],
)
def test_a_path_without_anything_to_read_is_a_problem(tmp_path: Path, relative: str, message: str) -> None:
    (tmp_path / "empty-dir").mkdir()
    result = read_path(tmp_path / relative)
    assert result.documents == []
    (problem,) = result.problems
    assert problem.source == str(tmp_path / relative)
    assert problem.message.startswith(message)


@settings(max_examples=60, deadline=None)
@given(
    extension=st.sampled_from(sorted(SUPPORTED_EXTENSIONS)),
    data=st.one_of(
        st.binary(max_size=400),
        st.text(max_size=400).map(str.encode),
        st.sampled_from([b"%PDF-1.7\n", "目录\n\n第一部分 3\n\n- 标题..... 3\n".encode()]).flatmap(
            lambda head: st.binary(max_size=200).map(lambda tail: head + tail)
        ),
    ),
)
def test_any_bytes_give_documents_or_problems_never_an_exception(extension: str, data: bytes) -> None:
    result = read_upload(f"upload{extension}", data)
    assert result.documents or result.problems
    assert all(document.title and document.text for document in result.documents)
