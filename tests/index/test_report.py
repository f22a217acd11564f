from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.documents import Document, make_doc_id
from index.report import ReportFormatError, looks_like_report, parse_report

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = REPO_ROOT / "data" / "sample" / "info-industry-monitor-2020-12.txt"
SEED_ARTICLES = REPO_ROOT / "tests" / "data" / "seed_articles.json"

# 40 CJK characters, no terminal punctuation: wider than one printed line, so it can only be a cut paragraph.
LONG_FRAGMENT = "随着网络建设不断推进相关应用场景持续拓展产业链上下游企业正在加快布局新的业务方向而且"


@pytest.fixture(scope="module")
def raw_report() -> str:
    return SAMPLE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def articles(raw_report: str) -> list[Document]:
    return parse_report(raw_report, SAMPLE.name)


def article(articles: list[Document], title_start: str) -> Document:
    (found,) = [doc for doc in articles if doc.title.startswith(title_start)]
    return found


def paragraphs(document: Document) -> list[str]:
    return document.text.split("\n\n")


def test_sample_report_yields_exactly_the_seed_articles(articles: list[Document]) -> None:
    seed = json.loads(SEED_ARTICLES.read_text(encoding="utf-8"))
    parsed = [{"section": d.section, "title": d.title, "toc_page": d.page_map[0].page} for d in articles]
    assert parsed == seed


def test_articles_carry_source_and_doc_id_from_file_name_and_body_title(articles: list[Document]) -> None:
    assert {doc.source for doc in articles} == {SAMPLE.name}
    assert [doc.doc_id for doc in articles] == [make_doc_id(SAMPLE.name, doc.title) for doc in articles]
    assert len({doc.doc_id for doc in articles}) == 34


def test_the_body_title_wins_over_a_toc_title_spaced_and_worded_differently(
    raw_report: str, articles: list[Document]
) -> None:
    assert "- 2020 年 TWS 耳机火热：苹果迈入多品类，安卓系抢占头部份额..... 67" in raw_report
    assert article(articles, "2020年TWS").title == "2020年TWS耳机火热：苹果迈入多品类，安卓系抢占有头部份额"


def test_a_toc_entry_with_a_short_dot_leader_is_matched(raw_report: str, articles: list[Document]) -> None:
    assert "能否破局？... 47" in raw_report
    assert article(articles, "涨价潮下").page_map[0].page == 47


@pytest.mark.parametrize(
    ("title_start", "left", "right"),
    [
        ("超 1100 个项目", "我国目前有超过3.9万家直播相关企业，直播设备相关企业", "超过1.4万家。"),
        ("工信部年底", "随着5G网络达到深度覆盖的效果，工业", "互联网、物联网、车联网、VR/AR"),
        ("促进电子信息材料", "“虽然企业是创新的主体，但大部分企业做不成", "华为，它们难以投入"),
        ("云安全保障", "SDP具备更安全、更灵活部", "署、更低成本等特点。"),
        ("山西", "进一步加大财政支持力度，", "集成电路和软件企业优先享受相关财政补助"),
        ("山西", "支持企业建立境外营销网", "络。"),
        ("格力低调开卖", "格力布局IoT（即“物联", "网”)实现智能家居互联的战略。"),
        ("晶圆代工吃紧", "比如将更多的注", "意力集中在竞争逐渐处于白热化阶段"),
        ("10月以来芯片业", "超过伯克希尔哈撒韦、", "Visa等，成为美股市值第九高的公司。"),
    ],
)
def test_a_sentence_cut_by_a_page_break_is_joined_again(
    raw_report: str, articles: list[Document], title_start: str, left: str, right: str
) -> None:
    assert f"{left}\n\n{right}" in raw_report  # the export really splits it here
    document = article(articles, title_start)
    assert left + right in document.text
    assert not any(p.endswith(left) for p in paragraphs(document))
    assert not any(p.startswith(right) for p in paragraphs(document))


def test_a_page_break_moves_the_page_on_where_the_cut_sentence_resumes(articles: list[Document]) -> None:
    document = article(articles, "超 1100 个项目")
    resume = document.text.index("超过1.4万家。")
    assert document.page_at(resume - 1) == 5
    assert document.page_at(resume) == 6


def test_an_attribution_left_alone_is_joined_to_its_quote_without_a_page_break(
    raw_report: str, articles: list[Document]
) -> None:
    assert "平衡。”\n\n中国移动研究院无线与终端技术研究所所长丁海煜指出。" in raw_report
    document = article(articles, "5G 向室内")
    joined = "平衡。”中国移动研究院无线与终端技术研究所所长丁海煜指出。"
    assert joined in document.text
    position = document.text.index(joined)
    assert document.page_at(position) == document.page_at(position + len(joined))


@pytest.mark.parametrize(
    ("title_start", "heading", "following"),
    [
        ("山西", "出台背景", "集成电路产业和软件产业是信息产业的核心"),
        ("山西", "主要内容", "对照《国务院关于印发"),
        ("云安全保障", "新安全架构推动数字化转型进入快车道", "据了解，为了有效解决"),
        ("“九章”问世", "攻克三大技术难题", "“九章”取得重大突破"),
        ("“九章”问世", "“九章”取得重大突破", "潘建伟院士团队"),
        ("独立组网率先商用", "——中国电信5G商用有新突破", "“率先将全球最大规模"),
        ("Micro-LED", "Micro-LED应用目前主要在AR眼镜上", "Micro-LED微小尺寸应用"),
        ("格力低调开卖", "董明珠的五年“手机梦”", "在资深产业经济观察家"),
    ],
)
def test_sub_headings_stay_paragraphs_of_their_own(
    articles: list[Document], title_start: str, heading: str, following: str
) -> None:
    parts = paragraphs(article(articles, title_start))
    position = parts.index(heading)
    assert parts[position + 1].startswith(following)


