"""The web log viewer (issue 6), driven in a real headless Chromium against the real server.

``python3 app.py`` runs as a process on both backends; records are sent through
``//send_logs`` as the real client does; the browser signs in, reads, filters, opens a
record and sees a live record arrive. The page must load nothing from another host and
raise no error (a Content-Security-Policy violation is an error).

Needs Playwright's Python package and Debian's ``chromium`` (``/usr/bin/chromium``); without
them these tests are skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
import uuid
from pathlib import Path

import pytest
from support import ServerProcess, client_body, client_record

CHROMIUM = os.environ.get("LOGGER_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
API_KEY = "viewer-test-api-key"
SCREENSHOT = Path("/tmp/bot-logging-server-viewer.png")


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -r requirements-dev.txt)")
    if not shutil.which(CHROMIUM):
        _missing(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def live_server(request, tmp_path_factory):
    """``python3 app.py`` on a free port (``/create_user`` on); yields its base URL."""
    cwd = tmp_path_factory.mktemp("viewer")
    if request.param == "sqlite":
        url = f"sqlite:///{cwd / 'viewer.db'}"
    else:
        url = request.getfixturevalue("mysql_database")
    with ServerProcess(url, cwd, "--api-key", API_KEY, cwd=cwd) as server:
        yield server.wait_ready_blocking().base_url


def http(base: str, path: str, body: object, headers: dict[str, str]) -> dict:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class Account:
    """A user of the live server, and how to send it logs as the real client does."""

    def __init__(self, base: str, prefix: str = "v"):
        self.base = base
        self.name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        answer = http(base, "/create_user", {"user": self.name}, {"X-Api-Key": API_KEY})
        self.token = answer["token"]

    def send(self, *records: dict) -> None:
        body = client_body(self.name, list(records))
        answer = http(self.base, "//send_logs", body, {"X-User-Token": self.token})
        assert answer["added"] == len(records)


@pytest.fixture
def account(live_server):
    return Account(live_server)


@pytest.fixture
def page(browser, live_server):
    """A fresh browser tab; fails the test if the page logs an error or fetches elsewhere."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    errors: list[str] = []
    foreign: list[str] = []
    tab.on("console", lambda m: m.type == "error" and errors.append(m.text))
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.on("request", lambda r: r.url.startswith(live_server) or foreign.append(r.url))
    tab.set_default_timeout(10_000)
    yield tab
    context.close()
    assert foreign == [], "the page requested another host"
    # The sign-in test expects one refused request (the wrong token).
    assert [e for e in errors if "403" not in e] == []


def sign_in(page, base: str, account: Account, token: str | None = None) -> None:
    page.goto(base + "/")
    page.fill("#signin-user", account.name)
    page.fill("#signin-token", token or account.token)
    page.click("#signin-submit")


def expect(locator):
    from playwright.sync_api import expect

    return expect(locator)


def rows(page) -> list[str]:
    return page.locator("#logs tbody tr td.msg").all_inner_texts()


def test_sign_in_and_see_the_records_sent_through_send_logs(page, live_server, account):
    account.send(
        client_record(0, msg="first warning", level=30),
        client_record(1, msg="an error", level=40),
        client_record(2, msg="it is critical", level=50),
    )
    sign_in(page, live_server, account, token="0" * 32)
    expect(page.locator("#signin-error")).to_have_text("Wrong user or token.")
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody tr")).to_have_count(3)
    assert rows(page) == ["it is critical", "an error", "first warning"]
    badges = page.locator("#logs tbody .level")
    assert badges.all_inner_texts() == ["CRITICAL", "ERROR", "WARNING"]
    assert badges.first.get_attribute("class") == "level lvl-critical"
    colour = badges.first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(142, 36, 170)"
    assert page.evaluate("sessionStorage.getItem('bls.credentials')").count(account.token) == 1
    page.reload()  # still signed in in this tab
    expect(page.locator("#logs tbody tr")).to_have_count(3)
    page.click("#signout")
    assert page.is_visible("#signin") and page.evaluate("sessionStorage.length") == 0


