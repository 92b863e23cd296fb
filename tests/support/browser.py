"""The web viewer in a real headless Chromium: helpers of the viewer tests.

`LiveAccount` (a user created on a live server, and its ``send``), `Tabs` (opens tabs and
checks them at the end), `sign_in`, `expect`, `rows`, `query`, `ago`. The fixtures are in
`support.browser_fixtures` (load with ``pytest_plugins``).

Needs Playwright's Python package and Debian's ``chromium`` (``/usr/bin/chromium``); without
them the tests are skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from support.client import client_body

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


def missing(reason: str) -> None:
    """Fail (``CI=true``) or skip (elsewhere) because the browser cannot run."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def http(base: str, path: str, body: object, headers: dict[str, str]) -> dict:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class LiveAccount:
    """A user of the live server, and how to send it logs as the real client does."""

    def __init__(self, base: str, prefix: str = "v"):
        self.base = base
        self.name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        answer = http(base, "/create_user", {"user": self.name}, {"X-Api-Key": API_KEY})
        self.token = answer["token"]

    def send(self, *records: dict, **batch: object) -> None:
        body = client_body(self.name, list(records), **batch)
        answer = http(self.base, "//send_logs", body, {"X-User-Token": self.token})
        assert answer["added"] == len(records)


class Tabs:
    """Opens browser tabs on `base`; at the end, fails the test if a tab logged an error
    (other than those `allow`ed) or requested another host."""

    def __init__(self, browser):
        self.browser = browser
        self.contexts = []
        self.errors: list[str] = []
        self.foreign: list[str] = []
        # Signing out after a refused token is a normal path: its 403 is expected.
        self.allowed = [r"status of 403"]

    def allow(self, pattern: str) -> None:
        """A console error matching `pattern` is expected (a request failed on purpose)."""
        self.allowed.append(pattern)

    def open(self, base: str, context=None, **options):
        if context is None:
            context = self.browser.new_context(
                **{"viewport": {"width": 1280, "height": 800}, **options}
            )
            self.contexts.append(context)
        tab = context.new_page()
        tab.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        tab.on("pageerror", lambda e: self.errors.append(str(e)))
        tab.on("request", lambda r: r.url.startswith(base) or self.foreign.append(r.url))
        tab.set_default_timeout(10_000)
        return tab

    def check(self) -> None:
        for context in self.contexts:
            context.close()
        assert self.foreign == [], f"the page requested another host: {self.foreign}"
        unexpected = [e for e in self.errors if not any(re.search(a, e) for a in self.allowed)]
        assert unexpected == [], f"unexpected console errors: {unexpected}"


def sign_in(
    page, base: str, account: LiveAccount, token: str | None = None, path: str = "/"
) -> None:
    page.goto(base + path)
    page.fill("#signin-user", account.name)
    page.fill("#signin-token", token or account.token)
    page.click("#signin-submit")


def expect(locator):
    from playwright.sync_api import expect

    return expect(locator)


def rows(page) -> list[str]:
    return page.locator("#logs tbody tr td.msg").all_inner_texts()


def query(page) -> dict[str, str]:
    """The page's URL query as a dict (one value per key)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}


def ago(**delta: float) -> str:
    """The client's event_at for `delta` before now (naive UTC, seconds)."""
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%S")
