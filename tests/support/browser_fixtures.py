"""Pytest fixtures of the viewer tests: load with ``pytest_plugins``.

* `browser` (per module): headless Chromium; missing Playwright or Chromium fails under
  ``CI=true`` and skips elsewhere.
* `live_server` (per module, on SQLite then MySQL): ``python3 app.py`` with ``/create_user``
  on; yields its base URL.
* `account`: a `LiveAccount` on the live server.
* `tabs`: opens tabs; at the end fails the test if a tab logged an unexpected error or
  requested another host. `page`: a tab on the live server.
* `events_server` (per module, on SQLite then MySQL): another such server, for the tracker
  and Events-tab tests; yields its base URL and its database URL. `event_user`: an
  `EventUser` (a user with an ingest key) on it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from support.browser import API_KEY, ARGS, CHROMIUM, LiveAccount, Tabs, missing
from support.process import ServerProcess
from support.tracker import EventUser


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for the module's tests."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed (pip install -r requirements-dev.txt)")
    if not shutil.which(CHROMIUM):
        missing(f"{CHROMIUM} is missing (apt-get install -y chromium)")
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


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def events_server(request, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """``python3 app.py`` on a free port; yields (base URL, database URL)."""
    cwd = tmp_path_factory.mktemp("tracker")
    if request.param == "sqlite":
        url = f"sqlite:///{cwd / 'tracker.db'}"
    else:
        url = request.getfixturevalue("mysql_database")
    with ServerProcess(url, cwd, "--api-key", API_KEY, cwd=cwd) as server:
        yield server.wait_ready_blocking().base_url, url


@pytest.fixture
def event_user(events_server) -> EventUser:
    """A new user of the events server, with an ingest key."""
    base, url = events_server
    return EventUser(base, url)


@pytest.fixture
def account(live_server):
    """A new user of the live server."""
    return LiveAccount(live_server)


@pytest.fixture
def tabs(browser):
    """Opens tabs; fails the test at the end on an unexpected console error or another host."""
    opened = Tabs(browser)
    yield opened
    opened.check()


@pytest.fixture
def page(tabs, live_server):
    """A fresh browser tab (1280 x 800) on the live server."""
    return tabs.open(live_server)
