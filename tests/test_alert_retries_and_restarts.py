"""Alert delivery through failures, restarts and several processes: each alert is sent once.

A due window is claimed by one process only, under a lease; failed deliveries are retried
with back-off (doubling up to an hour, or what the receiver asks) and shown by the API; a
pending alert survives a restart; two servers (or ``--workers 2``) on one database send
each alert once.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from support import (
    BOT_TOKEN,
    TEL_ID,
    Account,
    Receiver,
    ServerProcess,
    add_alert,
    add_user,
    alert_settings,
    client_body,
    http,
    list_alerts,
    post,
    quiet_for,
    record,
    run_app,
    tel_user,
)

from bot_logging_server.alerts.service import Timing
from bot_logging_server.config import build_config
from bot_logging_server.storage import utc_now


async def settled(client, user, status: str = "sent", timeout: float = 10) -> dict:
    """The user's only rule once its last delivery's outcome is recorded as `status`."""
    deadline = time.monotonic() + timeout
    while True:
        [alert] = await list_alerts(client, user)
        if alert["last_status"] == status or time.monotonic() > deadline:
            return alert
        await asyncio.sleep(0.05)


# -- failures, restarts, several processes ------------------------------------------------


async def test_a_due_window_is_claimed_by_one_process_only(make_config):
    from datetime import timedelta

    from bot_logging_server.storage import Matches, make_storage

    # Two processes' storages, and no server dispatching meanwhile.
    storage, other = make_storage(make_config()), make_storage(make_config())
    await storage.open()
    await other.open()
    try:
        user = await tel_user(storage)
        rule = (await add_rule_directly(storage, user)).rule
        now = utc_now()
        found = Matches(3, now, now, [{"msg": "m", "received_at": "x"}])
        await storage.add_alert_matches({rule.id: found}, timedelta(0), timedelta(0), 5)
        [window_id] = await storage.due_alert_windows(utc_now(), 10)
        lease = timedelta(seconds=0.5)
        claims = await asyncio.gather(
            *(s.claim_alert_window(window_id, utc_now(), lease) for s in [storage, other] * 3)
        )
        [first] = [c for c in claims if c is not None]
        assert first.count == 3 and first.attempt == 1 and first.rule.id == rule.id
        assert await storage.due_alert_windows(utc_now(), 10) == []  # claimed: not due
        await asyncio.sleep(0.6)  # the claimer died: its lease runs out
        again = await other.claim_alert_window(window_id, utc_now(), lease)
        assert again is not None and again.attempt == 2
        assert not await storage.finish_alert_delivery(first)  # too late: not its claim
        assert await other.finish_alert_delivery(again)
        assert await storage.due_alert_windows(utc_now(), 10) == []
        [shown] = await storage.alert_rules(user.id)
        assert shown.last_status == "sent" and shown.pending == 0
    finally:
        await other.close()
        await storage.close()


async def add_rule_directly(storage, user):
    from bot_logging_server.alerts.rules import add_rule

    account = await storage.get_user(user.name)
    return await add_rule(storage, account, channel="webhook", url="http://127.0.0.1:9/")


async def test_failed_deliveries_are_retried_with_back_off_and_shown_by_the_api(make_app):
    with Receiver(statuses=(500, 503, 200)) as receiver:
        async with make_app(**alert_settings(receiver, alert_retry=0.5)) as app:
            client, storage = app.test_client(), app.app.extensions["bot_logging_server.storage"]
            user = await tel_user(storage)
            await add_alert(client, user, channel="webhook", url=receiver.url + "/flaky")
            await post(client, user, [record(0)])
            await receiver.wait_for(1, timeout=15, status=500)
            await asyncio.sleep(0.2)
            [failing] = await list_alerts(client, user)
            await receiver.wait_for(1, timeout=15)
            done = await settled(client, user)
    assert failing["last_status"] == "retrying" and failing["pending"] == 1
    assert failing["last_error"] == "webhook answered 500" and failing["last_sent_at"] is None
    assert done["last_status"] == "sent" and done["pending"] == 0
    assert done["last_error"] is None and done["last_sent_at"] is not None
    first, second, third = receiver.received
    assert [first.status, second.status, third.status] == [500, 503, 200]
    assert len({m.headers["x-alert-delivery"] for m in receiver.received}) == 1
    assert [m.json()["attempt"] for m in receiver.received] == [1, 2, 3]
    gaps = [second.at - first.at, third.at - second.at]
    assert gaps[0] >= 0.45 and gaps[1] >= 0.95, gaps  # 0.5 s, then doubled


def test_the_wait_between_attempts_doubles_up_to_an_hour_or_what_the_receiver_asks():
    timing = Timing.of(build_config({"alert_retry": 10}, {}))
    assert [timing.backoff(n) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert timing.backoff(30) == 3600
    assert timing.backoff(1, asked=120) == 120


async def test_a_pending_alert_is_sent_by_the_next_server_after_a_restart(make_app):
    with Receiver(statuses=(500, 200)) as receiver:
        settings = alert_settings(receiver, alert_window=3, alert_retry=5)
        async with make_app(**settings) as app:
            client, storage = app.test_client(), app.app.extensions["bot_logging_server.storage"]
            user = await tel_user(storage)
            await add_alert(client, user, channel="webhook", url=receiver.url + "/r")
            await post(client, user, [record(i) for i in range(4)])
            await receiver.wait_for(1, timeout=15, status=500)  # the first attempt fails...
            assert (await settled(client, user, "retrying"))["pending"] == 1  # ...recorded
            await post(client, user, [record(i) for i in range(5)])  # a new window...
            # ...whose matches this server still holds in memory when it stops.
        assert len(receiver.received) == 1
        async with make_app(**settings) as app:
            sent = await receiver.wait_for(2, timeout=20)
            await quiet_for(receiver, 1, 3)
    assert sorted(m.json()["count"] for m in sent) == [4, 5]
    retried = next(m for m in sent if m.json()["count"] == 4)
    assert retried.json()["attempt"] == 2
    assert retried.headers["x-alert-delivery"] == receiver.received[0].headers["x-alert-delivery"]


async def test_two_servers_on_one_database_send_each_alert_once(make_app, receiver):
    settings = alert_settings(receiver, alert_window=2)
    async with make_app(**settings) as one, make_app(**settings) as two:
        clients = [one.test_client(), two.test_client()]
        storage = one.app.extensions["bot_logging_server.storage"]
        user = await tel_user(storage)
        await add_alert(clients[0], user, channel="telegram")
        await add_alert(clients[1], user, channel="webhook", url=receiver.url + "/w")
        await asyncio.sleep(2.5)  # each server reads the other's rule
        for burst in range(2):
            await asyncio.gather(*(post(clients[n % 2], user, [record(n)] * 10) for n in range(20)))
            await receiver.wait_for(2 * (burst + 1), timeout=20)
            await asyncio.sleep(3)
    assert len(receiver.received) == 4, [m.body[:120] for m in receiver.received]
    counts = [m.json()["count"] for m in receiver.received if m.path == "/w"]
    texts = [m.json()["text"] for m in receiver.received if "/sendMessage" in m.path]
    assert counts == [200, 200]
    assert all(t.startswith(f"{user.name}: 200 records") for t in texts) and len(texts) == 2


@pytest.mark.slow
async def test_two_workers_send_each_alert_once(fresh_database_url, tmp_path, receiver):
    user = await add_user(fresh_database_url, tel_id=TEL_ID)
    for channel in (["--channel", "telegram"], ["--channel", "webhook", "--url", receiver.url]):
        run_app("--database-url", fresh_database_url, "alerts", "add", user.name, *channel,
                check=True)  # fmt: skip
    flags = ["--workers", "2", "--alert-window", "2", "--telegram-api-url", receiver.url]
    env = {"LOGGER_TELEGRAM_TOKEN": BOT_TOKEN}
    with ServerProcess(fresh_database_url, tmp_path, *flags, env=env) as server:
        await server.wait_ready(timeout=60)
        for burst in range(2):
            replies = await asyncio.gather(
                *(
                    http(server.port, "POST", "//send_logs",
                         body_of(user, [record(n)] * 25), {"X-User-Token": user.token})
                    for n in range(40)
                )
            )  # fmt: skip
            assert {r.status for r in replies} == {200}
            await receiver.wait_for(2 * (burst + 1), timeout=30)
            await asyncio.sleep(4)
        output = server.output()
    assert len(receiver.received) == 4, output[-3000:]
    assert [m.json()["count"] for m in receiver.received if m.path == "/"] == [1000, 1000]
    assert "Traceback" not in output, output[-3000:]
    assert BOT_TOKEN not in output


def body_of(user: Account, records) -> bytes:
    import orjson

    return orjson.dumps(client_body(user.name, records))
