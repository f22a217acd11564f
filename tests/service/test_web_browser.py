"""The chat page in a real Chromium against the real server (real model, sample report indexed).

Screenshots land in test-output/screenshots/ for a person to look at; the assertions check what they show.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.conftest import RunningServer
from tests.service.browser import BROWSER_MARKS, PHONE, WIDE, launched_chromium, shot

PHONES_ARTICLE = "手机销量下滑，面板出货缘何创新高"

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_chromium() as launched:
        yield launched


def _record_errors(page: Page) -> list[str]:
    """The page's JavaScript errors, and what its Content-Security-Policy refused (a console error)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    return errors


@pytest.fixture
def page(browser: Browser, real_server: RunningServer) -> Iterator[Page]:
    """A fresh page (empty localStorage) on the server; any JavaScript error or CSP refusal fails the test."""
    context = browser.new_context(viewport=WIDE, locale="en-US", base_url=real_server.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=real_server.url)
    opened = context.new_page()
    errors = _record_errors(opened)
    opened.goto("/")
    expect(opened.locator(".chip[data-section]")).to_have_count(5)
    yield opened
    context.close()
    assert errors == []


def _ask(page: Page, question: str) -> None:
    turns = page.locator(".turn").count()
    page.locator("#question").fill(question)
    page.locator("#question").press("Enter")
    expect(page.locator(".turn")).to_have_count(turns + 1)
    expect(page.locator(".turn").last.locator(".reply")).to_have_attribute(
        "aria-busy", "false", timeout=30_000
    )


def test_a_conversation_with_citations_a_follow_up_two_languages_and_a_reload(page: Page) -> None:
    _ask(page, "小米第三季度智能手机销量是多少？")
    first = page.locator(".turn").nth(0)
    expect(first.locator(".question-text")).to_have_text("小米第三季度智能手机销量是多少？")
    cards = first.locator(".card")
    expect(cards).to_have_count(5)
    expect(cards.first.locator(".card-title")).to_have_text(f"《{PHONES_ARTICLE}》")
    expect(cards.first.locator(".card-meta")).to_contain_text("企业情报")
    expect(cards.first.locator(".card-meta")).to_contain_text(re.compile(r"p\. 5[89]"))
    expect(cards.first.locator(".card-meta")).to_contain_text(re.compile(r"score -?\d+\.\d{3}"))
    # Either the server's own highlight or the question's terms are marked in the passage.
    expect(cards.first.locator("mark.hit").first).to_be_visible()
    expect(first.locator(".answer .sources .cite")).to_have_count(5)
    expect(first.locator(".answer-text .cite")).to_have_count(1)
    shot(page, "1-answer-wide.png")

    # A citation opens the article beside the chat, scrolled to the cited passage, highlighted.
    first.locator(".sources .cite").first.click()
    article = page.locator("#article")
    expect(article).to_be_visible()
    expect(page.locator("#article-title")).to_have_text(PHONES_ARTICLE)
    expect(page.locator("#article-meta")).to_contain_text("企业情报")
    expect(page.locator("#article-meta")).to_contain_text("info-industry-monitor-2020-12.txt")
    cited = page.locator("#cited-passage")
    expect(cited).to_have_text(cards.first.locator(".passage").inner_text())
    expect(cited).to_be_in_viewport()
    chat_box, article_box = page.locator(".chat").bounding_box(), article.bounding_box()
    assert article_box["x"] >= chat_box["x"] + chat_box["width"], "the article sits beside the chat"
    shot(page, "2-article-beside-chat.png")
    page.keyboard.press("Escape")
    expect(article).to_be_hidden()
    expect(first.locator(".sources .cite").first).to_be_focused()

    # The follow-up is searched in the context of the first question.
    _ask(page, "那华为呢？")
    second = page.locator(".turn").nth(1)
    expect(second.locator(".rewritten q")).to_have_text("华为第三季度智能手机销量是多少？")
    expect(second.locator(".card").first.locator(".card-title")).to_have_text(f"《{PHONES_ARTICLE}》")
    expect(second.locator(".card .passage").filter(has_text="华为").first).to_be_visible()
    shot(page, "3-follow-up.png")

    # Copy citation puts 《title》, section, p. N and the passage on the clipboard.
    card = second.locator(".card").first
    card.locator(".copy").click()
    expect(page.locator("#toast")).to_have_text("Citation copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    page_number = re.search(r"p\. (\d+)", card.locator(".card-meta").inner_text()).group(1)
    assert (
        copied == f"《{PHONES_ARTICLE}》, 企业情报, p. {page_number}\n{card.locator('.passage').inner_text()}"
    )

    # Every string of the interface switches language; the conversation stays.
    expect(page.locator("#send")).to_have_text("Send")
    page.locator("#lang-toggle").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#send")).to_have_text("发送")
    expect(page.locator("#clear")).to_have_text("清空对话")
    expect(second.locator(".rewritten")).to_contain_text("结合上文检索")
    expect(page.locator(".turn").nth(1).locator(".card-actions").first).to_contain_text("复制引用")
    shot(page, "4-chinese-interface.png")

    # A reload brings the conversation and the language back.
    page.reload()
    expect(page.locator(".turn")).to_have_count(2)
    expect(page.locator(".turn").nth(1).locator(".rewritten q")).to_have_text(
        "华为第三季度智能手机销量是多少？"
    )
    expect(page.locator("#send")).to_have_text("发送")
    shot(page, "5-after-reload.png")

    page.locator("#clear").click()
    expect(page.locator(".turn")).to_have_count(0)
    page.reload()
    expect(page.locator(".turn")).to_have_count(0)
    expect(page.locator("#welcome")).to_be_visible()


def test_at_phone_width_the_article_covers_the_chat(page: Page) -> None:
    page.set_viewport_size(PHONE)
    _ask(page, "How many 5G base stations has China built?")
    cards = page.locator(".card")
    expect(cards).to_have_count(5)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scrolling"
    shot(page, "6-phone-chat.png")
    cards.first.locator(".card-title").click()
    article = page.locator("#article")
    expect(article).to_be_visible()
    box = article.bounding_box()
    assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, PHONE["width"], PHONE["height"])
    expect(page.locator("#cited-passage")).to_be_in_viewport()
    shot(page, "7-phone-article.png")
    # The overlay keeps the keyboard inside it, like a dialog; Escape closes it and focus returns to the card.
    expect(article).to_have_attribute("aria-modal", "true")
    for _ in range(3):
        page.keyboard.press("Tab")
        assert page.evaluate("document.getElementById('article').contains(document.activeElement)")
    page.keyboard.press("Escape")
    expect(article).to_be_hidden()
    expect(cards.first.locator(".card-title")).to_be_focused()