def test_section_headings_and_titles_are_not_article_text(articles: list[Document]) -> None:
    sections = {doc.section for doc in articles}
    assert sections == {"产业环境", "运营竞争", "技术情报", "企业情报", "海外借鉴"}
    for document in articles:
        assert not sections & set(paragraphs(document))
        assert not document.text.startswith(document.title)
    assert article(articles, "云服务市场").text.endswith("是云专业服务商将面临的挑战。")


def test_every_paragraph_is_stripped_and_separated_by_one_blank_line(articles: list[Document]) -> None:
    for document in articles:
        assert all(p and p == p.strip() for p in paragraphs(document))
        assert "\n\n\n" not in document.text


def test_the_last_line_without_a_newline_is_kept(raw_report: str, articles: list[Document]) -> None:
    assert not raw_report.endswith("\n")
    last_line = raw_report.rsplit("\n", 1)[1]
    assert articles[-1].text.endswith(last_line)
    assert last_line.endswith("第37大公司。")


def test_page_maps_climb_one_page_at_a_time_and_never_pass_the_next_article(
    articles: list[Document],
) -> None:
    for number, document in enumerate(articles):
        pages = [entry.page for entry in document.page_map]
        starts = [entry.char_start for entry in document.page_map]
        assert pages == list(range(pages[0], pages[0] + len(pages)))
        assert starts[0] == 0 and starts == sorted(set(starts)) and starts[-1] < len(document.text)
        positions = range(0, len(document.text), 50)
        assert [document.page_at(p) for p in positions] == sorted(document.page_at(p) for p in positions)
        if number + 1 < len(articles):
            # The next article starts on its TOC page, so this one ends on that page or the one before.
            # Page breaks between paragraphs are invisible, so the estimate may lag: by 3 pages at most
            # in this issue (see the module docstring of index.report).
            next_page = articles[number + 1].page_map[0].page
            assert next_page - 4 < pages[-1] <= next_page


SYNTHETIC_REPORT = "\r\n".join(
    [
        "月度报告",
        "",
        "目 录",
        "快速进入点击页码",
        "",
        "第一部分 3",
        "",
        "- 5G 产业 高质量发展..... 3",
        "- 人工智能与实体经济深度融合带来新机遇…… 4",
        "",
        "第二部分 6",
        "",
        "- 芯片“抱团”发展... 6",
        "",
        "第一部分",
        "",
        "5G产业高质量发展",
        "",
        LONG_FRAGMENT,
        "",
        "继续推进。",
        "",
        "小标题",
        "",
        "正文第二段。",
        "",
        "人工智能与实体经济深度融合带来新机遇和新挑战",
        "",
        "专家认为，融合正在加速。",
        "",
        "第二部分",
        "",
        '芯片"抱团"发展',
        "",
        "欧洲多国表示将联合投资Thierry",
        "",
        "Breton said。",
    ]
)


def test_a_synthetic_report_is_split_by_its_toc_despite_spacing_truncation_and_crlf() -> None:
    documents = parse_report(SYNTHETIC_REPORT, "synthetic.txt")
    assert [(d.section, d.title, d.page_map[0].page) for d in documents] == [
        ("第一部分", "5G产业高质量发展", 3),
        ("第一部分", "人工智能与实体经济深度融合带来新机遇和新挑战", 4),
        ("第二部分", '芯片"抱团"发展', 6),
    ]
    first, second, third = documents
    assert first.text == f"{LONG_FRAGMENT}继续推进。\n\n小标题\n\n正文第二段。"
    assert [(e.char_start, e.page) for e in first.page_map] == [(0, 3), (len(LONG_FRAGMENT), 4)]
    assert second.text == "专家认为，融合正在加速。"
    # Short and without terminal punctuation, it looks like a sub-heading, and those are never joined.
    assert third.text == "欧洲多国表示将联合投资Thierry\n\nBreton said。"


def test_latin_words_cut_by_a_page_break_are_joined_with_a_space() -> None:
    report = SYNTHETIC_REPORT.replace("欧洲多国表示将联合投资Thierry", LONG_FRAGMENT + "Thierry")
    third = parse_report(report, "synthetic.txt")[2]
    assert third.text == f"{LONG_FRAGMENT}Thierry Breton said。"


def test_a_toc_title_missing_from_the_body_is_a_format_error() -> None:
    report = SYNTHETIC_REPORT.replace('芯片"抱团"发展\r\n', "别的内容\r\n")
    with pytest.raises(
        ReportFormatError, match=r"synthetic.txt: 1 table-of-contents title\(s\).*芯片“抱团”发展"
    ):
        parse_report(report, "synthetic.txt")


def test_text_without_a_table_of_contents_is_a_format_error() -> None:
    with pytest.raises(ReportFormatError, match=r"notes.txt: no table of contents found.*plain text"):
        parse_report("标题\n\n正文。", "notes.txt")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SYNTHETIC_REPORT, True),
        ("目录\n\n第一部分 3\n\n- 标题..... 3\n\n标题\n\n正文。", True),
        ("目录\n\n- 标题..... 3\n\n标题\n\n正文。", False),  # entries but no section line
        ("标题\n\n正文。\n\n- 列表项 3", False),
        (
            "说明\n\n目录\n\n第一句。\n\n第二句。\n\n第三句。\n\n第四句。\n\n第一部分 3\n\n- 标题..... 3",
            False,
        ),
    ],
)
def test_looks_like_report_needs_a_toc_with_sections_and_entries(text: str, expected: bool) -> None:
    assert looks_like_report(text) is expected
