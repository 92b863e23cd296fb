"""``POST /send_logs`` accepts exactly what the real client sends (docs/API.md, Request)."""

from __future__ import annotations

import json

import pytest
from support import (
    assert_added,
    client_body,
    client_record,
    new_account,
    post_logs,
    recent_logs,
)

from bot_logging_server.storage import get_storage


async def test_real_client_batch_of_30_is_stored_with_every_field(client, storage, user):
    body = client_body(user.name, 30)
    body["data"]["logs"][7]["msg"] = {"order": 17, "items": ["a", "b"]}  # a non-string msg
    response = await post_logs(client, user, body)
    await assert_added(response, 30)
    rows = await recent_logs(storage, user.id, 100)
    assert len(rows) == 30
    oldest = rows[-1]
    sent = body["data"]["logs"][0]
    assert (oldest.level, oldest.msg, oldest.p_description) == (30, "message 0", "billing")
    assert (oldest.pid, oldest.p_name) == (4242, "python3")
    assert oldest.event_at.strftime("%Y-%m-%dT%H:%M:%S") == sent["event_at"]
    assert oldest.post_time.strftime("%Y-%m-%dT%H:%M:%S") == body["data"]["post_time"]
    assert [r.msg for r in rows if r.msg.startswith("{")] == ['{"order":17,"items":["a","b"]}']
    assert [r.id for r in rows] == sorted((r.id for r in rows), reverse=True)


@pytest.mark.parametrize("path", ["/send_logs", "//send_logs", "/send_logs/"])
async def test_every_path_the_client_may_use_reaches_the_receiver(client, storage, user, path):
    await assert_added(await post_logs(client, user, path=path), 1)
    assert await storage.count_logs(user.id) == 1


async def test_empty_logs_is_valid_and_adds_nothing(client, storage, user):
    await assert_added(await post_logs(client, user, client_body(user.name, [])), 0)
    assert await storage.count_logs(user.id) == 0


@pytest.mark.parametrize(
    ("level", "stored"),
    [
        (30, 30),
        (40, 40),
        (50, 50),
        (0, 0),
        (100, 100),
        ("40", 40),
        ("notset", 0),
        ("debug", 10),
        ("info", 20),
        ("warning", 30),
        ("warn", 30),
        ("error", 40),
        ("critical", 50),
        ("fatal", 50),
        ("ERROR", 40),
        ("Warning", 30),
        ("0040", 40),
        (" 50 ", 50),
        ("0" * 5000 + "40", 40),
    ],
    ids=str,
)
async def test_levels_are_numbers_or_names_and_stored_as_numbers(
    client, storage, user, level, stored
):
    body = client_body(user.name, [client_record(level=level)])
    await assert_added(await post_logs(client, user, body), 1)
    (row,) = await recent_logs(storage, user.id)
    assert row.level == stored


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2020-05-05T12:22:22", "2020-05-05 12:22:22.000000"),
        ("2020-05-05T12:22:22+00:00", "2020-05-05 12:22:22.000000"),
        ("2020-05-05T12:22:22Z", "2020-05-05 12:22:22.000000"),
        ("2020-05-05 12:22:22", "2020-05-05 12:22:22.000000"),
        ("2020-05-05T12:22:22.123456", "2020-05-05 12:22:22.123456"),
        ("2020-05-05T12:22:22.5", "2020-05-05 12:22:22.500000"),
        ("2020-05-05T14:22:22.000001+02:00", "2020-05-05 12:22:22.000001"),
        ("2020-05-05T07:22:22-05:00", "2020-05-05 12:22:22.000000"),
        ("1000-01-01T00:00:00", "1000-01-01 00:00:00.000000"),
        ("9999-12-31T23:59:59.999999", "9999-12-31 23:59:59.999999"),
        ("1000-01-01T01:00:00+01:00", "1000-01-01 00:00:00.000000"),
        ("2020-05-05t12:22:22z", "2020-05-05 12:22:22.000000"),
    ],
    ids=str,
)
async def test_timestamps_are_iso8601_and_stored_as_utc_with_microseconds(
    client, storage, user, sent, stored
):
    body = client_body(user.name, [client_record(event_at=sent)], post_time=sent)
    await assert_added(await post_logs(client, user, body), 1)
    (row,) = await recent_logs(storage, user.id)
    assert row.event_at.isoformat(sep=" ", timespec="microseconds") == stored
    assert row.post_time.isoformat(sep=" ", timespec="microseconds") == stored
    assert row.received_at.year >= 2026


