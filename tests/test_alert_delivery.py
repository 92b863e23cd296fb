"""Alert delivery: matching records become one message per rule per window, sent to Telegram
or a webhook, and ingest never waits for it.

A storm of 10,000 records is one message per rule with the count and the first lines;
Telegram messages go through the Bot API to the user's ``tel_id`` (a local fake Bot API
here) without logging the token; webhooks carry an HMAC-SHA256 signature the receiver can
check; ingest answers do not wait for slow deliveries, and a failing match never fails a
batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time

from support import (
    BOT_TOKEN,
    TEL_ID,
    Receiver,
    add_alert,
    alert_settings,
    post,
    quiet_for,
    record,
    tel_user,
)

from bot_logging_server.alerts.rules import CompiledRule


def verify(secret: str, message) -> bool:
    """What a webhook receiver does: recompute the signature from the timestamp and body."""
    timestamp = message.headers["x-alert-timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + message.body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest("sha256=" + expected, message.headers["x-alert-signature"])


# -- the storm, the channels --------------------------------------------------------------


async def test_a_storm_of_10000_records_is_one_message_per_rule_per_window(make_app, receiver):
    async with make_app(**alert_settings(receiver, alert_window=6)) as app:
        client, storage = app.test_client(), app.app.extensions["bot_logging_server.storage"]
        user = await tel_user(storage)
        await add_alert(client, user, channel="telegram", p_description="billing")
        hook = await add_alert(client, user, channel="webhook", url=receiver.url + "/hook",
                               text="failed 1")  # fmt: skip
        started = time.monotonic()
        for wave in range(5):  # over about two seconds: matches written at several ticks
            await asyncio.gather(
                *(
                    post(client, user, [record(b * 500 + i) for i in range(500)])
                    for b in range(wave * 4, wave * 4 + 4)
                )
            )
            await asyncio.sleep(0.4)
        stored_in = time.monotonic() - started
        assert not receiver.received  # the window is still open
        got = await receiver.wait_for(2, timeout=20)
        await quiet_for(receiver, 3, 2)
        # A second storm, after the first window: one more message per rule.
        await post(client, user, [record(i, msg=f"failed 1-{i}") for i in range(300)])
        more = await receiver.wait_for(4, timeout=20)
        await quiet_for(receiver, 3, 4)
    print(f"\n10,000 records stored in {stored_in:.2f} s")
    telegram = [m for m in got if "/sendMessage" in m.path]
    webhook = [m for m in got if m.path == "/hook"]
    assert len(telegram) == 1 and len(webhook) == 1
    text = telegram[0].json()["text"]
    assert f"{user.name}: 10000 records matched" in text
    assert text.count("\n") == 6 and text.endswith("... and 9995 more")
    assert "ERROR" in text and "payment failed" in text
    body = webhook[0].json()
    assert body["count"] == sum(1 for i in range(10_000) if "failed 1" in f"payment failed {i}")
    assert len(body["lines"]) == 5 and all("failed 1" in line["msg"] for line in body["lines"])
    assert body["alert"] == hook["alert"]["id"]
    later = sorted(more[2:], key=lambda m: m.path)
    assert [m.path for m in later] == [f"/bot{BOT_TOKEN}/sendMessage", "/hook"]
    assert later[0].json()["text"].startswith(f"{user.name}: 300 records matched")
    assert later[1].json()["count"] == 300


async def test_telegram_messages_go_to_the_users_chat_through_the_bot_api(
    make_app, receiver, caplog
):
    caplog.set_level(logging.DEBUG)
    async with make_app(**alert_settings(receiver)) as app:
        client, storage = app.test_client(), app.app.extensions["bot_logging_server.storage"]
        user = await tel_user(storage)
        made = await add_alert(client, user, channel="telegram", p_name="worker")
        await post(client, user, [record(1, msg="disk full"), record(2, level=50)], "worker")
        [message] = await receiver.wait_for(1, timeout=15)
    assert message.path == f"/bot{BOT_TOKEN}/sendMessage"
    assert message.headers["content-type"] == "application/json"
    sent = message.json()
    assert sent["chat_id"] == TEL_ID
    lines = sent["text"].splitlines()
    assert lines[0].startswith(
        f"{user.name}: 2 records matched alert {made['alert']['id']} "
        "(level >= ERROR, process worker) at "
    )
    assert lines[1].startswith("ERROR ") and lines[1].endswith("worker billing: disk full")
    assert lines[2].startswith("CRITICAL ") and len(lines) == 3
    assert message.headers["user-agent"].startswith("bot-logging-server/")
    assert BOT_TOKEN not in caplog.text  # httpx would log the URL, which holds the token


async def test_webhooks_are_signed_with_the_rules_secret_and_a_timestamp(make_app, receiver):
    async with make_app(**alert_settings(receiver)) as app:
        client, storage = app.test_client(), app.app.extensions["bot_logging_server.storage"]
        user = await tel_user(storage)
        made = await add_alert(client, user, channel="webhook", url=receiver.url + "/in")
        await post(client, user, [record(i) for i in range(3)])
        [message] = await receiver.wait_for(1, timeout=15)
    assert message.path == "/in" and message.headers["content-type"] == "application/json"
    assert verify(made["secret"], message)
    assert not verify("0" * 64, message)
    assert abs(int(message.headers["x-alert-timestamp"]) - time.time()) < 60
    body = message.json()
    assert body["count"] == 3 and body["user"] == user.name
    assert body["alert"] == made["alert"]["id"] and body["attempt"] == 1
    assert str(body["delivery"]) == message.headers["x-alert-delivery"]
    assert [line["msg"] for line in body["lines"]] == [f"payment failed {i}" for i in range(3)]
    assert body["lines"][0]["level_name"] == "ERROR" and body["window_seconds"] == 1
    assert body["first_at"].endswith("Z") and body["text"].startswith(f"{user.name}: 3 records")


# -- ingest is not affected ---------------------------------------------------------------


async def test_ingest_answers_do_not_wait_for_slow_deliveries(make_app):
    with Receiver(delay=3.0) as receiver:
        async with make_app(**alert_settings(receiver)) as app:
            client, storage = app.test_client(), app.app.extensions["bot_logging_server.storage"]
            user = await tel_user(storage)
            for _ in range(5):
                await add_alert(client, user, channel="webhook", url=receiver.url + "/slow")
            await post(client, user, [record(0)])
            await asyncio.sleep(2.5)  # the window closed; five deliveries are under way
            slowest = 0.0
            for i in range(10):
                started = time.monotonic()
                await post(client, user, [record(i) for i in range(30)])
                slowest = max(slowest, time.monotonic() - started)
            assert await storage.count_logs(user.id) == 301
    assert slowest < 1.0, slowest


async def test_a_failing_match_never_fails_the_batch(app, client, storage, monkeypatch):
    from bot_logging_server.alerts import get_alerts

    user = await tel_user(storage)
    await add_alert(client, user, channel="telegram")

    def broken(rows):
        raise RuntimeError("boom")

    monkeypatch.setattr(CompiledRule, "select", lambda self, rows: broken(rows))
    await post(client, user, [record(0)])
    assert await storage.count_logs(user.id) == 1
    assert get_alerts(app.app) is not None
