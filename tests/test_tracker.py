"""The usage tracker ``/tracker.js`` and its demo page ``/demo``, in a real headless Chromium.

docs/API.md, "The tracker". The demo page (served by the app, key in ``?key=``) is clicked
at known places, scrolled and left; the events are then read back through ``GET
/api/events``: names in order, x/y where the clicks were made, one scroll event with the
deepest point, the visibility change, and the last events delivered by ``sendBeacon`` as the
page went away. The routes themselves (``/tracker.js``, ``/demo``, the beacon's text/plain
body, the preflight allowing ``Idempotency-Key``) are checked in-process on both backends.
The tracker on pages of other origins is tested in ``test_tracker_origins.py``. The live
server, its users and the helpers are those of ``support/browser_fixtures.py`` and
``support/tracker.py``.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from support import ROOT, assert_error, read_headers
from support.browser import expect
from support.tracker import VIEWPORT, centre, wait_until

from bot_logging_server import accounts

pytest_plugins = ["support.browser_fixtures"]

# Counts navigator.sendBeacon calls, and how many the browser accepted, in sessionStorage
# (which outlives the page in the same tab and origin).
BEACON_SPY = """
(() => {
  const send = navigator.sendBeacon.bind(navigator);
  navigator.sendBeacon = (url, body) => {
    const ok = send(url, body);
    const seen = JSON.parse(sessionStorage.getItem("spy.beacons") || "[]");
    seen.push({ url: String(url), ok, events: JSON.parse(body).events.map((e) => e.name) });
    sessionStorage.setItem("spy.beacons", JSON.stringify(seen));
    return ok;
  };
})();
"""


# -- the routes, in-process on both backends ------------------------------------------------


async def test_tracker_js_is_served_at_the_root_as_javascript(client):
    response = await client.get("/tracker.js")
    assert response.status_code == 200
    assert response.content_type.startswith("text/javascript")
    assert await response.get_data() == (ROOT / "static" / "tracker.js").read_bytes()
    assert response.headers["Cache-Control"] == "no-cache"


async def test_the_demo_page_puts_the_key_of_its_url_into_the_script_tag_and_its_links(client):
    key = uuid.uuid4().hex
    response = await client.get(f"/demo?key={key}")
    assert response.status_code == 200 and response.content_type.startswith("text/html")
    text = await response.get_data(as_text=True)
    assert f'<script src="/tracker.js" data-key="{key}" async></script>' in text
    assert f'href="/demo/pricing?key={key}"' in text
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    other = await (await client.get(f"/demo/pricing?key={key}")).get_data(as_text=True)
    assert "Page “pricing”" in other and f'data-key="{key}"' in other


@pytest.mark.parametrize(
    "key",
    ['"><script>alert(1)</script>', "not-hex", "a" * 65],
    ids=["markup", "not-hex", "too-long"],
)
async def test_the_demo_page_takes_only_hex_digits_as_a_key(client, key):
    response = await client.get("/demo", query_string={"key": key})
    text = await response.get_data(as_text=True)
    assert 'data-key=""' in text and "<script>alert" not in text and key not in text


@pytest.mark.parametrize("path", ["/demo/Not_A_Page", "/demo/" + "a" * 33, "/demo/a/b"])
async def test_a_demo_page_name_outside_the_rule_is_a_404_in_json(client, path):
    await assert_error(await client.get(path), 404, "NotFound")


async def test_a_beacon_body_sent_as_text_plain_is_stored(client, storage, user):
    key = (await accounts.create_key(storage, user.name, f"k_{user.name}")).value
    body = json.dumps({"events": [{"name": "visibility", "session": "s1", "data": {"x": 1}}]})
    response = await client.post(
        f"/api/events?key={key}",
        data=body,
        headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": "https://shop.example"},
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    read = await client.get("/api/events", headers=read_headers(user))
    assert [e["name"] for e in (await read.get_json())["events"]] == ["visibility"]


async def test_the_preflight_allows_the_trackers_idempotency_key_header(client):
    response = await client.options(
        "/api/events",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, idempotency-key",
        },
    )
    assert response.status_code == 204
    allowed = response.headers["Access-Control-Allow-Headers"].lower().replace(" ", "").split(",")
    assert {"content-type", "idempotency-key"} <= set(allowed)


# -- the demo page --------------------------------------------------------------------------


def test_the_demo_records_clicks_scroll_and_visibility_and_the_beacon_delivers_the_rest(
    tabs, events_server, event_user
):
    base, _ = events_server
    page = tabs.open(base, viewport=VIEWPORT)
    page.add_init_script(BEACON_SPY)
    page.goto(f"{base}/demo?key={event_user.key}")
    wait_until(page, "window.tracker && window.tracker.session")
    session = page.evaluate("tracker.session")
    expect_text = expect(page.locator("#tracker-state"))
    expect_text.to_have_text("recording")
    clicked = {}
    for target in ("#tile-1", "#tile-6", "#count"):
        x, y = centre(page, target)
        page.mouse.click(x, y)
        clicked[target] = (x / VIEWPORT["width"] * 100, y / VIEWPORT["height"] * 100)
    expect(page.locator("#count-value")).to_have_text("1")  # the page's own script
    page.click("#signup")  # a custom event: tracker.track("signup", {...})
    # The first batch goes by fetch after a second of quiet.
    first = event_user.wait_for(lambda ev: any(e["name"] == "signup" for e in ev), session=session)
    assert [e["name"] for e in first] == ["page_view", "click", "click", "click", "click", "signup"]
    # Scrolling: many scroll events in the page, one event with the deepest point.
    for _ in range(8):
        page.mouse.wheel(0, 250)
        time.sleep(0.05)
    wait_until(page, "window.scrollY >= 2000")
    metrics = page.evaluate(
        "({y: scrollY, h: innerHeight, total: document.documentElement.scrollHeight})"
    )
    deepest = round((metrics["y"] + metrics["h"]) / metrics["total"] * 100)
    time.sleep(0.4)  # the tracker measures 250 ms after a scroll
    page.evaluate("window.scrollTo(0, 0)")
    # Leaving: the last click, the scroll and the visibility change go by beacon.
    nav_x, nav_y = centre(page, "#nav-pricing")
    page.mouse.click(nav_x, nav_y)
    page.wait_for_url(re.compile(r"/demo/pricing\?key=[0-9a-f]{32}$"))
    events = event_user.wait_for(
        lambda ev: [e["page"] for e in ev].count("/demo/pricing") >= 1 and len(ev) >= 10,
        session=session,
    )
    names = [(e["name"], e["page"]) for e in events]
    assert names == [
        ("page_view", "/demo"),
        ("click", "/demo"),
        ("click", "/demo"),
        ("click", "/demo"),
        ("click", "/demo"),
        ("signup", "/demo"),
        ("click", "/demo"),
        ("scroll", "/demo"),
        ("visibility", "/demo"),
        ("page_view", "/demo/pricing"),
    ]
    assert [e["sequence"] for e in events] == list(range(1, 11))
    assert {e["session"] for e in events} == {session}
    assert all(e["time_valid"] and e["source"] == "api" and e["ingest_key_id"] for e in events)
    clicks = [e["data"] for e in events if e["name"] == "click"]
    for data, (target, (x, y)) in zip(clicks, clicked.items(), strict=False):
        assert data["el"] == "div" + target if target.startswith("#tile") else "button" + target
        assert abs(data["x"] - x) <= 0.05 and abs(data["y"] - y) <= 0.05  # one decimal
        assert (data["w"], data["h"]) == (1280, 800)
    assert clicks[-1]["el"] == "a#nav-pricing"
    assert abs(clicks[-1]["x"] - nav_x / 12.8) <= 0.05
    assert events[5]["category"] == "custom" and events[5]["data"] == {"plan": "pro", "count": 1}
    scroll = events[7]["data"]["depth"]
    assert abs(scroll - deepest) <= 1 and scroll > 60
    assert events[8]["data"] == {"state": "hidden"}
    assert events[9]["data"]["referrer"] == f"{base}/demo"  # the query (the key) is left out
    beacons = json.loads(page.evaluate("sessionStorage.getItem('spy.beacons')"))
    assert beacons and all(b["ok"] for b in beacons)
    assert [n for b in beacons for n in b["events"]][:3] == ["click", "scroll", "visibility"]


def test_the_demo_without_a_key_says_how_to_add_one_and_sends_nothing(tabs, events_server):
    base, _ = events_server
    page = tabs.open(base, viewport=VIEWPORT)
    posts = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
    page.goto(f"{base}/demo")
    expect(page.locator("#no-key")).to_be_visible()
    expect(page.locator("#tracker-state")).to_have_text("no key: not recording")
    page.click("#count")
    page.click("#nav-about")
    page.wait_for_url(re.compile(r"/demo/about\?key=$"))
    assert posts == [] and page.evaluate("window.tracker.session") is None
