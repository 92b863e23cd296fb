"""The viewer's alerts panel: a user's rules and how their deliveries go, failures in red.

A real server (its window shortened to 1 s) with two webhook rules, one whose receiver
answers and one whose receiver is down; the signed-in viewer shows both, the failing one
with its error; a user without rules sees no panel.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from support import Receiver, ServerProcess, client_record, free_port
from support.browser import API_KEY, LiveAccount, expect, sign_in

pytestmark = pytest.mark.slow
pytest_plugins = ["support.browser_fixtures"]


def alerts_of(base: str, account: LiveAccount, rule: dict | None = None) -> dict:
    request = urllib.request.Request(
        base + "/api/alerts",
        data=None if rule is None else json.dumps(rule).encode(),
        headers={"X-User": account.name, "X-User-Token": account.token},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_the_viewer_shows_each_rules_deliveries_and_the_failing_ones(tabs, tmp_path):
    down = f"http://127.0.0.1:{free_port()}/down"
    with Receiver() as receiver, ServerProcess(
        f"sqlite:///{tmp_path / 'alerts.db'}", tmp_path, "--api-key", API_KEY,
        "--alert-window", "1", "--alert-retry", "600",
    ) as server:  # fmt: skip
        base = server.wait_ready_blocking().base_url
        account, quiet = LiveAccount(base), LiveAccount(base)
        alerts_of(base, account, {"channel": "webhook", "url": receiver.url + "/ok"})
        alerts_of(base, account, {"channel": "webhook", "url": down, "text": "disk"})
        account.send(client_record(0, level=40, msg="disk full"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = [a["last_status"] for a in alerts_of(base, account)["alerts"]]
            if states == ["sent", "retrying"]:
                break
            time.sleep(0.2)
        assert states == ["sent", "retrying"]
        page = tabs.open(base)
        sign_in(page, base, account)
        panel = page.locator("#alerts")
        expect(panel).to_be_visible()
        expect(panel.locator(".alerts-summary")).to_have_text("2 rules, 1 failing")
        expect(panel).to_have_class("alerts troubled")
        panel.locator("summary").click()
        rows = panel.locator("tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0).locator(".alert-status")).to_contain_text("sent")
        expect(rows.nth(1)).to_contain_text('level >= ERROR, text "disk"')
        expect(rows.nth(1).locator(".alert-status")).to_contain_text("retrying")
        expect(rows.nth(1).locator(".alert-error")).to_have_text("could not connect (ConnectError)")
        expect(rows.nth(1).locator(".num")).to_have_text("1")
        # Another user has no rule: no panel.
        page.click("#signout")
        sign_in(page, base, quiet)
        expect(page.locator("#logs")).to_be_visible()
        page.wait_for_timeout(500)
        expect(panel).to_be_hidden()
