"""The usage tracker in a real headless Chromium: helpers of the tracker and Events-tab tests.

`EventUser` (a `LiveAccount` with an ingest key, and its events read back), `VIEWPORT` (the
tab size the click positions are computed for), `wait_until` (a page condition polled from
Python) and `centre` (where a mouse click on an element lands). The fixtures
(``events_server``, ``event_user``) are in `support.browser_fixtures`.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from support.browser import LiveAccount
from support.process import run_app

VIEWPORT = {"width": 1280, "height": 800}


class EventUser(LiveAccount):
    """A user of the live server with an ingest key (made by ``app.py keys add``)."""

    def __init__(self, base: str, database_url: str) -> None:
        super().__init__(base, "t")
        key_name = f"web_{self.name}"  # key names are unique across the server
        done = run_app(
            "--database-url", database_url, "keys", "add", self.name, key_name, check=True
        )
        self.key = done.stdout.strip()

    def post(self, *events: dict[str, Any]) -> None:
        """Store `events` through ``POST /api/events`` with the key (as a web page would)."""
        request = urllib.request.Request(
            f"{self.base}/api/events?key={self.key}",
            data=json.dumps({"events": list(events)}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["added"] == len(events)

    def events(self, **params: str) -> list[dict[str, Any]]:
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

    def wait_for(
        self,
        done: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 10.0,
        **params: str,
    ) -> list[dict[str, Any]]:
        """Poll `events` until `done(events)` holds (or `timeout` s pass); the events."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events(**params)
            if done(events) or time.monotonic() > deadline:
                return events
            time.sleep(0.2)


def wait_until(page: Any, expression: str, timeout: float = 10.0) -> None:
    """Poll `expression` in the page until it is truthy (``wait_for_function`` evaluates
    strings, which the demo's Content-Security-Policy forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"{expression} stayed false"
        time.sleep(0.05)


def centre(page: Any, selector: str) -> tuple[float, float]:
    """The viewport centre of `selector`'s element, in whole pixels (as a mouse clicks)."""
    box = page.locator(selector).bounding_box()
    return round(box["x"] + box["width"] / 2), round(box["y"] + box["height"] / 2)
