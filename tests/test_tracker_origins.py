"""The usage tracker ``/tracker.js`` on pages of other origins, in a real headless Chromium.

docs/API.md, "The tracker". A small HTTP server of the test's own, on loopback but another
port (another origin), serves host pages that load the script from the live server: it sends
cross-origin by ``fetch`` (preflighted, with its ``Idempotency-Key``) and by ``sendBeacon``;
with ``fetch`` and ``sendBeacon`` broken, or the server down, the host page keeps working,
never sees an error, and nothing is lost or stormed; with ``data-respect-dnt``, Global
Privacy Control turns it off. The live server and its users are those of
``support/browser_fixtures.py`` (``events_server``, ``event_user``).
"""

from __future__ import annotations

import http.server
import itertools
import threading
import time
from collections.abc import Iterator

import pytest
from support import free_port
from support.tracker import VIEWPORT, wait_until

pytest_plugins = ["support.browser_fixtures"]
sqlite_only = pytest.mark.parametrize("events_server", ["sqlite"], indirect=True)


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


@sqlite_only
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


@sqlite_only
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


@sqlite_only
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


@sqlite_only
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
