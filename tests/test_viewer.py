"""The web log viewer, driven in a real headless Chromium against the real server.

docs/API.md, "The viewer".

``python3 app.py`` runs as a process on both backends; records are sent through
``//send_logs`` as the real client does; the browser signs in, reads, filters, zooms the
chart, follows the URL through Back and Forward, opens records with the keyboard, and sees a
live record arrive. The page must load nothing from another host and raise no error (a
Content-Security-Policy violation is an error). The views (URL, keyboard, phone, dark mode,
time zones) are tested in ``test_viewer_views.py``, the outages (server down, database down,
503 with Retry-After) in ``test_viewer_outages.py``; all three use the fixtures of
``support/browser_fixtures.py``.

Needs Playwright's Python package and Debian's ``chromium`` (``/usr/bin/chromium``); without
them these tests are skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from support import client_record
from support.browser import API_KEY, LiveAccount, ago, expect, http, query, rows, sign_in

SCREENSHOT = Path("/tmp/bot-logging-server-viewer.png")
PLOT_PAD = 6  # the chart's left and right padding (static/viewer/chart.js PAD)

pytest_plugins = ["support.browser_fixtures"]


# -- signing in, reading, filtering ---------------------------------------------------------


def test_sign_in_and_see_the_records_sent_through_send_logs(page, live_server, account):
    account.send(
        client_record(0, msg="first warning", level=30),
        client_record(1, msg="an error", level=40),
        client_record(2, msg="it is critical", level=50),
    )
    sign_in(page, live_server, account, token="0" * 32)
    expect(page.locator("#signin-error")).to_have_text("Wrong user, password or token.")
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody tr")).to_have_count(3)
    assert rows(page) == ["it is critical", "an error", "first warning"]
    badges = page.locator("#logs tbody .level")
    assert badges.all_inner_texts() == ["CRITICAL", "ERROR", "WARNING"]
    assert badges.first.get_attribute("class") == "level lvl-critical"
    colour = badges.first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(142, 36, 170)"
    assert page.evaluate("sessionStorage.getItem('bls.credentials')").count(account.token) == 1
    assert page.evaluate("localStorage.getItem('bls.credentials')") is None
    page.reload()  # still signed in in this tab
    expect(page.locator("#logs tbody tr")).to_have_count(3)
    page.click("#signout")
    assert page.is_visible("#signin") and page.evaluate("sessionStorage.length") == 0


def test_remember_me_keeps_the_sign_in_on_this_device_until_sign_out(tabs, live_server, account):
    account.send(client_record(0, msg="remembered"))
    first = tabs.open(live_server)
    sign_in(first, live_server, account)
    expect(first.locator("#logs tbody tr")).to_have_count(1)
    second = tabs.open(live_server, context=first.context)  # a new tab: no sessionStorage
    second.goto(live_server + "/")
    expect(second.locator("#signin")).to_be_visible()
    second.fill("#signin-user", account.name)
    second.fill("#signin-token", account.token)
    second.check("#signin-remember")
    second.click("#signin-submit")
    expect(second.locator("#logs tbody td.msg")).to_have_text(["remembered"])
    third = tabs.open(live_server, context=first.context)
    third.goto(live_server + "/")
    expect(third.locator("#logs tbody td.msg")).to_have_text(["remembered"])
    third.click("#signout")
    fourth = tabs.open(live_server, context=first.context)
    fourth.goto(live_server + "/")
    expect(fourth.locator("#signin")).to_be_visible()


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
    expect(page.locator("#total")).to_have_text("4 matches")
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
    expect(page.locator("#total")).to_have_text("0 matches")
    page.click("#filter-reset")
    expect(page.locator("#logs tbody tr")).to_have_count(4)
    assert page.input_value("#filter-q") == "" and query(page) == {}


def test_the_search_language_lists_only_the_matching_records(tabs, page, live_server, account):
    account.send(
        client_record(0, msg="card declined for order 17", level=40),
        client_record(1, msg="card declined again", level=30),
        client_record(2, msg="declined: card expired", level=50),
        client_record(3, msg="CARD DECLINED twice", level=50),
        client_record(4, msg="all good", level=50),
    )
    sign_in(page, live_server, account)
    messages = page.locator("#logs tbody td.msg")
    expect(messages).to_have_count(5)
    page.locator("#filter-q").press_sequentially('level:>=error "card declined"', delay=20)
    expect(messages).to_have_text(["CARD DECLINED twice", "card declined for order 17"])
    expect(page.locator("#histogram")).to_have_attribute("data-total", "2")
    assert query(page) == {"q": 'level:>=error "card declined"'}
    # An unclosed quote is marked while typing, never sent; other mistakes are the server's 400.
    sent: list[str] = []
    page.on("request", lambda r: "/api/" in r.url and sent.append(r.url))
    page.fill("#filter-q", '"card declined')
    expect(page.locator("#status")).to_have_text('Search: close the quote (")')
    page.wait_for_timeout(700)
    assert sent == []
    tabs.allow(r"status of 400")
    page.fill("#filter-q", "level:loud")
    expect(page.locator("#status")).to_contain_text("query.q: level:loud: not a level")


def test_the_process_and_logger_inputs_complete_the_users_own_names(page, live_server, account):
    LiveAccount(live_server).send(client_record(0, p_description="worker-of-another"))
    account.send(client_record(0, p_description="worker-billing"), p_name="web-1")
    account.send(client_record(1, p_description="Worker-mail"), p_name="cron")
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody tr")).to_have_count(2)
    page.fill("#filter-p_description", "wor")
    options = page.locator("#suggest-p_description option")
    expect(options).to_have_count(2)
    assert [o.get_attribute("value") for o in options.all()] == ["worker-billing", "Worker-mail"]
    page.fill("#filter-p_name", "W")
    expect(page.locator("#suggest-p_name option")).to_have_count(1)
    assert page.get_attribute("#suggest-p_name option", "value") == "web-1"


def test_a_password_signs_in_and_only_its_token_is_kept(page, live_server):
    name = f"pw_{uuid.uuid4().hex[:8]}"
    created = http(
        live_server,
        "/create_user",
        {"user": name, "password": "open sesame"},
        {"X-Api-Key": API_KEY},
    )
    page.goto(live_server + "/")
    page.fill("#signin-user", name)
    page.fill("#signin-token", "open sesam")
    page.click("#signin-submit")
    expect(page.locator("#signin-error")).to_have_text("Wrong user, password or token.")
    page.fill("#signin-token", "open sesame")
    page.click("#signin-submit")
    expect(page.locator("#status")).to_have_text("No records match.")
    expect(page.locator("#whoami")).to_have_text(f"as {name}")
    kept = page.evaluate("sessionStorage.getItem('bls.credentials')")
    assert json.loads(kept) == {"user": name, "token": created["token"]}
    assert "sesame" not in kept and page.input_value("#signin-token") == ""


def test_a_bad_pid_or_time_is_marked_in_the_page_and_never_sent(page, live_server, account):
    account.send(client_record(0, msg="the only one"), pid=7)
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody tr")).to_have_count(1)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url))
    page.fill("#filter-pid", "7a")
    expect(page.locator("#status")).to_have_text("PID: a whole number, like 4242")
    expect(page.locator("#filter-pid")).to_have_attribute("aria-invalid", "true")
    page.fill("#filter-since", "yesterday")
    expect(page.locator("#status")).to_contain_text("Since: a time like 2024-05-05 14:30 (UTC)")
    page.wait_for_timeout(1500)
    # Nothing with a bad value reached the server, so nothing can be retried in a loop. (The
    # first page's chart request may still be landing: only the bad values are looked for.)
    assert [u for u in sent if "7a" in u or "yesterday" in u] == []
    page.fill("#filter-since", "")
    page.fill("#filter-pid", "7")
    expect(page.locator("#filter-pid")).to_have_attribute("aria-invalid", "false")
    expect(page.locator("#status")).to_have_text("1 records shown (all)")
    assert query(page) == {"pid": "7"}
    assert 1 <= len([u for u in sent if "/api/logs?" in u]) <= 2


def test_an_error_answer_is_shown_once_and_not_retried(tabs, page, live_server, account):
    tabs.allow(r"status of 400")
    account.send(client_record(0, msg="fine"))
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody tr")).to_have_count(1)
    page.route(
        "**/api/logs?*",
        lambda route: route.fulfill(
            status=400,
            content_type="application/json",
            body=json.dumps({"code": 400, "message": "BadRequest", "detail": "q: too odd"}),
        ),
    )
    sent: list[str] = []
    page.on("request", lambda r: "/api/logs?" in r.url and sent.append(r.url))
    page.fill("#filter-q", "odd")
    expect(page.locator("#status")).to_have_text("Could not load: q: too odd")
    page.mouse.wheel(0, 5000)
    page.wait_for_timeout(2000)
    assert len(sent) == 1


def test_a_record_opens_in_a_detail_view_named_like_the_filters(page, live_server, account):
    message = {"order": 17, "items": ["a", "b"], "error": {"code": "card_declined"}}
    hostile = '<img src=x onerror="window.__xss = 1">'
    account.send(
        client_record(0, msg=message, level=40, p_description="payments"),
        client_record(1, msg=hostile),
        p_name="worker",
        pid=31337,
    )
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody tr")).to_have_count(2)
    assert rows(page)[0] == hostile  # shown as text, never as HTML
    assert page.evaluate("window.__xss") is None
    page.locator("#logs tbody tr").nth(1).click()
    page.wait_for_selector("#detail[open]")
    assert page.inner_text("#detail-msg") == json.dumps(message, indent=2)
    labels = page.locator("#detail-fields dt").all_inner_texts()
    assert labels == [
        "ID",
        "Event time",
        "Sent",
        "Received",
        "Level",
        "Process",
        "Logger",
        "PID",
        "Message length",
    ]
    assert page.inner_text("#detail-fields [data-field=p_name]") == "worker"
    assert page.inner_text("#detail-fields [data-field=p_description]") == "payments"
    assert page.inner_text("#detail-fields [data-field=level]") == "ERROR (40)"
    page.click("#detail-copy")
    expect(page.locator("#detail-note")).to_have_text("JSON copied.")
    copied = json.loads(page.evaluate("navigator.clipboard.readText()"))
    assert json.loads(copied["msg"]) == message and copied["p_name"] == "worker"
    expect(page.locator("#detail-next")).to_be_disabled()
    page.click("#detail-prev")  # the newer record
    expect(page.locator("#detail-msg")).to_have_text(hostile)
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


def test_a_late_record_shows_in_its_place_in_time_and_arrival_order_is_a_toggle(
    page, live_server, account
):
    account.send(
        client_record(0, msg="an hour ago", event_at=ago(hours=1)),
        client_record(1, msg="a minute ago", event_at=ago(minutes=1)),
    )
    # A client that was offline sends what it logged half an hour ago, last.
    account.send(client_record(2, msg="late: half an hour ago", event_at=ago(minutes=30)))
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody td.msg")).to_have_text(
        ["a minute ago", "late: half an hour ago", "an hour ago"]
    )
    assert "sort" not in query(page) and not page.is_checked("#arrival")
    page.check("#arrival")
    expect(page.locator("#logs tbody td.msg")).to_have_text(
        ["late: half an hour ago", "a minute ago", "an hour ago"]
    )
    assert query(page)["sort"] == "id"
    page.reload()  # the order is in the URL
    expect(page.locator("#logs tbody td.msg")).to_have_text(
        ["late: half an hour ago", "a minute ago", "an hour ago"]
    )
    assert page.is_checked("#arrival")
    page.go_back()
    expect(page.locator("#logs tbody td.msg")).to_have_text(
        ["a minute ago", "late: half an hour ago", "an hour ago"]
    )
    assert not page.is_checked("#arrival")
    # Tailing by event time, a late record arrives live in its place, not on top.
    page.check("#live")
    page.wait_for_selector("#live-state:has-text('live')")
    account.send(client_record(3, msg="late and live: 10 minutes ago", event_at=ago(minutes=10)))
    expect(page.locator("#logs tbody td.msg")).to_have_text(
        ["a minute ago", "late and live: 10 minutes ago", "late: half an hour ago", "an hour ago"]
    )


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


def test_a_user_name_beyond_latin_1_signs_in(page, live_server):
    account = LiveAccount(live_server, prefix="zoë_🚀_ошибка")
    account.send(client_record(0, msg="hello from a rocket"))
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody td.msg")).to_have_text(["hello from a rocket"])
    expect(page.locator("#whoami")).to_have_text(f"as {account.name}")


# -- the chart: a linear time axis, hover, drag to zoom, quick ranges -----------------------


def chart_x(page, iso: str) -> float:
    """The page x of time `iso` on the chart (its axis is linear from data-from to data-to)."""
    box = page.locator("#histogram").bounding_box()
    start = datetime.fromisoformat(page.get_attribute("#histogram", "data-from"))
    end = datetime.fromisoformat(page.get_attribute("#histogram", "data-to"))
    moment = datetime.fromisoformat(iso).replace(tzinfo=UTC)
    share = (moment - start) / (end - start)
    return box["x"] + PLOT_PAD + share * (box["width"] - 2 * PLOT_PAD)


def hover_text(page, iso: str) -> str:
    box = page.locator("#histogram").bounding_box()
    page.mouse.move(chart_x(page, iso), box["y"] + box["height"] / 2)
    return page.inner_text("#chart-tip")


def drawn_at(page, iso: str) -> bool:
    """Whether the chart has a bar at time `iso` (a painted pixel just above its baseline)."""
    box = page.locator("#histogram").bounding_box()
    x = round(chart_x(page, iso) - box["x"])
    script = """([x]) => {
        const canvas = document.getElementById("histogram");
        const ratio = window.devicePixelRatio || 1;
        const y = Math.floor((canvas.clientHeight - 20) * ratio);
        return canvas.getContext("2d").getImageData(Math.floor(x * ratio), y, 1, 1).data[3];
    }"""
    return page.evaluate(script, [x]) > 0


def test_the_time_axis_is_linear_with_empty_buckets_as_gaps(page, live_server, account):
    account.send(
        client_record(0, msg="a", level=40, event_at="2021-03-01T10:15:00"),
        client_record(1, msg="b", level=20, event_at="2021-03-01T11:20:00"),
        client_record(2, msg="c", level=30, event_at="2021-03-01T11:40:00"),
        client_record(3, msg="d", level=50, event_at="2021-03-04T09:00:00"),
    )
    sign_in(page, live_server, account)
    histogram = page.locator("#histogram")
    expect(histogram).to_have_attribute("data-total", "4")
    expect(page.locator("#total")).to_have_text("4 matches")
    # 3 days: per hour, 72 buckets from the first record's hour to the last one's end.
    expect(histogram).to_have_attribute("data-bucket", "hour")
    expect(histogram).to_have_attribute("data-bars", "3")
    assert histogram.get_attribute("data-buckets") == "72"
    assert histogram.get_attribute("data-from") == "2021-03-01T10:00:00.000Z"
    assert page.locator("#legend span").all_inner_texts() == [
        "info",
        "warning",
        "error",
        "critical",
    ]
    # Each bar is drawn at its own time, and the empty days between them are gaps.
    drawn = {iso: drawn_at(page, iso) for iso in ("2021-03-01T10:30", "2021-03-01T11:30")}
    drawn |= {iso: drawn_at(page, iso) for iso in ("2021-03-02T20:30", "2021-03-04T09:30")}
    assert drawn == {
        "2021-03-01T10:30": True,
        "2021-03-01T11:30": True,
        "2021-03-02T20:30": False,
        "2021-03-04T09:30": True,
    }
    # Hovering shows the counts of the bucket under the pointer (0 in a gap).
    assert hover_text(page, "2021-03-01T10:30:00").startswith("1 record\n2021-03-01 10:00 \u2013 ")
    assert hover_text(page, "2021-03-01T11:30:00") == (
        "2 records\n2021-03-01 11:00 \u2013 2021-03-01 12:00\ninfo 1, warning 1"
    )
    assert hover_text(page, "2021-03-02T20:30:00").startswith("0 records\n2021-03-02 20:00")
    assert hover_text(page, "2021-03-04T09:30:00").endswith("critical 1")


def test_dragging_across_the_chart_zooms_in_and_sets_since_until(page, live_server, account):
    account.send(
        client_record(0, msg="a", event_at="2021-03-01T10:15:00"),
        client_record(1, msg="b", event_at="2021-03-01T11:20:00"),
        client_record(2, msg="d", event_at="2021-03-04T09:00:00"),
    )
    sign_in(page, live_server, account)
    expect(page.locator("#histogram")).to_have_attribute("data-bars", "3")
    y = page.locator("#histogram").bounding_box()["y"] + 60
    page.mouse.move(chart_x(page, "2021-03-01T10:30:00"), y)
    page.mouse.down()
    page.mouse.move(chart_x(page, "2021-03-01T11:30:00"), y, steps=5)
    expect(page.locator("#chart-band")).to_be_visible()
    page.mouse.up()
    # The selection snaps outwards to whole hours, becomes the filter and the URL.
    expect(page.locator("#filter-since")).to_have_value("2021-03-01 10:00")
    expect(page.locator("#filter-until")).to_have_value("2021-03-01 12:00")
    assert query(page) == {"since": "2021-03-01T10:00:00Z", "until": "2021-03-01T12:00:00Z"}
    expect(page.locator("#logs tbody td.msg")).to_have_text(["b", "a"])
    expect(page.locator("#total")).to_have_text("2 matches")
    expect(page.locator("#histogram")).to_have_attribute("data-bucket", "minute")
    assert page.get_attribute("#histogram", "data-from") == "2021-03-01T10:00:00.000Z"
    assert page.get_attribute("#histogram", "data-to") == "2021-03-01T12:00:00.000Z"
    page.go_back()
    expect(page.locator("#logs tbody td.msg")).to_have_text(["d", "b", "a"])
    expect(page.locator("#filter-since")).to_have_value("")


def test_quick_ranges_count_back_from_now(page, live_server, account):
    account.send(
        client_record(0, msg="2 days ago", event_at=ago(days=2)),
        client_record(1, msg="3 hours ago", event_at=ago(hours=3)),
        client_record(2, msg="30 min ago", event_at=ago(minutes=30)),
        client_record(3, msg="now", event_at=ago(seconds=5)),
        client_record(4, msg="in 2020", event_at="2020-01-01T00:00:00"),
    )
    sign_in(page, live_server, account)
    expect(page.locator("#logs tbody tr")).to_have_count(5)
    expect(page.locator("#ranges [data-range='']")).to_have_attribute("aria-pressed", "true")
    for label, key, count, bucket in [
        ("15 min", "15m", 1, "minute"),
        ("1 h", "1h", 2, "minute"),
        ("24 h", "24h", 3, "hour"),
        ("7 d", "7d", 4, "hour"),
    ]:
        page.click(f"#ranges >> text='{label}'")
        expect(page.locator("#total")).to_have_text(f"{count} match" + ("es" if count > 1 else ""))
        expect(page.locator("#logs tbody tr")).to_have_count(count)
        expect(page.locator("#histogram")).to_have_attribute("data-bucket", bucket)
        expect(page.locator(f"#ranges [data-range='{key}']")).to_have_attribute(
            "aria-pressed", "true"
        )
        assert query(page) == {"range": key}
    page.click("#ranges >> text='All'")
    expect(page.locator("#logs tbody tr")).to_have_count(5)
    assert query(page) == {}
