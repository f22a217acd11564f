"""The library page, and the chat page's collection picker and key prompt, in a real Chromium against a
server of their own (real model, a fresh data folder): uploads here never reach the session's real server.

The tests run in file order on one server: the first uploads the articles the later ones list, delete and
search; the last creates an API key, which closes the API to calls without it.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.conftest import REPO_ROOT, RunningServer, citeqa_command, running_server
from tests.service.browser import BROWSER_MARKS, PHONE, WIDE, launched_chromium, shot

pytestmark = BROWSER_MARKS

ARTICLES = [
    {
        "doc_id": "fab-expansion",
        "title": "晶圆代工厂宣布扩产",
        "section": "芯片",
        "text": "某晶圆代工厂宣布投资百亿元扩建12英寸生产线。新产线预计2022年投产，月产能将增加4万片。"
        "公司表示，扩产主要为了满足汽车芯片和电源管理芯片的需求。",
    },
    {
        "doc_id": "5g-stations",
        "title": "5G基站建设提速",
        "section": "通信",
        "text": "截至11月底，全国累计建成5G基站超过70万个。运营商计划明年再新建60万个基站，"
        "重点覆盖地级市城区和重点县城。",
    },
    {
        "doc_id": "panel-prices",
        "title": "Panel prices rise again",
        "section": "Displays",
        "text": "LCD panel prices rose for the sixth month in a row in November. Makers of 55-inch TV "
        "panels raised prices by about 5 percent as demand for televisions stayed strong.",
    },
]
# Three articles, then a line that is not JSON: the job indexes the three and reports the fourth line.
ARTICLES_JSONL = ("\n".join(json.dumps(a, ensure_ascii=False) for a in ARTICLES) + "\n{not json\n").encode()
NOTE = "# 内部会议纪要\n\n会议决定下季度采购两台光刻机，预算为三亿元，由设备部负责招标。\n".encode()
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"


@pytest.fixture(scope="module")
def library_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """`citeqa serve` on an empty data folder of its own."""
    with running_server(tmp_path_factory, "library") as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, library_server: RunningServer) -> Iterator[Page]:
    """A fresh page (empty localStorage) on the library; any JavaScript error fails the test."""
    context = browser.new_context(viewport=WIDE, locale="en-US", base_url=library_server.url)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto("/library.html")
    yield opened
    context.close()
    assert errors == []


def _rows(page: Page):
    return page.locator("#documents tr")


def _no_sideways_scrolling(page: Page) -> None:
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "no sideways scrolling"


def test_uploaded_articles_show_progress_then_their_results_and_appear_in_the_list(page: Page) -> None:
    expect(page.locator("#documents-empty")).to_have_text(
        "This collection holds no articles yet; upload some here."
    )
    expect(page.locator("#collection")).to_have_value("default")
    expect(page.locator("#file-input")).to_have_attribute("multiple", "")

    # Until `hold` is cleared, each poll of the job answers as if it were a third of the way: the real job
    # of three short articles ends before a person (or a test) could see its progress.
    hold = threading.Event()
    hold.set()

    def midway(route: Route) -> None:
        if not hold.is_set():
            route.fallback()
            return
        job = route.fetch().json()
        route.fulfill(
            json={**job, "status": "running", "texts_embedded": 3, "texts_total": 9, "documents": []}
        )

    page.route("**/v1/jobs/*", midway)
    page.locator("#file-input").set_input_files(
        [{"name": "briefs.jsonl", "mimeType": "application/jsonl", "buffer": ARTICLES_JSONL}]
    )
    job = page.locator(".job").first
    bar = job.get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuenow", "33")
    expect(bar).to_have_attribute("aria-valuetext", "Embedding: 3 of 9")
    expect(job.locator(".job-status")).to_have_text("Embedding: 3 of 9")
    expect(job.locator(".job-collection")).to_have_text("→ default")
    expect(job).not_to_contain_text("null")
    shot(page, "library-1-upload-progress.png")

    hold.clear()
    # The real job: embedding on a busy machine can take longer than expect's default 5 s.
    expect(job.locator(".job-status")).to_have_text("Done: 3 added, 0 updated, 0 unchanged", timeout=60_000)
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(job.locator(".job-documents li")).to_have_count(3)
    expect(job.locator(".job-documents .doc-status.added")).to_have_count(3)
    # The line that is not JSON is reported with its file and line; the job indexed the others.
    expect(job.locator(".job-problems li")).to_have_count(1)
    expect(job.locator(".job-problems li")).to_contain_text("briefs.jsonl, line 4:")

    rows = _rows(page)
    expect(rows).to_have_count(3)
    panels = rows.filter(has_text="Panel prices rise again")
    expect(panels.locator("td")).to_have_text(["Displays", "briefs.jsonl", "—", "1", "Delete"])
    expect(page.locator("#index-status")).to_contain_text("3 articles")
    expect(page.locator("#shown-count")).to_have_text("Showing 3 of 3")
    shot(page, "library-2-uploaded-wide.png")

    # The filter matches titles and sections.
    page.locator("#filter").fill("5g")
    expect(rows).to_have_count(1)
    expect(rows.locator(".doc-title")).to_have_text("5G基站建设提速")
    page.locator("#filter").fill("芯片")
    expect(rows.locator(".doc-title")).to_have_text(["晶圆代工厂宣布扩产"])
    expect(page.locator("#shown-count")).to_have_text("Showing 1 of 3")
    page.locator("#filter").fill("nothing like this")
    expect(rows).to_have_count(0)
    expect(page.locator("#documents-empty")).to_have_text("No document matches the filter.")
    page.locator("#filter").fill("")
    expect(rows).to_have_count(3)

    page.set_viewport_size(PHONE)
    _no_sideways_scrolling(page)
    shot(page, "library-3-uploaded-phone.png", full_page=True)


def test_a_document_is_deleted_only_once_the_dialog_confirms_it(page: Page, library_server) -> None:
    rows = _rows(page)
    expect(rows).to_have_count(3)
    delete = page.get_by_role("button", name="Delete “Panel prices rise again”")

    # Cancel (Escape) keeps the document; the focus goes back to the button.
    delete.click()
    dialog = page.get_by_role("dialog", name="Delete this document?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("“Panel prices rise again” and its passages will be removed")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    shot(page, "library-4-confirm-delete.png")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(delete).to_be_focused()
    expect(rows).to_have_count(3)

    # With the keyboard alone: Enter opens the dialog, Tab reaches Delete, Enter confirms.
    page.keyboard.press("Enter")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Delete")).to_be_focused()
    page.keyboard.press("Enter")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Panel prices rise again")).to_have_count(0)
    expect(page.locator("#toast")).to_have_text("Deleted “Panel prices rise again”")
    expect(page.locator("#documents-heading")).to_be_focused()
    listed = httpx.get(f"{library_server.url}/v1/documents").json()
    assert sorted(d["doc_id"] for d in listed["documents"]) == ["5g-stations", "fab-expansion"]


def test_an_unreadable_upload_shows_the_servers_message_and_its_details(page: Page, library_server) -> None:
    expected = httpx.post(
        f"{library_server.url}/v1/documents", files={"files": ("scan.txt", BINARY, "text/plain")}
    )
    assert expected.status_code == 422
    refused = expected.json()

    page.locator("#file-input").set_input_files(
        [{"name": "scan.txt", "mimeType": "text/plain", "buffer": BINARY}]
    )
    job = page.locator(".job").first
    expect(job).to_have_attribute("data-status", "error")
    expect(job.locator(".job-status")).to_have_text(f"The upload was refused (422): {refused['message']}")
    problem = refused["details"][0]
    expect(job.locator(".job-problems li")).to_have_text([f"scan.txt: {problem['message']}"])
    expect(job.get_by_role("progressbar")).to_have_count(0)
    expect(_rows(page)).to_have_count(2)
    shot(page, "library-5-refused-upload.png")


def test_the_collection_picker_switches_the_library_and_the_chat(page: Page, library_server) -> None:
    created = httpx.post(f"{library_server.url}/v1/collections", json={"name": "notes"})
    assert created.status_code == 201, created.text

    page.reload()
    picker = page.locator("#collection")
    expect(picker.locator("option")).to_have_text(["default", "notes"])
    expect(_rows(page)).to_have_count(2)
    picker.select_option("notes")
    expect(_rows(page)).to_have_count(0)
    expect(page.locator("#documents-empty")).to_have_text(
        "This collection holds no articles yet; upload some here."
    )

    # A file dropped on the drop zone goes to the chosen collection.
    dropped = page.evaluate_handle(
        """(text) => {
          const transfer = new DataTransfer();
          transfer.items.add(new File([text], "minutes.md", { type: "text/markdown" }));
          return transfer;
        }""",
        NOTE.decode(),
    )
    page.dispatch_event("#drop-zone", "dragenter", {"dataTransfer": dropped})
    expect(page.locator("#drop-zone")).to_have_class("drop-zone dragging")
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": dropped})
    job = page.locator(".job").first
    expect(job.locator(".job-collection")).to_have_text("→ notes")
    expect(job.locator(".job-status")).to_have_text("Done: 1 added, 0 updated, 0 unchanged", timeout=60_000)
    expect(page.locator("#drop-zone")).to_have_class("drop-zone")
    expect(_rows(page).locator(".doc-title")).to_have_text(["内部会议纪要"])
    expect(page.locator("#index-status")).to_contain_text("1 articles")
    shot(page, "library-6-notes-collection.png")

    # The choice is kept, and the chat page shares it: its picker, chips, questions and articles.
    page.reload()
    expect(picker).to_have_value("notes")
    page.get_by_role("link", name="Chat").click()
    expect(page).to_have_url(f"{library_server.url}/")
    expect(page.locator("#collection")).to_be_visible()
    expect(page.locator("#collection")).to_have_value("notes")
    expect(page.locator(".chip")).to_have_text(["All"])
    page.locator("#question").fill("下季度采购几台光刻机？")
    page.locator("#question").press("Enter")
    reply = page.locator(".turn").last.locator(".reply")
    expect(reply).to_have_attribute("aria-busy", "false", timeout=30_000)
    expect(reply.locator(".card-title").first).to_have_text("《内部会议纪要》")
    reply.locator(".sources .cite").first.click()
    expect(page.locator("#article-body")).to_contain_text("预算为三亿元")
    shot(page, "library-7-chat-in-notes.png")
    page.keyboard.press("Escape")

    page.locator("#collection").select_option("default")
    expect(page.locator(".chip[data-section]")).to_have_text(["芯片", "通信"])
    expect(page.locator("#index-status")).to_contain_text("2 articles")
    page.set_viewport_size(PHONE)
    _no_sideways_scrolling(page)
    shot(page, "library-8-chat-picker-phone.png")
    page.get_by_role("link", name="Library").click()
    expect(page).to_have_url(f"{library_server.url}/library.html")
    expect(page.locator("#collection")).to_have_value("default")


def test_the_library_page_speaks_chinese(page: Page) -> None:
    page.locator("#lang-toggle").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#upload-heading")).to_have_text("上传文章")
    expect(page.locator("#choose-files")).to_have_text("选择文件…")
    expect(_rows(page).first.locator("td").last).to_have_text("删除")
    expect(page).to_have_title("CiteQA 文库")
    shot(page, "library-13-chinese.png")


def _create_key(server: RunningServer) -> str:
    created = subprocess.run(
        citeqa_command("keys", "create", "--name", "browser", "--scope", "write", "--json"),
        env=server.env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(created.stdout)["key"]


def test_with_an_api_key_the_pages_ask_for_it_and_forget_it_on_request(page: Page, library_server) -> None:
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    key = _create_key(library_server)
    try:
        page.reload()
        dialog = page.get_by_role("dialog", name="API key needed")
        expect(dialog).to_contain_text("This server needs an API key")
        field = dialog.get_by_label("API key")
        expect(field).to_have_attribute("type", "password")
        expect(field).to_be_focused()
        shot(page, "library-9-key-prompt.png")

        # A wrong key is refused with the server's message, and the dialog asks again.
        field.fill("citeqa_wrong")
        field.press("Enter")
        expect(dialog).to_contain_text("The API key is not valid")
        dialog.get_by_label("API key").fill(key)
        dialog.get_by_role("button", name="Use key").click()
        expect(dialog).to_have_count(0)
        expect(_rows(page)).to_have_count(2)
        forget = page.get_by_role("button", name="Forget key")
        expect(forget).to_be_visible()
        page.set_viewport_size(PHONE)
        _no_sideways_scrolling(page)
        shot(page, "library-10-key-kept-phone.png")

        # The key is kept: a reload and the chat page need no prompt.
        page.reload()
        expect(_rows(page)).to_have_count(2)
        page.get_by_role("link", name="Chat").click()
        expect(page.locator(".chip[data-section]")).to_have_count(2)
        expect(page.get_by_role("dialog")).to_have_count(0)
        _no_sideways_scrolling(page)
        shot(page, "library-11-chat-with-key-phone.png")
        page.set_viewport_size(WIDE)

        # Forgotten, it is asked for again after a reload; cancelling leaves the server's message.
        page.get_by_role("button", name="Forget key").click()
        expect(page.get_by_role("button", name="Forget key")).to_be_hidden()
        expect(page.locator("#lang-toggle")).to_be_focused()
        page.reload()
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name="Cancel").click()
        expect(page.locator("#banner-text")).to_have_text(
            "The request failed (401): This server needs an API key: send the header "
            "`Authorization: Bearer <key>` (an administrator creates keys with `citeqa keys create`)."
        )
        shot(page, "library-12-key-cancelled.png")
        assert not any(key in text for text in console), "the key never reaches the console"
    finally:
        subprocess.run(
            citeqa_command("keys", "revoke", "browser"), env=library_server.env, cwd=REPO_ROOT, check=True
        )
