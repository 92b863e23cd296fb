"""Alerts: per-user rules on level, process, logger and text, sent to Telegram or a webhook.

Rules are made, listed and removed through ``/api/alerts`` and ``alerts add|list|remove``;
records that match are counted into one message per rule per window (a storm of 10,000
records is one message with the count and the first lines); Telegram messages go through
the Bot API to the user's ``tel_id`` (a local fake Bot API here); webhooks carry an
HMAC-SHA256 signature the receiver can check; failed deliveries are retried with back-off
and shown by the API; a pending alert survives a restart; two servers (or ``--workers 2``)
on one database send each alert once; ingest answers never wait for any of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import uuid

import pytest
from click.testing import CliRunner
from support import (
    Account,
    Receiver,
    ServerProcess,
    add_user,
    assert_error,
    client_body,
    client_record,
    http,
    post_logs,
    read_headers,
    run_app,
)

from bot_logging_server.accounts import create_user
from bot_logging_server.alerts.rules import CompiledRule
from bot_logging_server.alerts.service import Timing
from bot_logging_server.cli import main
from bot_logging_server.config import build_config
from bot_logging_server.openapi.alerts import AlertCreatedSchema, AlertListSchema
from bot_logging_server.storage import AlertRule, LogRow, utc_now

BOT_TOKEN = "123456:TEST-bot-token"
TEL_ID = 424242


@pytest.fixture
def receiver():
    """A fake Telegram Bot API and webhook receiver answering 200."""
    with Receiver() as fake:
        yield fake


def alert_settings(receiver: Receiver, **overrides):
    """Settings of an app whose alerts go to `receiver`: a 1 s window, 0.2 s first retry."""
    return {
        "alert_window": 1,
        "alert_retry": 0.2,
        "telegram_token": BOT_TOKEN,
        "telegram_api_url": receiver.url,
        **overrides,
    }


async def tel_user(storage, tel_id: int | None = TEL_ID) -> Account:
    """A new user with a Telegram chat id."""
    new = await create_user(storage, f"u_{uuid.uuid4().hex[:10]}", None, tel_id)
    return Account(new.user.username, new.token, new.user.id)


async def add_alert(client, user, status: int = 201, **rule):
    response = await client.post("/api/alerts", json=rule, headers=read_headers(user))
    assert response.status_code == status, await response.get_data(as_text=True)
    return await response.get_json()


async def list_alerts(client, user) -> list[dict]:
    response = await client.get("/api/alerts", headers=read_headers(user))
    assert response.status_code == 200, await response.get_data(as_text=True)
    body = await response.get_json()
    AlertListSchema().load(body)  # the documented shape
    return body["alerts"]


def record(i: int = 0, level: int = 40, msg: str | None = None, logger: str = "billing"):
    return client_record(i, level=level, msg=msg or f"payment failed {i}", p_description=logger)


async def post(client, user, records, p_name: str = "python3"):
    response = await post_logs(client, user, client_body(user.name, records, p_name=p_name))
    assert response.status_code == 200, await response.get_data(as_text=True)


def verify(secret: str, message) -> bool:
    """What a webhook receiver does: recompute the signature from the timestamp and body."""
    timestamp = message.headers["x-alert-timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + message.body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest("sha256=" + expected, message.headers["x-alert-signature"])


async def settled(client, user, status: str = "sent", timeout: float = 10) -> dict:
    """The user's only rule once its last delivery's outcome is recorded as `status`."""
    deadline = time.monotonic() + timeout
    while True:
        [alert] = await list_alerts(client, user)
        if alert["last_status"] == status or time.monotonic() > deadline:
            return alert
        await asyncio.sleep(0.05)


async def quiet_for(receiver: Receiver, seconds: float, count: int) -> None:
    """After `seconds` more, the receiver still has `count` requests (nothing late)."""
    await asyncio.sleep(seconds)
    assert len(receiver.received) == count, [r.body[:200] for r in receiver.received]


# -- rules: API and CLI -------------------------------------------------------------------


async def test_rules_are_added_listed_and_removed_through_the_api(client, storage):
    alice, bob = await tel_user(storage), await tel_user(storage)
    hook = await add_alert(
        client, alice, channel="webhook", url="http://127.0.0.1:9/hook", level="warning",
        p_name="python3", p_description="billing", text="Declined",
    )  # fmt: skip
    AlertCreatedSchema().load(hook)
    assert len(hook["secret"]) == 64 and int(hook["secret"], 16) >= 0
    assert hook["alert"]["level"] == 30 and hook["alert"]["channel"] == "webhook"
    assert hook["alert"]["description"] == (
        'level >= WARNING, process python3, logger billing, text "Declined"'
    )
    tele = await add_alert(client, alice, channel="telegram")
    assert "secret" not in tele and tele["alert"]["level"] == 40  # error by default
    listed = await list_alerts(client, alice)
    assert [a["id"] for a in listed] == [hook["alert"]["id"], tele["alert"]["id"]]
    assert all("secret" not in a for a in listed)
    assert listed[0]["pending"] == 0 and listed[0]["last_status"] is None
    assert await list_alerts(client, bob) == []
    path = f"/api/alerts/{hook['alert']['id']}"
    await assert_error(await client.delete(path, headers=read_headers(bob)), 404, "NotFound")
    gone = await client.delete(path, headers=read_headers(alice))
    assert gone.status_code == 200 and await gone.get_json() == {"deleted": hook["alert"]["id"]}
    assert [a["id"] for a in await list_alerts(client, alice)] == [tele["alert"]["id"]]
    await assert_error(await client.delete(path, headers=read_headers(alice)), 404, "NotFound")


@pytest.mark.parametrize(
    ("rule", "detail"),
    [
        ({}, "body.channel: missing data for required field"),
        ({"channel": "sms"}, "body.channel: must be one of: telegram, webhook"),
        ({"channel": "webhook"}, "body.url: required for a webhook"),
        ({"channel": "webhook", "url": "ftp://x.example/a"}, "body.url: not a valid URL"),
        ({"channel": "telegram", "url": "http://x.example/"}, "body.url: only for a webhook"),
        ({"channel": "telegram", "level": "loud"}, "body.level: "),
        ({"channel": "telegram", "p_name": "p" * 256}, "body.p_name: "),
    ],
    ids=["no-channel", "sms", "webhook-no-url", "ftp", "telegram-url", "level", "long-name"],
)
async def test_invalid_rules_are_refused_with_400_and_nothing_stored(client, storage, rule, detail):
    user = await tel_user(storage)
    response = await client.post("/api/alerts", json=rule, headers=read_headers(user))
    body = await assert_error(response, 400, "BadRequest")
    assert body["detail"].startswith(detail), body["detail"]
    assert await storage.alert_rules(user.id) == []


async def test_telegram_rules_need_the_users_tel_id(client, storage):
    user = await tel_user(storage, tel_id=None)
    body = await add_alert(client, user, status=400, channel="telegram")
    assert "has no tel_id" in body["detail"]
    assert await storage.alert_rules(user.id) == []


async def test_a_user_has_a_limited_number_of_rules(client, storage, monkeypatch):
    monkeypatch.setattr("bot_logging_server.alerts.rules.MAX_RULES", 2)
    user = await tel_user(storage)
    for _ in range(2):
        await add_alert(client, user, channel="telegram")
    response = await client.post("/api/alerts", json={"channel": "telegram"},
                                 headers=read_headers(user))  # fmt: skip
    body = await assert_error(response, 409, "Conflict")
    assert body["detail"].startswith("at most ") and len(await storage.alert_rules(user.id)) == 2


async def test_alerts_need_the_read_credentials(client, storage):
    user = await tel_user(storage)
    for method in ("GET", "POST"):
        wrong = {"X-User": user.name, "X-User-Token": "0" * 32}
        response = await client.open("/api/alerts", method=method, headers=wrong, json={})
        await assert_error(response, 403, "Forbidden")
    await assert_error(await client.delete("/api/alerts/1"), 403, "Forbidden")


def test_rules_are_managed_from_the_command_line(database_url):
    import asyncio as aio

    user = aio.run(add_user(database_url, tel_id=TEL_ID))
    runner = CliRunner()

    def cli(*args):
        return runner.invoke(main, ["--database-url", database_url, *args])

    hook = cli("alerts", "add", user.name, "--channel", "webhook", "--url",
               "https://hooks.example/a", "--level", "warning", "--process", "web",
               "--logger", "billing", "--text", "declined")  # fmt: skip
    assert hook.exit_code == 0, hook.output
    secret = hook.stdout.strip()
    assert len(secret) == 64 and "signing secret (shown once)" in hook.stderr
    tele = cli("alerts", "add", user.name, "--channel", "telegram")
    assert tele.exit_code == 0 and "level >= ERROR -> telegram" in tele.stdout
    listed = cli("alerts", "list", user.name)
    assert listed.exit_code == 0, listed.output
    assert 'level >= WARNING, process web, logger billing, text "declined"' in listed.stdout
    assert "https://hooks.example/a" in listed.stdout and secret not in listed.stdout
    first_id = listed.stdout.splitlines()[1].split()[0]
    removed = cli("alerts", "remove", first_id)
    assert removed.exit_code == 0 and f"removed alert rule {first_id}" in removed.stdout
    assert "hooks.example" not in cli("alerts", "list").stdout
    again = cli("alerts", "remove", first_id)
    assert again.exit_code == 1 and f"no alert rule {first_id}" in again.output
    unknown = cli("alerts", "add", "nobody-here", "--channel", "telegram")
    assert unknown.exit_code == 1 and "no user named 'nobody-here'" in unknown.output
    bad = cli("alerts", "add", user.name, "--channel", "webhook")
    assert bad.exit_code == 2 and "option.url: required for a webhook" in bad.output


# -- matching -----------------------------------------------------------------------------


def rule(**conditions) -> CompiledRule:
    fields = {"min_level": 40, "p_name": None, "p_description": None, "text": None}
    fields.update(conditions)
    return CompiledRule(AlertRule(1, 1, channel="telegram", url=None, secret=None,
                                  created_at=utc_now(), **fields))  # fmt: skip


def row(level=40, p_name="web", logger="billing", msg="Payment DECLINED") -> LogRow:
    now = utc_now()
    return LogRow(1, p_name, logger, level, msg, False, len(msg), now, now)


@pytest.mark.parametrize(
    ("conditions", "record", "matches"),
    [
        ({}, row(level=40), True),
        ({}, row(level=50), True),
        ({}, row(level=39), False),
        ({"min_level": 30}, row(level=30), True),
        ({"p_name": "web"}, row(p_name="web"), True),
        ({"p_name": "web"}, row(p_name="web2"), False),
        ({"p_name": "web"}, row(p_name="Web"), False),
        ({"p_description": "billing"}, row(logger="billing"), True),
        ({"p_description": "billing"}, row(logger="billing.charge"), True),
        ({"p_description": "billing"}, row(logger="billing2"), False),
        ({"p_description": "billing.charge"}, row(logger="billing"), False),
        ({"text": "declined"}, row(msg="Payment DECLINED"), True),
        ({"text": "declined"}, row(msg="payment ok"), False),
        ({"text": "straße"}, row(msg="STRASSE 5"), True),
        ({"p_name": "web", "text": "declined"}, row(p_name="cron"), False),
        ({"min_level": 50, "p_name": "web"}, row(level=40), False),
    ],
)
def test_a_rule_matches_level_process_logger_and_text(conditions, record, matches):
    assert rule(**conditions).select([record]) == ([record] if matches else [])


async def test_only_matching_records_of_the_rules_user_are_sent(make_app, receiver):
    async with make_app(**alert_settings(receiver)) as app:
        client, storage = app.test_client(), app.app.extensions["bot_logging_server.storage"]
        alice, bob = await tel_user(storage), await tel_user(storage, tel_id=1)
        await add_alert(client, alice, channel="telegram", p_description="billing", text="fail")
        await post(client, bob, [record(i) for i in range(3)])  # another user's
        await post(client, alice, [record(0, level=30), record(1, logger="shop"),
                                   record(2, msg="all good")])  # fmt: skip
        await post(client, alice, [record(3, msg="charge FAILED"), record(4, level=20)])
        [message] = await receiver.wait_for(1, timeout=15)
        await quiet_for(receiver, 2.5, 1)
    text = message.json()["text"]
    assert message.json()["chat_id"] == TEL_ID
    assert text.startswith(f"{alice.name}: 1 record matched alert ")
    assert "charge FAILED" in text and "payment failed" not in text and "all good" not in text


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


async def test_removing_a_user_removes_their_alert_rules(client, storage):
    user = await tel_user(storage)
    await add_alert(client, user, channel="telegram")
    from bot_logging_server.accounts import remove_user

    await remove_user(storage, user.name)
    assert [r for r in await storage.alert_rules() if r.user_id == user.id] == []