def test_the_keyboard_alone_asks_filters_and_reads_an_article(page: Page) -> None:
    question = page.locator("#question")
    expect(question).to_be_focused()
    # Shift+Enter is a new line, not a send.
    question.press_sequentially("晶圆代工")
    question.press("Shift+Enter")
    question.press_sequentially("产能紧张吗？")
    expect(question).to_have_value("晶圆代工\n产能紧张吗？")
    expect(page.locator(".turn")).to_have_count(0)
    # Select a section with the keyboard: focus its chip and press Space.
    page.locator('.chip[data-section="技术情报"]').focus()
    page.keyboard.press("Space")
    expect(page.locator('.chip[data-section="技术情报"]')).to_have_attribute("aria-pressed", "true")
    expect(page.locator('.chip[data-section="技术情报"]')).to_be_focused()
    question.focus()
    question.press("Enter")
    expect(page.locator(".reply")).to_have_attribute("aria-busy", "false", timeout=30_000)
    expect(page.locator(".card .badge")).to_have_text(["技术情报"] * 5)
    # A citation opens with Enter and moves the focus into the article; Escape closes it and gives focus back.
    page.locator(".sources .cite").first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#article-title")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#article")).to_be_hidden()
    expect(page.locator(".sources .cite").first).to_be_focused()
    expect(page.locator("#conversation")).to_have_attribute("aria-live", "polite")


def test_error_responses_an_unreachable_server_and_an_empty_index_each_say_so(page: Page) -> None:
    page.route(
        "**/v1/chat",
        lambda route: route.fulfill(
            status=422,
            content_type="application/json",
            body=json.dumps(
                {"error": "ValidationError", "message": "body.messages: too many", "details": []}
            ),
        ),
    )
    _ask(page, "5G")
    expect(page.locator(".reply .error")).to_have_text("The request failed (422): body.messages: too many")

    page.unroute("**/v1/chat")
    page.route("**/v1/chat", lambda route: route.abort())
    _ask(page, "5G")
    expect(page.locator(".reply .error").nth(1)).to_contain_text("Cannot reach the server")
    shot(page, "8-errors.png")

    # The page reads the chosen collection's counts from GET /v1/collections.
    page.route(
        "**/v1/collections",
        lambda route: route.fulfill(
            json={"collections": [{"name": "default", "documents": 0, "chunks": 0, "sections": []}]}
        ),
    )
    page.reload()
    expect(page.locator("#banner")).to_be_visible()
    expect(page.locator("#banner-text")).to_contain_text("The index holds no articles yet")

    page.route("**/readyz", lambda route: route.abort())
    page.locator("#banner-retry").click()
    expect(page.locator("#banner-text")).to_have_text(
        "Cannot reach the CiteQA server. Check that it is running, then retry."
    )
    shot(page, "9-unreachable-banner.png")


