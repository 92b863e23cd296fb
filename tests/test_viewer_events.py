"""The viewer's Events tab: usage dashboards, lists and the session timeline, in a real
headless Chromium against the real server.

docs/API.md, "The viewer". The demo page is clicked at known places and left; the tab then
shows those clicks on the heat map where they were made (read back from the canvas's
pixels) and the session's events in order. Events sent through ``POST /api/events`` at known
times drive the other views: events per name on a time axis with gaps, sessions per day, top
pages, the invalid-time filter, filters in the URL, and the layout on a phone. The browser,
the tabs' checks (no console error, no other host) and the live server are those of
``support/browser_fixtures.py``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.browser import expect, query, sign_in
from support.tracker import VIEWPORT, EventUser, centre, wait_until

pytest_plugins = ["support.browser_fixtures"]

SHOTS = Path("/tmp")
PLOT_PAD = 6  # the chart's left and right padding (static/viewer/chart.js PAD)
sqlite_only = pytest.mark.parametrize("events_server", ["sqlite"], indirect=True)

# The heat map's pixel at (x %, y %) of the canvas, as [r, g, b, a].
PIXEL = """([x, y]) => {
    const canvas = document.getElementById("ev-heatmap");
    const px = Math.min(canvas.width - 1, Math.floor(x / 100 * canvas.width));
    const py = Math.min(canvas.height - 1, Math.floor(y / 100 * canvas.height));
    return Array.from(canvas.getContext("2d").getImageData(px, py, 1, 1).data);
}"""


def open_events(tabs, base: str, user: EventUser, path: str = "/?tab=events", **options):
    page = tabs.open(base, **{"viewport": VIEWPORT, **options})
    sign_in(page, base, user, path=path)
    expect(page.locator("#app")).to_have_attribute("data-tab", "events")
    return page


def heat_points(page) -> set[tuple[float, float]]:
    """The clicks the heat map shows (its data-points: "x,y x,y ...")."""
    text = page.get_attribute("#ev-heatmap", "data-points")
    return {tuple(map(float, point.split(","))) for point in text.split()}


def list_names(page) -> list[str]:
    return page.locator("#ev-list tbody td.name").all_inner_texts()


# -- from the demo page to the dashboards ---------------------------------------------------


def test_the_demos_clicks_are_on_the_heat_map_where_they_were_made_and_its_session_in_order(
    tabs, events_server, event_user
):
    base, _ = events_server
    page = tabs.open(base, viewport=VIEWPORT)
    page.goto(f"{base}/demo?key={event_user.key}")
    wait_until(page, "window.tracker && window.tracker.session")
    session = page.evaluate("tracker.session")
    clicks = []
    for target in ("#tile-1", "#tile-3", "#tile-5", "#buy"):
        x, y = centre(page, target)
        page.mouse.click(x, y)
        clicks.append((x / VIEWPORT["width"] * 100, y / VIEWPORT["height"] * 100))
    page.mouse.wheel(0, 1500)
    wait_until(page, "window.scrollY > 1000")
    page.click("#to-viewer")  # leaving the demo: the rest goes by beacon
    sign_in(page, base, event_user, path="/?tab=events")
    stored = event_user.wait_for(
        lambda events: "visibility" in [e["name"] for e in events], session=session
    )
    # The dashboards show every event, now that all of them have arrived.
    page.click("#ev-ranges [data-range='1h']")
    heat = page.locator("#ev-heatmap")
    expect(page.locator("#ev-heat-page")).to_have_value("/demo")
    expect(heat).to_have_attribute("data-clicks", "5")  # the four and the link to the viewer
    expect(page.locator("#ev-pages tbody tr").first).to_have_attribute("data-page", "/demo")
    assert page.locator("#ev-pages tbody tr").first.locator("td").all_inner_texts()[:3] == [
        "/demo",
        "1",
        "5",
    ]
    points = heat_points(page)
    for x, y in clicks:  # the tracker's one decimal
        assert any(abs(px - x) <= 0.05 and abs(py - y) <= 0.05 for px, py in points)
    # The pixels: heat where each click was made; the panel's own colour far from all of them.
    cells = [(cx + 5.0, cy + 5.0) for cx in range(0, 100, 10) for cy in range(0, 100, 10)]
    far = [c for c in cells if all(abs(c[0] - x) > 12 or abs(c[1] - y) > 12 for x, y in points)]
    assert len(far) >= 40
    background = page.evaluate(PIXEL, list(far[0]))
    assert {tuple(page.evaluate(PIXEL, list(c))) for c in far} == {tuple(background)}
    for x, y in clicks:
        assert page.evaluate(PIXEL, [x, y]) != background, (x, y)
    page.screenshot(path=str(SHOTS / "events-desktop.png"), full_page=True)
    # The session: from the sessions list to its timeline, every event in order.
    page.locator(f"#ev-sessions tbody tr[data-session='{session}']").click()
    expect(page).to_have_url(re.compile(f"session={session}"))
    items = page.locator("#ev-timeline-list li[data-name]")
    expect(items).to_have_count(len(stored))
    assert [
        int(i)
        for i in page.eval_on_selector_all(
            "#ev-timeline-list li[data-name]", "els => els.map((e) => e.dataset.id)"
        )
    ] == [e["id"] for e in stored]
    assert items.evaluate_all("els => els.map((e) => e.dataset.name)") == [
        "page_view",
        "click",
        "click",
        "click",
        "click",
        "click",
        "scroll",
        "visibility",
    ]
    assert "x " in items.nth(1).locator(".what").inner_text()
    assert items.nth(1).locator(".what").inner_text().endswith("div#tile-1")
    page.screenshot(path=str(SHOTS / "events-timeline.png"), full_page=True)


# -- the dashboards, from events at known times ---------------------------------------------


def drawn_at(page, iso: str) -> bool:
    """Whether the events chart has a bar at time `iso` (a pixel just above its baseline)."""
    box = page.locator("#ev-chart").bounding_box()
    start = datetime.fromisoformat(page.get_attribute("#ev-chart", "data-from"))
    end = datetime.fromisoformat(page.get_attribute("#ev-chart", "data-to"))
    share = (datetime.fromisoformat(iso).replace(tzinfo=UTC) - start) / (end - start)
    x = PLOT_PAD + share * (box["width"] - 2 * PLOT_PAD)
    script = """([x]) => {
        const canvas = document.getElementById("ev-chart");
        const ratio = window.devicePixelRatio || 1;
        const y = Math.floor((canvas.clientHeight - 20) * ratio);
        return canvas.getContext("2d").getImageData(Math.floor(x * ratio), y, 1, 1).data[3];
    }"""
    return page.evaluate(script, [x]) > 0


@sqlite_only
def test_events_per_name_are_drawn_on_a_time_axis_with_empty_buckets_as_gaps(
    tabs, events_server, event_user
):
    base, _ = events_server
    event_user.post(
        {"name": "click", "session": "s1", "time": "2021-03-01T10:15:00Z"},
        {"name": "page_view", "session": "s1", "time": "2021-03-01T11:20:00Z"},
        {"name": "click", "session": "s1", "time": "2021-03-01T11:40:00Z"},
        {"name": "signup", "session": "s2", "time": "2021-03-04T09:00:00Z"},
    )
    page = open_events(tabs, base, event_user)
    chart = page.locator("#ev-chart")
    expect(chart).to_have_attribute("data-total", "4")
    expect(page.locator("#ev-total")).to_have_text("4 events")
    expect(chart).to_have_attribute("data-bucket", "hour")
    expect(chart).to_have_attribute("data-bars", "3")
    assert chart.get_attribute("data-buckets") == "72"
    assert chart.get_attribute("data-from") == "2021-03-01T10:00:00.000Z"
    assert page.locator("#ev-legend span").all_inner_texts() == ["click", "page_view", "signup"]
    drawn = {
        iso: drawn_at(page, iso)
        for iso in ("2021-03-01T10:30", "2021-03-01T11:30", "2021-03-02T20:30", "2021-03-04T09:30")
    }
    assert drawn == {
        "2021-03-01T10:30": True,
        "2021-03-01T11:30": True,
        "2021-03-02T20:30": False,
        "2021-03-04T09:30": True,
    }
    # Hovering a bucket names its events; dragging across the chart zooms in (URL).
    box = chart.bounding_box()
    start = datetime.fromisoformat(chart.get_attribute("data-from"))
    end = datetime.fromisoformat(chart.get_attribute("data-to"))

    def x_of(iso: str) -> float:
        share = (datetime.fromisoformat(iso).replace(tzinfo=UTC) - start) / (end - start)
        return box["x"] + PLOT_PAD + share * (box["width"] - 2 * PLOT_PAD)

    page.mouse.move(x_of("2021-03-01T11:30"), box["y"] + box["height"] / 2)
    tip = page.locator("#ev-chart ~ .chart-tip")
    expect(tip).to_be_visible()
    hour = "2021-03-01 11:00 \u2013 2021-03-01 12:00"
    assert tip.inner_text() == f"2 events\n{hour}\nclick 1, page_view 1"
    page.mouse.move(x_of("2021-03-01T10:30"), box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(x_of("2021-03-01T11:50"), box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    expect(page).to_have_url(re.compile("since=2021-03-01T10%3A00%3A00Z"))
    assert query(page)["until"] == "2021-03-01T12:00:00Z"
    expect(chart).to_have_attribute("data-total", "3")
    expect(page.locator("#ev-list tbody tr")).to_have_count(3)


@sqlite_only
def test_sessions_per_day_and_top_pages_count_what_was_sent(tabs, events_server, event_user):
    base, _ = events_server
    views = [("a1", "/pricing"), ("a2", "/pricing"), ("a3", "/pricing"), ("a1", "/home")]
    event_user.post(
        *({"name": "page_view", "session": s, "page": p} for s, p in views),
        {"name": "click", "session": "a1", "page": "/home", "data": {"x": 10, "y": 20}},
        {"name": "click", "session": "a1", "page": "/home", "data": {"x": "90.5", "y": "80"}},
        {"name": "visit", "session": "a3", "page": "home", "data": {"page": "home"}},
        {"name": "click", "session": "a3", "page": "home", "data": {"loc_x": "29.66", "loc_y": 47}},
    )
    page = open_events(tabs, base, event_user)
    expect(page.locator("#ev-sessions-chart")).to_have_attribute("data-total", "3")
    expect(page.locator("#ev-sessions-total")).to_have_text("· 3 sessions")
    expect(page.locator("#ev-sessions-chart")).to_have_attribute("data-bars", "1")
    rows = page.locator("#ev-pages tbody tr")
    expect(rows).to_have_count(3)
    table = [r.locator("td").all_inner_texts() for r in rows.all()]
    assert table == [
        ["/pricing", "3", "0", "3", "3"],
        ["/home", "1", "2", "3", "1"],
        ["home", "1", "1", "2", "1"],
    ]
    expect(page.locator("#ev-heatmap")).to_have_attribute("data-page", "/home")
    assert heat_points(page) == {(10, 20), (90.5, 80)}  # the most clicked page first
    # A page of the WebSocket's clients (loc_x/loc_y as numeric strings) has its own map.
    rows.nth(2).click()
    expect(page).to_have_url(re.compile("map=home"))
    expect(page.locator("#ev-heatmap")).to_have_attribute("data-points", "29.66,47")
    expect(page.locator("#ev-heat-page")).to_have_value("home")
    page.go_back()
    expect(page.locator("#ev-heatmap")).to_have_attribute("data-page", "/home")
    assert heat_points(page) == {(10, 20), (90.5, 80)}


@sqlite_only
def test_sessions_and_top_pages_count_every_row_not_the_newest_few_thousand(
    tabs, events_server, event_user
):
    base, _ = events_server
    # 6,000 sessions of one event each: 3,500 views of /old first, then 2,500 clicks on /new
    # (the tab once counted the newest 5,000 sessions and the newest 3,000 events).
    for start in range(0, 6000, 1000):
        event_user.post(
            *(
                {"name": "page_view", "session": f"b{i}", "page": "/old"}
                if i < 3500
                else {"name": "click", "session": f"b{i}", "page": "/new"}
                for i in range(start, start + 1000)
            )
        )
    page = open_events(tabs, base, event_user)
    expect(page.locator("#ev-sessions-chart")).to_have_attribute("data-total", "6000")
    expect(page.locator("#ev-sessions-total")).to_have_text("· 6,000 sessions")
    rows = page.locator("#ev-pages tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-page", "/old")
    table = [r.locator("td").all_inner_texts() for r in rows.all()]
    assert table == [
        ["/old", "3500", "0", "3500", "3500"],
        ["/new", "0", "2500", "2500", "2500"],
    ]
    expect(page.locator("#ev-pages-note")).to_have_text("")
    expect(page.locator("#ev-heat-page")).to_have_value("/new")  # the most clicked page
    # A range: the sessions' axis spans it in UTC days, the empty ones as gaps.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = (today - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = (today + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    page.goto(f"{base}/?tab=events&since={since}&until={until}")
    chart = page.locator("#ev-sessions-chart")
    expect(chart).to_have_attribute("data-from", since.replace("Z", ".000Z"))
    expect(chart).to_have_attribute("data-buckets", "5")
    expect(chart).to_have_attribute("data-bars", "1")
    expect(chart).to_have_attribute("data-total", "6000")


@sqlite_only
def test_the_timeline_orders_a_sessions_events_by_time_and_reads_websocket_scenarios(
    tabs, events_server, event_user
):
    base, _ = events_server
    # Sent out of order, as retried batches and several sources may arrive.
    event_user.post(
        {
            "name": "click",
            "session": "w1",
            "page": "cart",
            "time": "2024-05-05T10:00:05Z",
            "data": {"loc_x": 12.5, "loc_y": 40, "el": "div.main>button#pay"},
        },
        {
            "name": "scenario",
            "session": "w1",
            "time": "2024-05-05T11:00:00Z",
            "data": {"app": "shop", "path": ["home", "cart", "pay"], "ended": "close"},
        },
        {"name": "visit", "session": "w1", "page": "home", "time": "2024-05-05T10:00:00Z"},
        {
            "name": "serverCall",
            "session": "w1",
            "time": "2024-05-05T10:00:05Z",
            "sequence": 9,
            "data": {"infos": "GET /api/cart"},
        },
        {"name": "other", "session": "w2", "time": "2024-05-05T10:00:01Z"},
    )
    page = open_events(tabs, base, event_user, path="/?tab=events&session=w1")
    items = page.locator("#ev-timeline-list li[data-name]")
    expect(items).to_have_count(4)
    # By time; at the same time, by the client's sequence (an event without one comes after).
    assert items.evaluate_all("els => els.map((e) => e.dataset.name)") == [
        "visit",
        "serverCall",
        "click",
        "scenario",
    ]
    assert items.nth(2).locator(".what").inner_text() == "x 12.5%, y 40% · div.main>button#pay"
    assert items.nth(2).locator(".offset").inner_text() == "+5.0 s"
    assert items.nth(3).locator(".what").inner_text() == "shop: home → cart → pay (ended: close)"
    expect(page.locator("#ev-timeline-list li.gap")).to_have_text("59 min 55 s later")
    expect(page.locator("#ev-timeline-key")).to_have_text("w1")
    expect(page.locator("#ev-list tbody tr")).to_have_count(4)  # the list is that session too
    page.fill("#ev-session", "")
    expect(page.locator("#ev-timeline")).to_be_hidden()
    expect(page.locator("#ev-list tbody tr")).to_have_count(5)


@sqlite_only
def test_filters_live_in_the_url_and_back_forward_and_the_tabs_restore_them(
    tabs, events_server, event_user
):
    base, _ = events_server
    event_user.post(
        {"name": "click", "session": "f1", "category": "ui", "page": "/a"},
        {"name": "click", "session": "f2", "page": "/b"},
        {"name": "page_view", "session": "f1", "page": "/a"},
        {"name": "later", "session": "f1", "time": "next tuesday"},
    )
    page = open_events(tabs, base, event_user)
    expect(page.locator("#ev-list tbody tr")).to_have_count(4)
    for logs_only in ("#logs", "#filters", "#histogram", "#live", "#export-csv"):
        expect(page.locator(logs_only)).to_be_hidden()
    page.fill("#ev-name", "click")
    expect(page).to_have_url(re.compile("name=click"))
    expect(page.locator("#ev-list tbody tr")).to_have_count(2)  # the list is redrawn
    assert sorted(list_names(page)) == ["click", "click"]
    page.fill("#ev-page", "/a")
    expect(page.locator("#ev-list tbody tr")).to_have_count(1)
    assert query(page) == {"tab": "events", "name": "click", "page": "/a"}
    page.reload()
    expect(page.locator("#ev-list tbody tr")).to_have_count(1)
    assert page.input_value("#ev-page") == "/a"
    page.go_back()
    expect(page.locator("#ev-page")).to_have_value("")
    expect(page.locator("#ev-list tbody tr")).to_have_count(2)
    # To the logs and back: each tab keeps its own view.
    page.click("#tab-logs")
    expect(page.locator("#app")).to_have_attribute("data-tab", "logs")
    expect(page.locator("#logs")).to_be_visible()
    expect(page.locator("#events")).to_be_hidden()
    assert query(page) == {}
    page.click("#tab-events")
    assert query(page) == {"tab": "events", "name": "click"}
    page.go_back()
    expect(page.locator("#app")).to_have_attribute("data-tab", "logs")
    page.go_forward()
    expect(page.locator("#ev-name")).to_have_value("click")
    # Invalid client times: only those, marked in the list.
    page.click("#ev-reset")
    page.check("#ev-invalid")
    expect(page).to_have_url(re.compile("invalid=true"))
    expect(page.locator("#ev-list tbody tr")).to_have_count(1)
    assert list_names(page) == ["later"]
    expect(page.locator("#ev-list tbody td.time.invalid")).to_have_count(1)
    # A bad time is marked on its field and never sent.
    page.fill("#ev-since", "yesterday")
    expect(page.locator("#ev-since")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#ev-status")).to_have_text(re.compile("^Since: a time like"))
    assert "since" not in query(page)


@sqlite_only
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_on_a_phone_the_events_tab_fits_390_pixels(tabs, events_server, event_user, scheme):
    base, _ = events_server
    event_user.post(
        {"name": "page_view", "session": "p1" * 16, "page": "/a/very/long/page/path/of/a/site"},
        {
            "name": "click",
            "session": "p1" * 16,
            "page": "/a/very/long/page/path/of/a/site",
            "data": {"x": 50, "y": 50, "w": 390, "h": 844, "el": "main>section.hero>button#buy"},
        },
    )
    page = open_events(
        tabs,
        base,
        event_user,
        path=f"/?tab=events&session={'p1' * 16}",
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        color_scheme=scheme,
    )
    expect(page.locator("#ev-timeline-list li[data-name]")).to_have_count(2)
    expect(page.locator("#ev-heatmap")).to_have_attribute("data-clicks", "1")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.locator("#ev-name")).to_be_hidden()  # the extra filters fold
    page.click("#ev-more-filters")
    expect(page.locator("#ev-name")).to_be_visible()
    # The heat map keeps the shape of the phone's viewport (844 / 390).
    box = page.locator("#ev-heatmap").bounding_box()
    assert abs(box["height"] / box["width"] - 844 / 390) < 0.03
    page.screenshot(path=str(SHOTS / f"events-phone-{scheme}.png"), full_page=True)
    if scheme == "dark":
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 20, 24)"
    assert json.loads(page.evaluate("JSON.stringify(location.search)")).startswith("?tab=events")