def test_filters_and_text_search_narrow_the_table_and_the_histogram(page, live_server, account):
    account.send(
        client_record(0, msg="disk full on /var", level=40, p_description="disk"),
        client_record(1, msg="DISK almost full", level=30, p_description="disk"),
        client_record(2, msg="payment failed", level=40, p_description="billing"),
        client_record(3, msg="hello", level=20, p_description="web"),
    )
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody tr")).to_have_count(4)
    expect(page.locator("#histogram")).to_have_attribute("data-total", "4")
    page.select_option("#filter-level", "40")
    messages = page.locator("#logs tbody td.msg")
    expect(messages).to_have_text(["payment failed", "disk full on /var"])
    expect(page.locator("#histogram")).to_have_attribute("data-total", "2")
    page.select_option("#filter-level", "")
    page.fill("#filter-q", "disk")
    expect(messages).to_have_text(["DISK almost full", "disk full on /var"])
    page.fill("#filter-p_description", "billing")
    expect(page.locator("#status")).to_have_text("No records match.")
    expect(page.locator("#histogram")).to_have_attribute("data-total", "0")
    page.click("#filter-reset")
    expect(page.locator("#logs tbody tr")).to_have_count(4)


def test_a_record_opens_in_a_detail_view_with_json_pretty_printed(page, live_server, account):
    message = {"order": 17, "items": ["a", "b"], "error": {"code": "card_declined"}}
    hostile = '<img src=x onerror="window.__xss = 1">'
    account.send(client_record(0, msg=message, level=40), client_record(1, msg=hostile))
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody tr")).to_have_count(2)
    assert rows(page)[0] == hostile  # shown as text, never as HTML
    assert page.evaluate("window.__xss") is None
    page.locator("#logs tbody tr").nth(1).click()
    page.wait_for_selector("#detail[open]")
    assert page.inner_text("#detail-msg") == json.dumps(message, indent=2)
    fields = page.inner_text("#detail-fields")
    assert "level_name" in fields and "received_at" in fields and "p_description" in fields
    page.click("#detail-close")
    page.wait_for_selector("#detail:not([open])", state="attached")


def test_a_live_record_appears_while_tailing(page, live_server, account):
    account.send(client_record(0, msg="already there"))
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody tr")).to_have_count(1)
    page.check("#live")
    page.wait_for_selector("#live-state:has-text('live')")
    account.send(client_record(1, msg="arrived live", level=50))
    expect(page.locator("#logs tbody td.msg")).to_have_text(["arrived live", "already there"])
    expect(page.locator("#histogram")).to_have_attribute("data-total", "2")
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.uncheck("#live")
    assert page.inner_text("#live-state") == ""


def test_scrolling_down_loads_older_records(page, live_server, account):
    account.send(*[client_record(i, msg=f"record {i:03d}") for i in range(450)])
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody tr").nth(199)).to_be_attached()
    for _ in range(10):
        page.mouse.wheel(0, 20_000)
        if page.locator("#logs tbody tr").count() == 450:
            break
        page.wait_for_timeout(300)
    expect(page.locator("#status")).to_have_text("450 records shown (all)")
    texts = rows(page)
    assert texts[0] == "record 449" and texts[-1] == "record 000" and len(set(texts)) == 450


def test_the_docs_page_renders_every_endpoint_offline(page, live_server):
    page.goto(live_server + "/docs")
    page.wait_for_selector("section.op")
    headings = page.locator("section.op h2").all_inner_texts()
    for expected in ("/send_logs", "/api/logs", "/api/logs/export", "/api/stats", "/api/tail"):
        assert any(h.endswith(expected) for h in headings), expected
    assert "X-User-Token" in page.inner_text("body")


def test_the_histogram_falls_back_to_days_for_old_records(page, live_server, account):
    account.send(
        client_record(0, msg="old", level=40, event_at="2020-05-05T12:22:21"),
        client_record(1, msg="older", level=30, event_at="2020-05-04T08:00:00"),
    )
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody tr")).to_have_count(2)
    histogram = page.locator("#histogram")
    expect(histogram).to_have_attribute("data-total", "2")
    expect(histogram).to_have_attribute("data-bars", "2")  # two days
    assert page.locator("#legend span").all_inner_texts() == ["warning", "error"]


def test_a_user_name_beyond_latin_1_signs_in(page, live_server):
    account = Account(live_server, prefix="zoë_🚀_ошибка")
    account.send(client_record(0, msg="hello from a rocket"))
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody td.msg")).to_have_text(["hello from a rocket"])
    expect(page.locator("#whoami")).to_have_text(f"as {account.name}")