@pytest.mark.parametrize(
    ("msg", "stored"),
    [
        ("plain text", "plain text"),
        ("", ""),
        (17, "17"),
        (1.5, "1.5"),
        (True, "true"),
        (None, "null"),
        ([1, "two"], '[1,"two"]'),
        ({"k": {"n": None}}, '{"k":{"n":null}}'),
    ],
    ids=repr,
)
async def test_msg_may_be_any_json_value_and_non_strings_are_stored_as_json(
    client, storage, user, msg, stored
):
    body = client_body(user.name, [client_record(msg=msg)])
    await assert_added(await post_logs(client, user, body), 1)
    (row,) = await recent_logs(storage, user.id)
    assert (row.msg, row.truncated, row.msg_length) == (stored, False, len(stored))


async def test_nan_message_from_python_json_dumps_is_kept(client, storage, user):
    raw = client_body(user.name, [client_record(msg=0)])
    text = json.dumps(raw).replace('"msg": 0', '"msg": NaN')
    await assert_added(await post_logs(client, user, text), 1)
    (row,) = await recent_logs(storage, user.id)
    assert row.msg == "NaN"


async def test_lone_surrogate_escape_is_stored_as_replacement_character(client, storage, user):
    raw = json.dumps(client_body(user.name, [client_record(msg="a\udcffb")]))
    assert "\\udcff" in raw  # what Python's json.dumps sends for a surrogate-escaped byte
    await assert_added(await post_logs(client, user, raw), 1)
    (row,) = await recent_logs(storage, user.id)
    assert row.msg == "a\ufffdb"


async def test_message_over_the_limit_is_cut_flagged_and_keeps_its_length(make_app):
    async with make_app(max_msg_chars=10) as app:
        storage = get_storage(app.app)
        account = await new_account(storage)
        long_msg = "é" * 9 + "😀" * 6  # 15 characters, some of them 4 bytes in UTF-8
        body = client_body(account.name, [client_record(msg=long_msg), client_record(msg="short")])
        await assert_added(await post_logs(app.test_client(), account, body), 2)
        short, cut = await recent_logs(storage, account.id)
        assert (cut.msg, cut.truncated, cut.msg_length) == (long_msg[:10], True, 15)
        assert (short.msg, short.truncated, short.msg_length) == ("short", False, 5)


async def test_default_message_limit_is_65536_characters(client, storage, user):
    body = client_body(
        user.name, [client_record(msg="x" * 65_536), client_record(msg="y" * 70_000)]
    )
    await assert_added(await post_logs(client, user, body), 2)
    cut, whole = await recent_logs(storage, user.id)
    assert (whole.truncated, whole.msg_length, len(whole.msg)) == (False, 65_536, 65_536)
    assert (cut.truncated, cut.msg_length, len(cut.msg)) == (True, 70_000, 65_536)


async def test_long_process_names_are_cut_to_255_characters(client, storage, user):
    body = client_body(user.name, [client_record(p_description="d" * 300)], p_name="n" * 300)
    await assert_added(await post_logs(client, user, body), 1)
    (row,) = await recent_logs(storage, user.id)
    assert (row.p_name, row.p_description) == ("n" * 255, "d" * 255)


async def test_unknown_fields_anywhere_are_ignored(client, storage, user):
    body = client_body(user.name, [client_record(extra={"a": 1}, thread="main")], future=True)
    body["also"] = [1, 2]
    await assert_added(await post_logs(client, user, body), 1)
    assert await storage.count_logs(user.id) == 1


async def test_batch_of_10000_records_is_accepted(client, storage, user):
    await assert_added(await post_logs(client, user, client_body(user.name, 10_000)), 10_000)
    assert await storage.count_logs(user.id) == 10_000


async def test_text_is_stored_verbatim(client, storage, user):
    texts = [
        "emoji 😀🎉 and CJK 日志",
        "right-to-left: שלום עולם مرحبا",
        "SQL: '); DROP TABLE user_logs; -- \" ` \\",
        "<script>alert('x')</script> &amp;",
        "nul \x00 byte and control \x01\x1f",
        "newlines\r\n\ttabs",
    ]
    body = client_body(user.name, [client_record(msg=t, p_description=t) for t in texts])
    await assert_added(await post_logs(client, user, body), len(texts))
    rows = await recent_logs(storage, user.id)
    assert [r.msg for r in reversed(rows)] == texts
    assert [r.p_description for r in reversed(rows)] == texts


async def test_content_type_is_not_required(client, storage, user):
    response = await client.post(
        "/send_logs",
        data=json.dumps(client_body(user.name)),
        headers={"X-User-Token": user.token, "Content-Type": "text/plain"},
    )
    await assert_added(response, 1)


async def test_password_token_is_md5_of_name_and_password(client, storage, make_user):
    import hashlib

    account = await make_user(password="s3cret")
    assert account.token == hashlib.md5((account.name + "s3cret").encode()).hexdigest()
    await assert_added(await post_logs(client, account), 1)