def test_an_answer_sentence_and_passage_highlights_are_shown_when_the_server_sends_them(page: Page) -> None:
    """The optional `answer` and `highlight` fields, added here to a real response, take over from the fallbacks."""

    def with_answer(route) -> None:
        body = route.fetch().json()
        passages = body["result"]["passages"]
        cited = passages[1]["citation"]
        body["result"]["answer"] = {
            "text": passages[1]["text"][:20],
            "citation": {**cited, "char_end": cited["char_start"] + 20},
        }
        passages[0]["highlight"] = {"char_start": 2, "char_end": 10}
        route.fulfill(json=body)

    page.route("**/v1/chat", with_answer)
    _ask(page, "小米第三季度智能手机销量是多少？")
    answer = page.locator(".answer-text")
    passages = page.locator(".card .passage")
    expect(answer).to_contain_text(passages.nth(1).inner_text()[:20])
    expect(answer.locator(".cite")).to_have_text("[2]")
    expect(page.locator(".card").first.locator("mark.hit")).to_have_text(passages.first.inner_text()[2:10])
    answer.locator(".cite").click()
    expect(page.locator("#cited-passage")).to_have_text(passages.nth(1).inner_text())
    expect(page.locator("#cited-passage mark.hit")).to_have_text(passages.nth(1).inner_text()[:20])
    shot(page, "10-answer-sentence.png")


def test_the_real_answer_sentence_is_shown_with_its_citation_and_highlight(page: Page) -> None:
    _ask(page, "近一个月，工信部系统围绕5G开展了多少次调研？")
    answer = page.locator(".turn").last.locator(".answer-text")
    expect(answer).to_contain_text("逾10次调研")
    answer.locator(".cite").click()
    expect(page.locator("#cited-passage mark.hit")).to_contain_text("逾10次调研")
    shot(page, "11-real-answer.png")


def test_questions_from_outside_the_collection_say_nothing_answers_them(page: Page) -> None:
    """The server's own verdict, not an intercepted one: the sample is a Chinese industry report of Dec 2020
    (5G, chips, phones, panels…), so a football question finds nothing to answer it, in either language
    (its confidence stays under the Chinese and the English thresholds)."""
    questions = {"zh": "2018年世界杯足球赛冠军是哪支球队？", "en": "Who won the 2018 FIFA World Cup?"}
    for number, (language, question) in enumerate(questions.items()):
        _ask(page, question)
        turn = page.locator(".turn").last
        expect(turn.locator(".question-text")).to_have_text(question)
        expect(turn.locator(".rewritten")).to_have_count(0)
        expect(turn.locator(".not-answerable")).to_have_text(
            "Nothing in the index seems to answer this. The closest passages:"
        )
        expect(turn.locator(".answer-text")).to_have_count(0)
        # The closest passages are still listed, each with its citation marker.
        expect(turn.locator(".card")).not_to_have_count(0)
        expect(turn.locator(".sources .cite")).to_have_count(turn.locator(".card").count())
        shot(page, f"{12 + number}-nothing-answers-{language}.png")
    expect(page.locator(".answer-text")).to_have_count(0)


def test_the_api_docs_render_every_operation_offline(browser: Browser, real_server: RunningServer) -> None:
    """/docs and /redoc load nothing from another site (a CDN would leave them blank offline) and render
    under the server's Content-Security-Policy."""
    context = browser.new_context(viewport=WIDE, locale="en-US", base_url=real_server.url)
    elsewhere: list[str] = []

    def only_the_server(route: Route) -> None:
        if route.request.url.startswith(real_server.url):
            route.continue_()
        else:  # as offline
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_server)
    page = context.new_page()
    errors = _record_errors(page)
    operations = sum(
        len(item) for item in httpx.get(f"{real_server.url}/openapi.json").json()["paths"].values()
    )

    page.goto("/docs")
    expect(page.locator(".opblock")).to_have_count(operations)
    expect(page.locator(".opblock-summary-path").filter(has_text="/v1/search")).to_be_visible()
    # An operation opens with its error responses, documented as the ErrorBody they are sent with.
    page.locator(".opblock-summary").filter(has_text="/v1/search").click()
    refused = page.locator(".responses-table .response[data-code='403']")
    expect(refused).to_contain_text("CrossOriginWrite")
    refused.scroll_into_view_if_needed()
    shot(page, "15-api-docs.png")

    page.goto("/redoc")
    expect(page.get_by_role("heading", name="Ranked passages that answer a question")).to_be_visible()
    shot(page, "16-api-redoc.png")
    context.close()
    assert elsewhere == []
    # ReDoc's footer asks for its maker's badge, unconditionally; the policy refuses it, and ReDoc hides it.
    assert [error for error in errors if "cdn.redoc.ly/redoc/logo-mini.svg" not in error] == []
