"""The usage tracker ``/tracker.js`` and its demo page ``/demo``, in a real headless Chromium.

docs/API.md, "The tracker". The demo page (served by the app, key in ``?key=``) is clicked
at known places, scrolled and left; the events are then read back through ``GET
/api/events``: names in order, x/y where the clicks were made, one scroll event with the
deepest point, the visibility change, and the last events delivered by ``sendBeacon`` as the
page went away. Pages of another origin (a small HTTP server of the test's own on loopback)
load the script cross-origin, break ``fetch`` and ``sendBeacon``, point it at a server that
is down, and turn Global Privacy Control on: the host page keeps working and never sees an
error. The routes themselves (``/tracker.js``, ``/demo``, the beacon's text/plain body, the
preflight allowing ``Idempotency-Key``) are checked in-process on both backends.
"""

from __future__ import annotations

import http.server
import itertools
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_viewer
from helpers import assert_error, read_headers
from test_process import free_port, server
from test_viewer import API_KEY, Account, Tabs

from bot_logging_server import accounts

browser = test_viewer.browser
APP = str(Path(__file__).resolve().parents[1] / "app.py")
ROOT = Path(__file__).resolve().parents[1]
VIEWPORT = {"width": 1280, "height": 800}

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


# -- a live server, its users and keys ------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def events_server(request, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """``python3 app.py`` on a free port; yields (base URL, database URL)."""
    cwd = tmp_path_factory.mktemp("tracker")
    if request.param == "sqlite":
        url = f"sqlite:///{cwd / 'tracker.db'}"
    else:
        url = request.getfixturevalue("mysql_database")
    with server("--database-url", url, "--api-key", API_KEY, cwd=cwd) as (port, _proc):
        yield f"http://127.0.0.1:{port}", url


