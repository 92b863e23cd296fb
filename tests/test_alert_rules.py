"""Alert rules: made, listed and removed through ``/api/alerts`` and ``alerts add|list|remove``.

Invalid rules are refused with 400 and nothing stored; a Telegram rule needs the user's
``tel_id``; a user has a limited number of rules, reached with the read credentials only;
removing a user removes their rules. A rule matches on level, process, logger and text,
and only the records of its own user are sent.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from support import (
    TEL_ID,
    add_alert,
    add_user,
    alert_settings,
    assert_error,
    list_alerts,
    post,
    quiet_for,
    read_headers,
    record,
    tel_user,
)

from bot_logging_server.alerts.rules import CompiledRule
from bot_logging_server.cli import main
from bot_logging_server.openapi.alerts import AlertCreatedSchema
from bot_logging_server.storage import AlertRule, LogRow, utc_now

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


async def test_removing_a_user_removes_their_alert_rules(client, storage):
    user = await tel_user(storage)
    await add_alert(client, user, channel="telegram")
    from bot_logging_server.accounts import remove_user

    await remove_user(storage, user.name)
    assert [r for r in await storage.alert_rules() if r.user_id == user.id] == []
