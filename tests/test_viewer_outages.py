"""The web viewer during outages: no request storms, a clear banner, recovery on its own.

Each test runs its own ``python3 app.py`` (it is stopped or cut off from its database on
purpose), and installs Playwright's fake clock in the tab, so that a minute of back-off is
simulated in a few seconds of real time while real requests fail for real. A tab must send
at most a handful of requests per minute while the server or its database is away, show how
long until the next try, and come back without a reload once the server answers again.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
from support import ServerProcess, ThreadedProxy, client_record
from support.browser import API_KEY, LiveAccount, expect, sign_in

pytestmark = pytest.mark.slow
pytest_plugins = ["support.browser_fixtures"]

BANNER_UNREACHABLE = re.compile(r"^Server unreachable, retrying in \d+ s$")
BANNER_DATABASE = re.compile(r"^The database is unavailable, retrying in \d+ s$")


def let_time_pass(page, seconds: int) -> None:
    """Move the tab's fake clock on by `seconds`, one second at a time, letting requests end."""
    for _ in range(seconds):
        page.clock.fast_forward(1000)
        page.wait_for_timeout(25)


def wait_for_recovery(page, within: int) -> int:
    """Simulated seconds until the banner goes away (the server answered a probe)."""
    for second in range(within):
        if page.locator("#banner").is_hidden():
            return second
        let_time_pass(page, 1)
    raise AssertionError(f"still showing {page.inner_text('#banner')!r} after {within} s")


def requests_of(page) -> list[str]:
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url))
    return sent


def test_with_the_server_down_sign_in_says_so_and_the_page_backs_off(tabs, tmp_path):
    tabs.allow(r"ERR_CONNECTION_REFUSED")
    tabs.allow(r"ERR_INCOMPLETE_CHUNKED_ENCODING")  # the live tail's stream, cut by the outage
    with ServerProcess(
        f"sqlite:///{tmp_path / 'down.db'}", tmp_path, "--api-key", API_KEY
    ) as server:
        server.wait_ready_blocking()
        base = f"http://127.0.0.1:{server.port}"
        account = LiveAccount(base)
        account.send(client_record(0, msg="before the outage"))
        page = tabs.open(base)
        page.clock.install()
        page.goto(base + "/")
        server.stop()
        sent = requests_of(page)
        page.fill("#signin-user", account.name)
        page.fill("#signin-token", account.token)
        page.click("#signin-submit")
        expect(page.locator("#signin-error")).to_have_text(
            "The server is unreachable: check that it is running, then try again."
        )
        assert len(sent) == 1
        server.start()
        server.wait_ready_blocking()
        page.click("#signin-submit")
        expect(page.locator("#logs tbody td.msg")).to_have_text(["before the outage"])
        page.check("#live")
        expect(page.locator("#live-state")).to_have_text("● live")

        sent.clear()
        server.stop()
        page.fill("#filter-q", "outage")
        let_time_pass(page, 60)
        expect(page.locator("#banner .text")).to_have_text(BANNER_UNREACHABLE)
        # At most the list, the chart and the tail fail once each; then one probe per
        # back-off step, however many calls wait.
        first_minute = len(sent)
        assert 1 <= first_minute <= 8, sent
        assert len([url for url in sent if not url.endswith("/healthz")]) <= 3, sent
        let_time_pass(page, 60)
        assert len(sent) - first_minute <= 2, sent

        server.start()
        server.wait_ready_blocking()
        wait_for_recovery(page, within=70)
        expect(page.locator("#logs tbody td.msg")).to_have_text(["before the outage"])
        expect(page.locator("#total")).to_have_text("1 match")
        expect(page.locator("#live-state")).to_have_text("● live")
        assert "q=outage" in page.url
        account.send(client_record(1, msg="after the outage"))
        expect(page.locator("#logs tbody td.msg")).to_have_text(
            ["after the outage", "before the outage"]
        )
        page.uncheck("#live")  # before the server stops: no stream cut mid-way


def test_a_database_outage_shows_a_banner_backs_off_and_recovers(tabs, tmp_path, mysql_database):
    tabs.allow(r"status of 503")
    direct = urlsplit(mysql_database)
    proxy = ThreadedProxy(direct.hostname, direct.port or 3306)
    try:
        auth = direct.netloc.rsplit("@", 1)[0]
        url = f"mysql://{auth}@127.0.0.1:{proxy.port}{direct.path}"
        with ServerProcess(url, tmp_path, "--api-key", API_KEY) as server:
            server.wait_ready_blocking()
            base = f"http://127.0.0.1:{server.port}"
            account = LiveAccount(base)
            account.send(client_record(0, msg="kept safe"))
            page = tabs.open(base)
            page.clock.install()
            sign_in(page, base, account)
            expect(page.locator("#logs tbody td.msg")).to_have_text(["kept safe"])
            page.check("#live")
            expect(page.locator("#live-state")).to_have_text("● live")

            proxy.cut()
            sent = requests_of(page)
            page.fill("#filter-q", "safe")
            let_time_pass(page, 60)
            expect(page.locator("#banner .text")).to_have_text(BANNER_DATABASE)
            first_minute = len(sent)
            # The list, the chart and the tail (whose stream may open: the server is up, and
            # then the list tries once more), then one probe per back-off step.
            assert 3 <= first_minute <= 10, sent
            let_time_pass(page, 60)
            assert len(sent) - first_minute <= 2, sent

            proxy.restore()
            wait_for_recovery(page, within=70)
            expect(page.locator("#logs tbody td.msg")).to_have_text(["kept safe"])
            expect(page.locator("#live-state")).to_have_text("● live")
            account.send(client_record(1, msg="safe and live"))
            expect(page.locator("#logs tbody td.msg")).to_have_text(["safe and live", "kept safe"])
            page.uncheck("#live")  # before the server stops: no stream cut mid-way
    finally:
        proxy.close()


def test_retry_after_is_honoured_even_when_longer_than_the_back_off(tabs, tmp_path):
    tabs.allow(r"status of 503")
    with ServerProcess(
        f"sqlite:///{tmp_path / 'busy.db'}", tmp_path, "--api-key", API_KEY
    ) as server:
        server.wait_ready_blocking()
        base = f"http://127.0.0.1:{server.port}"
        account = LiveAccount(base)
        account.send(client_record(0, msg="patience"))
        page = tabs.open(base)
        page.clock.install()
        sign_in(page, base, account)
        expect(page.locator("#logs tbody td.msg")).to_have_text(["patience"])
        busy = json.dumps({"code": 503, "message": "ServiceUnavailable"})

        def unavailable(route):
            route.fulfill(
                status=503,
                headers={"Retry-After": "45"},
                content_type="application/json",
                body=busy,
            )

        page.route(re.compile(r"/(api/|healthz)"), unavailable)
        sent = requests_of(page)
        page.fill("#filter-q", "pat")
        let_time_pass(page, 2)
        expect(page.locator("#banner .text")).to_have_text(re.compile(r"retrying in 4[3-5] s$"))
        let_time_pass(page, 40)
        assert len(sent) == 2, sent  # the list and the chart; no probe before 45 s
        let_time_pass(page, 6)
        assert len(sent) == 3 and sent[2].endswith("/healthz"), sent
        page.unroute_all()
        wait_for_recovery(page, within=50)
        expect(page.locator("#logs tbody td.msg")).to_have_text(["patience"])
        page.close()  # before the server stops: no refresh of the page meets a closed port