class EventUser(Account):
    """A user of the live server with an ingest key (made by ``app.py keys add``)."""

    def __init__(self, base: str, database_url: str):
        super().__init__(base, "t")
        key_name = f"web_{self.name}"  # key names are unique across the server
        result = subprocess.run(
            [
                sys.executable,
                APP,
                "--database-url",
                database_url,
                "keys",
                "add",
                self.name,
                key_name,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        self.key = result.stdout.strip()

    def post(self, *events: dict) -> None:
        """Store `events` through ``POST /api/events`` with the key (as a web page would)."""
        request = urllib.request.Request(
            f"{self.base}/api/events?key={self.key}",
            data=json.dumps({"events": list(events)}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["added"] == len(events)

    def events(self, **params: str) -> list[dict]:
        """The user's events through ``GET /api/events``, in the order of their sequence."""
        query = "&".join(f"{k}={v}" for k, v in {"order": "asc", "limit": "1000", **params}.items())
        request = urllib.request.Request(
            f"{self.base}/api/events?{query}",
            headers={"X-User": self.name, "X-User-Token": self.token},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            events = json.loads(response.read())["events"]
        # Beacons sent together may arrive in either order: the client's sequence decides.
        return sorted(events, key=lambda e: (e["sequence"] is None, e["sequence"], e["id"]))

    def wait_for(self, done, timeout: float = 10.0, **params: str) -> list[dict]:
        """Poll `events` until `done(events)` holds; the events."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events(**params)
            if done(events) or time.monotonic() > deadline:
                return events
            time.sleep(0.2)


@pytest.fixture
def event_user(events_server) -> EventUser:
    base, url = events_server
    return EventUser(base, url)


@pytest.fixture
def tabs(browser):
    opened = Tabs(browser)
    yield opened
    opened.check()


class HostSite:
    """Pages of another origin (loopback, another port): `pages[path]` is its HTML."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write((body or "").encode())

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def host_site() -> Iterator[HostSite]:
    site = HostSite()
    yield site
    site.close()


def host_page(script: str, body: str = "", head: str = "") -> str:
    """A host page: `head`, the tracker's tag `script`, and the page's own counter button."""
    return f"""<!doctype html><html><head><title>shop</title>
<link rel="icon" href="data:,">{head}{script}</head>
<body style="height: 3000px; margin: 0">
<button id="count" style="position: absolute; left: 100px; top: 100px">0</button>
<a id="away" href="/next" style="position: absolute; left: 600px; top: 200px">next</a>
<script>
  document.getElementById("count").addEventListener("click", function () {{
    this.textContent = String(Number(this.textContent) + 1);
  }});
</script>{body}</body></html>"""


def wait_until(page, expression: str, timeout: float = 10.0) -> None:
    """Poll `expression` in the page until it is truthy (``wait_for_function`` evaluates
    strings, which the demo's Content-Security-Policy forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"{expression} stayed false"
        time.sleep(0.05)


def centre(page, selector: str) -> tuple[float, float]:
    """The viewport centre of `selector`'s element, in whole pixels (as a mouse clicks)."""
    box = page.locator(selector).bounding_box()
    return round(box["x"] + box["width"] / 2), round(box["y"] + box["height"] / 2)


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
    expect_text = test_viewer.expect(page.locator("#tracker-state"))
    expect_text.to_have_text("recording")
    clicked = {}
    for target in ("#tile-1", "#tile-6", "#count"):
        x, y = centre(page, target)
        page.mouse.click(x, y)
        clicked[target] = (x / VIEWPORT["width"] * 100, y / VIEWPORT["height"] * 100)
    test_viewer.expect(page.locator("#count-value")).to_have_text("1")  # the page's own script
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
    test_viewer.expect(page.locator("#no-key")).to_be_visible()
    test_viewer.expect(page.locator("#tracker-state")).to_have_text("no key: not recording")
    page.click("#count")
    page.click("#nav-about")
    page.wait_for_url(re.compile(r"/demo/about\?key=$"))
    assert posts == [] and page.evaluate("window.tracker.session") is None


# -- on another origin ----------------------------------------------------------------------


@pytest.mark.parametrize("events_server", ["sqlite"], indirect=True)
def test_a_page_of_another_origin_sends_by_fetch_with_a_preflight_and_by_beacon(
    browser, events_server, event_user, host_site
):
    base, _ = events_server
    # Calls made before the async script arrives wait in tracker.q and are replayed.
    stub = "<script>window.tracker = {q: [], track: function () { this.q.push(arguments); }};"
    stub += "tracker.track('early', {n: 1});</script>"
    tag = f'<script src="{base}/tracker.js" data-key="{event_user.key}" async></script>'
    host_site.pages["/shop"] = host_page(tag, head=stub)
    host_site.pages["/next"] = host_page(tag)
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    try:
        page.goto(host_site.base + "/shop")
        wait_until(page, "window.tracker && window.tracker.session")
        session = page.evaluate("tracker.session")
        page.click("#count")
        # Before leaving: the batch crossed origins by fetch (its Idempotency-Key preflighted).
        first = event_user.wait_for(lambda ev: len(ev) >= 3, session=session)
        assert [e["name"] for e in first] == ["page_view", "early", "click"]
        assert first[1]["data"] == {"n": 1} and first[0]["page"] == "/shop"
        page.click("#away")
        page.wait_for_url("**/next")
        events = event_user.wait_for(lambda ev: len(ev) >= 7, session=session)
    finally:
        context.close()
    assert [e["name"] for e in events] == [
        "page_view",
        "early",
        "click",
        "click",
        "scroll",
        "visibility",
        "page_view",
    ]
    assert events[3]["data"]["el"] == "a#away" and events[-1]["page"] == "/next"
    assert errors == []


@pytest.mark.parametrize("events_server", ["sqlite"], indirect=True)
def test_with_fetch_and_sendbeacon_broken_the_host_page_keeps_working_and_nothing_is_lost(
    browser, events_server, event_user, host_site
):
    base, _ = events_server
    breaker = """<script>
      window.realFetch = window.fetch;
      window.fetch = function () { throw new Error("fetch is broken"); };
      navigator.sendBeacon = function () { throw new Error("sendBeacon is broken"); };
      function count() { window.__errors = (window.__errors || 0) + 1; }
      window.onerror = count;
      window.addEventListener("unhandledrejection", count);
    </script>"""
    tag = f'<script src="{base}/tracker.js" data-key="{event_user.key}" async></script>'
    host_site.pages["/shop"] = host_page(tag, head=breaker)
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(host_site.base + "/shop")
        wait_until(page, "window.tracker && window.tracker.session")
        session = page.evaluate("tracker.session")
        for _ in range(3):
            page.click("#count")
        # Data that is not JSON, odd names: the call returns, the page goes on.
        page.evaluate("""() => {
            const cyclic = {}; cyclic.self = cyclic;
            tracker.track("cyclic", cyclic);
            tracker.track("big", {n: 10n});
            tracker.track(null, undefined);
            tracker.track({toString() { throw new Error("no name"); }});
            tracker.flush();
        }""")
        time.sleep(2.5)  # a flush and a retry or two, all failing
        page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
        page.evaluate("window.dispatchEvent(new PageTransitionEvent('pagehide'))")
        page.click("#count")
        assert page.inner_text("#count") == "4"
        assert page.evaluate("window.__errors || 0") == 0
        assert event_user.events() == []
        # fetch works again: the next retry delivers everything, in order.
        page.evaluate("window.fetch = window.realFetch")
        events = event_user.wait_for(lambda ev: len(ev) >= 10, timeout=20, session=session)
    finally:
        context.close()
    assert errors == []
    assert [(e["name"], e["data"]) for e in events if e["name"] != "click"] == [
        ("page_view", events[0]["data"]),
        ("cyclic", None),
        ("big", None),
        ("null", None),
        ("visibility", {"state": "visible"}),
        ("scroll", {"depth": 27}),
    ]
    assert [e["name"] for e in events].count("click") == 4 and len(events) == 10


@pytest.mark.parametrize("events_server", ["sqlite"], indirect=True)
def test_while_the_server_is_down_the_tracker_backs_off_and_keeps_the_batchs_key(
    browser, events_server, event_user, host_site
):
    base, _ = events_server
    down = f"http://127.0.0.1:{free_port()}/api/events"  # nothing listens there
    spy = """<script>
      window.__posts = [];
      const real = window.fetch;
      window.fetch = function (url, options) {
        window.__posts.push({at: Date.now(), key: options.headers["Idempotency-Key"]});
        return real.apply(this, arguments);
      };
    </script>"""
    tag = f'<script src="{base}/tracker.js" data-key="{event_user.key}" data-endpoint="{down}"'
    tag += " async></script>"
    host_site.pages["/shop"] = host_page(tag, head=spy)
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.clock.install()
        page.goto(host_site.base + "/shop")
        wait_until(page, "window.tracker && window.tracker.session")
        page.click("#count")
        for _ in range(120):  # two minutes of the page's clock; real failures in between
            page.clock.run_for(1000)
            time.sleep(0.03)
        posts = page.evaluate("window.__posts")
        page.click("#count")
        assert page.inner_text("#count") == "2"
    finally:
        context.close()
    assert errors == []
    # One batch, tried again and again with the same key, ever further apart (at most 60 s).
    assert 4 <= len(posts) <= 9, posts
    assert len({p["key"] for p in posts}) == 1
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(posts)]
    assert gaps[-1] >= 8000 and max(gaps) <= 61000


@pytest.mark.parametrize("events_server", ["sqlite"], indirect=True)
def test_with_data_respect_dnt_global_privacy_control_turns_the_tracker_off(
    browser, events_server, event_user, host_site
):
    base, _ = events_server
    plain = f'<script src="{base}/tracker.js" data-key="{event_user.key}" async></script>'
    tag = plain.replace(" async>", " data-respect-dnt async>")
    host_site.pages["/respects"] = host_page(tag)
    host_site.pages["/ignores"] = host_page(plain)
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(
        "Object.defineProperty(navigator, 'globalPrivacyControl', {get: () => true})"
    )
    page = context.new_page()
    posts = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
    try:
        page.goto(host_site.base + "/respects")
        wait_until(page, "window.tracker !== undefined")
        page.click("#count")
        page.evaluate("tracker.track('custom', {a: 1})")
        time.sleep(1.5)
        assert page.evaluate("tracker.session") is None and posts == []
        page.goto(host_site.base + "/ignores")  # the page did not opt in: it records
        wait_until(page, "window.tracker && window.tracker.session")
        session = page.evaluate("tracker.session")
        events = event_user.wait_for(lambda ev: len(ev) >= 1, session=session)
    finally:
        context.close()
    assert {e["page"] for e in event_user.events()} == {"/ignores"}  # nothing of /respects
    assert events[0]["name"] == "page_view"
