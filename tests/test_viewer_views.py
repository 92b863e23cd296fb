"""The web viewer's views: in the URL (Back, Forward, bookmarks, permalinks), by keyboard,
on a phone, in dark mode, and in UTC or local time, in a real headless Chromium.

The browser, the live server (both backends) and the tabs' checks (no console error, no
other host) are those of ``support/browser_fixtures.py``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from support import client_record
from support.browser import expect, query, sign_in

pytest_plugins = ["support.browser_fixtures"]


# -- views in the URL -----------------------------------------------------------------------


def test_every_filter_lives_in_the_url_and_back_and_forward_restore_it(page, live_server, account):
    account.send(
        client_record(0, msg="disk full", level=40, p_description="disk"),
        client_record(1, msg="disk almost full", level=30, p_description="disk"),
        client_record(2, msg="payment failed", level=40, p_description="billing"),
        p_name="worker",
        pid=4242,
    )
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody tr")).to_have_count(3)
    page.select_option("#filter-level", "40")
    expect(page.locator("#logs tbody tr")).to_have_count(2)
    # Typed slower than the 300 ms pause that sends it, and still one history entry.
    page.locator("#filter-q").press_sequentially("disk", delay=400)
    expect(page.locator("#logs tbody td.msg")).to_have_text(["disk full"])
    for field, value in [
        ("p_name", "worker"),
        ("p_description", "disk"),
        ("pid", "4242"),
        ("since", "2000-01-01 00:00"),
        ("until", "2100-01-01"),
    ]:
        page.fill(f"#filter-{field}", value)
        expect(page).to_have_url(re.compile(f"{field}="))
    wanted = {
        "q": "disk",
        "level": "40",
        "p_name": "worker",
        "p_description": "disk",
        "pid": "4242",
        "since": "2000-01-01T00:00:00Z",
        "until": "2100-01-01T00:00:00Z",
    }
    assert query(page) == wanted
    expect(page.locator("#logs tbody td.msg")).to_have_text(["disk full"])
    page.reload()  # the same view after a reload
    expect(page.locator("#logs tbody td.msg")).to_have_text(["disk full"])
    assert page.input_value("#filter-since") == "2000-01-01 00:00" and query(page) == wanted
    page.click("#filter-reset")
    expect(page.locator("#logs tbody tr")).to_have_count(3)
    page.go_back()
    expect(page.locator("#filter-until")).to_have_value("2100-01-01 00:00")
    for _ in range(5):  # until, since, pid, logger, process
        page.go_back()
    expect(page.locator("#filter-q")).to_have_value("disk")
    expect(page.locator("#filter-p_name")).to_have_value("")
    assert query(page) == {"q": "disk", "level": "40"}
    page.go_back()  # the whole word "disk" was one entry
    expect(page.locator("#filter-q")).to_have_value("")
    expect(page.locator("#logs tbody tr")).to_have_count(2)
    page.go_forward()
    expect(page.locator("#logs tbody td.msg")).to_have_text(["disk full"])
    assert query(page) == {"q": "disk", "level": "40"}


def test_a_bookmarked_view_with_a_record_opens_as_it_was_after_sign_in(page, live_server, account):
    account.send(
        client_record(0, msg="disk full", level=40),
        client_record(1, msg="disk fine", level=20),
        client_record(2, msg="other", level=40),
    )
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody tr")).to_have_count(3)
    page.fill("#filter-q", "disk")
    expect(page.locator("#logs tbody tr")).to_have_count(2)
    page.locator("#logs tbody tr").nth(1).click()
    expect(page.locator("#detail-msg")).to_have_text("disk full")
    bookmark = page.url
    record = query(page)
    assert record["q"] == "disk" and record["record"].isdigit() and record["at"].endswith("Z")
    page.keyboard.press("Escape")  # closing goes Back to the view without the record
    expect(page.locator("#detail")).not_to_have_attribute("open", "")
    expect(page).not_to_have_url(re.compile("record="))
    assert query(page) == {"q": "disk"}
    page.click("#signout")
    page.goto(bookmark)
    expect(page.locator("#signin")).to_be_visible()
    page.fill("#signin-user", account.name)
    page.fill("#signin-token", account.token)
    page.click("#signin-submit")
    expect(page.locator("#logs tbody td.msg")).to_have_text(["disk fine", "disk full"])
    expect(page.locator("#detail-msg")).to_have_text("disk full")
    assert page.url == bookmark


def test_a_record_permalink_opens_a_record_beyond_the_first_page(page, live_server, account):
    account.send(client_record(0, msg="the old one", level=50, event_at="2020-01-01T00:00:00"))
    account.send(*[client_record(i, msg=f"newer {i}") for i in range(250)])
    sign_in(page, live_server, account)
    page.fill("#filter-q", "old")
    expect(page.locator("#logs tbody tr")).to_have_count(1)
    page.locator("#logs tbody tr").first.click()
    permalink = page.get_attribute("#detail-permalink", "href")
    assert set(query(page)) == {"q", "record", "at"}
    assert set(parse_qs(urlsplit(permalink).query)) == {"record", "at"}
    page.goto(permalink)
    expect(page.locator("#detail-msg")).to_have_text("the old one")
    expect(page.locator("#detail-title")).to_have_text(re.compile(r"^Record \d+ · CRITICAL$"))
    # The view behind is everything, not the search: two pages at least (the list loads on
    # while its end is in sight, and on a loaded machine a third page came in first once).
    expect(page.locator("#logs tbody tr").nth(199)).to_be_attached()
    page.keyboard.press("Escape")
    expect(page).not_to_have_url(re.compile("record="))


# -- keyboard and phone ---------------------------------------------------------------------


def test_the_keyboard_alone_moves_opens_steps_and_closes(page, live_server, account):
    account.send(*[client_record(i, msg=f"record {i}") for i in range(3)])
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody tr")).to_have_count(3)
    focused = "document.activeElement.closest('tr')?.querySelector('.msg')?.textContent"
    page.keyboard.press("j")
    assert page.evaluate(focused) == "record 2"
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert page.evaluate(focused) == "record 0"
    page.keyboard.press("k")
    assert page.evaluate(focused) == "record 1"
    page.keyboard.press("Enter")
    expect(page.locator("#detail-msg")).to_have_text("record 1")
    page.keyboard.press("j")  # older, in the dialog too
    expect(page.locator("#detail-msg")).to_have_text("record 0")
    assert query(page)["record"] == page.get_attribute("#detail", "data-id")
    page.keyboard.press("k")
    page.keyboard.press("k")
    expect(page.locator("#detail-msg")).to_have_text("record 2")
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).not_to_have_attribute("open", "")
    # Back on the row last shown (focus moves once the closing's history step has run).
    page.wait_for_function(f"() => ({focused}) === 'record 2'", timeout=5000)
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "filter-q"
    page.keyboard.type("record 0")
    expect(page.locator("#logs tbody tr")).to_have_count(1)
    page.keyboard.press("Escape")
    page.keyboard.press("?")
    expect(page.locator("#search-help")).to_be_visible()


def test_the_search_help_documents_the_syntax(page, live_server, account):
    sign_in(page, live_server, account)
    page.click("#help-button")
    help_text = page.inner_text("#search-help")
    for example in ['"disk full"', "-heartbeat", "process:web", "logger:billing", "pid:4242"]:
        assert example in help_text
    assert "level:>=warning" in help_text and "level:error" in help_text
    page.keyboard.press("Escape")
    expect(page.locator("#search-help")).to_be_hidden()


def test_on_a_phone_each_row_is_stacked_and_the_message_shows(tabs, live_server, account):
    page = tabs.open(live_server, viewport={"width": 390, "height": 844}, is_mobile=True)
    long = "payment failed for order 17: the card was declined by the issuer " * 3
    account.send(client_record(0, msg=long, level=40))
    sign_in(page, live_server, account)
    message = page.locator("#logs tbody td.msg").first
    expect(message).to_be_visible()
    box = message.bounding_box()
    assert box["width"] > 300 and box["height"] > 30  # full width, wrapped on lines
    time_box = page.locator("#logs tbody td.time").first.bounding_box()
    assert box["y"] >= time_box["y"] + time_box["height"] - 1  # below the time
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.locator("#filter-p_name")).to_be_hidden()
    page.click("#more-filters")
    expect(page.locator("#filter-p_name")).to_be_visible()
    page.locator("#logs tbody tr").first.click()
    expect(page.locator("#detail-msg")).to_have_text(long)


# -- dark mode and time zones ---------------------------------------------------------------


def background(page) -> str:
    return page.evaluate("getComputedStyle(document.body).backgroundColor")


def test_dark_mode_follows_the_system_and_a_toggle_that_is_remembered(tabs, live_server, account):
    page = tabs.open(live_server, color_scheme="dark")
    account.send(client_record(0, msg="in the dark", level=40))
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody tr")).to_have_count(1)
    dark, light = "rgb(17, 20, 24)", "rgb(246, 247, 249)"
    assert background(page) == dark
    page.click("#theme")
    expect(page.locator("#theme")).to_have_text("Theme: light")
    assert background(page) == light
    page.reload()
    expect(page.locator("#logs tbody tr")).to_have_count(1)
    assert background(page) == light
    page.click("#theme")
    assert background(page) == dark and page.inner_text("#theme") == "Theme: dark"
    page.emulate_media(color_scheme="light")
    assert background(page) == dark  # the choice wins over the system
    page.click("#theme")
    assert background(page) == light and page.inner_text("#theme") == "Theme: auto"


def test_times_show_in_utc_or_local_in_one_24_hour_format(tabs, live_server, account):
    page = tabs.open(live_server, timezone_id="Asia/Kolkata", locale="en-US")
    account.send(client_record(0, msg="at teatime", event_at="2021-03-01T10:15:00"))
    sign_in(page, live_server, account)
    time_cell = page.locator("#logs tbody td.time")
    expect(time_cell).to_have_text("2021-03-01 10:15:00.000")
    expect(page.locator("#time-head")).to_have_text("Event time (UTC)")
    page.click("#zone")
    expect(time_cell).to_have_text("2021-03-01 15:45:00.000")
    expect(page.locator("#time-head")).to_have_text("Event time (UTC+05:30)")
    expect(page.locator("#label-since")).to_have_text("Since (UTC+05:30)")
    page.fill("#filter-since", "2021-03-01 15:45")  # read in local time
    expect(page).to_have_url(re.compile("since="))
    assert query(page) == {"since": "2021-03-01T10:15:00Z"}
    expect(page.locator("#logs tbody tr")).to_have_count(1)
    page.fill("#filter-since", "2021-03-01 15:46")
    expect(page.locator("#status")).to_have_text("No records match.")
    page.fill("#filter-since", "")
    time_cell.click()
    expect(page.locator("#detail-fields [data-field=event_at]")).to_have_text(
        "2021-03-01 15:45:00.000 UTC+05:30"
    )
    page.keyboard.press("Escape")
    expect(page).not_to_have_url(re.compile("record="))
    page.reload()  # the choice is remembered
    expect(time_cell).to_have_text("2021-03-01 15:45:00.000")
    page.click("#zone")
    expect(time_cell).to_have_text("2021-03-01 10:15:00.000")
