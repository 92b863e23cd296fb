"""Validation (docs/API.md, "Order of checks"): shape 400, then auth 403, then fields 400.

Every failure answers the contract's JSON, names the field in ``detail``, and writes nothing.
"""

from __future__ import annotations

import json

import pytest
from support import assert_error, client_body, client_record, post_logs, recent_logs


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        pytest.param(b"not json", "body: not valid JSON", id="not-json"),
        pytest.param(b"", "body: not valid JSON", id="empty-body"),
        pytest.param(b"\xff\xfe{}", "body: not valid JSON", id="invalid-utf8"),
        pytest.param(b"[]", "data: must be a JSON object", id="array-body"),
        pytest.param(b'"x"', "data: must be a JSON object", id="string-body"),
        pytest.param(b"{}", "data: must be a JSON object", id="no-data"),
        pytest.param(b'{"data": []}', "data: must be a JSON object", id="data-not-object"),
        pytest.param(b'{"data": {}}', "data.user: must be a string", id="no-user"),
        pytest.param(b'{"data": {"user": 5}}', "data.user: must be a string", id="user-number"),
    ],
)
async def test_malformed_body_is_400_before_any_auth(client, raw, detail):
    # No valid token at all: the shape check comes first (step 1), so still 400.
    response = await client.post("//send_logs", data=raw, headers={"X-User-Token": "x"})
    body = await assert_error(response, 400, "BadRequest")
    assert body["detail"] == detail


async def test_invalid_fields_with_a_wrong_token_are_403_not_400(client, storage, user):
    body = client_body(user.name, [client_record(level="loud")])
    await assert_error(await post_logs(client, user, body, token="0" * 32), 403, "Forbidden")


BAD_FIELDS = [
    # (id, change to the data object, the detail's start)
    ("level-name", {"logs": [client_record(level="loud")]}, "data.logs[0].level:"),
    ("level-101", {"logs": [client_record(level=101)]}, "data.logs[0].level:"),
    ("level-negative", {"logs": [client_record(level=-1)]}, "data.logs[0].level:"),
    ("level-bool", {"logs": [client_record(level=True)]}, "data.logs[0].level:"),
    ("level-null", {"logs": [client_record(level=None)]}, "data.logs[0].level:"),
    ("level-float", {"logs": [client_record(level=30.5)]}, "data.logs[0].level:"),
    ("level-digits-101", {"logs": [client_record(level="101")]}, "data.logs[0].level:"),
    (
        "level-5000-digits",
        {"logs": [client_record(level="9" * 5000)]},
        "data.logs[0].level: must be between 0 and 100",
    ),
    (
        "level-missing",
        {"logs": [{"msg": "m", "event_at": "2020-05-05T12:22:22"}]},
        "data.logs[0].level:",
    ),
    (
        "msg-missing",
        {"logs": [{"level": 40, "event_at": "2020-05-05T12:22:22"}]},
        "data.logs[0].msg:",
    ),
    ("event-at-missing", {"logs": [{"level": 40, "msg": "m"}]}, "data.logs[0].event_at:"),
    (
        "event-at-garbage",
        {"logs": [client_record(event_at="yesterday")]},
        "data.logs[0].event_at: not a valid timestamp",
    ),
    (
        "event-at-number",
        {"logs": [client_record(event_at=1588681342)]},
        "data.logs[0].event_at: not a valid timestamp",
    ),
    (
        "event-at-year-999",
        {"logs": [client_record(event_at="0999-12-31T23:59:59")]},
        "data.logs[0].event_at: outside",
    ),
    (
        "event-at-before-1000-in-utc",
        {"logs": [client_record(event_at="1000-01-01T00:30:00+01:00")]},
        "data.logs[0].event_at: outside",
    ),
    (
        "event-at-after-9999-in-utc",
        {"logs": [client_record(event_at="9999-12-31T23:30:00-01:00")]},
        "data.logs[0].event_at: outside",
    ),
    (
        "event-at-month-13",
        {"logs": [client_record(event_at="2020-13-01T00:00:00")]},
        "data.logs[0].event_at: not a valid timestamp",
    ),
    (
        "p-description-number",
        {"logs": [client_record(p_description=5)]},
        "data.logs[0].p_description:",
    ),
    ("record-not-object", {"logs": ["just a string"]}, "data.logs[0]"),
    ("logs-not-list", {"logs": {"level": 40}}, "data.logs:"),
    ("logs-missing", {"logs": None}, "data.logs:"),
    ("pid-string", {"pid": "4242"}, "data.pid: must be an integer"),
    ("pid-float", {"pid": 4242.5}, "data.pid: must be an integer"),
    ("pid-huge", {"pid": 2**70}, "data.pid:"),
    ("pid-over-bigint", {"pid": 2**63}, "data.pid: out of range"),
    ("pid-missing", {"pid": None}, "data.pid:"),
    ("p-name-number", {"p_name": 17}, "data.p_name: must be a string"),
    ("p-name-missing", {"p_name": None}, "data.p_name:"),
    ("post-time-garbage", {"post_time": "soon"}, "data.post_time: not a valid timestamp"),
    ("post-time-missing", {"post_time": None}, "data.post_time:"),
]


@pytest.mark.parametrize(("change", "detail"), [pytest.param(c, d, id=i) for i, c, d in BAD_FIELDS])
async def test_invalid_field_is_400_naming_the_field_and_writes_nothing(
    client, storage, user, change, detail
):
    body = client_body(user.name)
    for key, value in change.items():
        if value is None:
            del body["data"][key]
        else:
            body["data"][key] = value
    body = await assert_error(await post_logs(client, user, body), 400, "BadRequest")
    assert body["detail"].startswith(detail), body["detail"]
    assert await storage.count_logs(user.id) == 0


async def test_one_bad_record_in_a_batch_writes_nothing_of_the_batch(client, storage, user):
    logs = [client_record(i) for i in range(30)]
    logs[17]["event_at"] = "2020-02-30T00:00:00"
    body = await assert_error(
        await post_logs(client, user, client_body(user.name, logs)), 400, "BadRequest"
    )
    assert body["detail"] == "data.logs[17].event_at: not a valid timestamp"
    assert await storage.count_logs(user.id) == 0


async def test_many_bad_records_are_summarised_in_one_detail(client, storage, user):
    logs = [client_record(i, level="loud") for i in range(8)]
    body = await assert_error(
        await post_logs(client, user, client_body(user.name, logs)), 400, "BadRequest"
    )
    assert body["detail"].count("data.logs[") == 5
    assert body["detail"].endswith("(and 3 more)")


async def test_deeply_nested_body_is_400_not_500(client, user):
    raw = '{"data": ' + "[" * 100_000 + "]" * 100_000 + "}"
    await assert_error(await post_logs(client, user, raw), 400, "BadRequest")


async def test_nested_message_value_is_stored_as_json(client, storage, user):
    msg = {"a": [{"b": [1, 2, {"c": None}]}]}
    body = client_body(user.name, [client_record(msg=msg)])
    response = await post_logs(client, user, body)
    assert response.status_code == 200
    (row,) = await recent_logs(storage, user.id)
    assert json.loads(row.msg) == msg
