"""Listing logs, ``GET /api/logs``, on both backends (docs/API.md, "Reading logs").

A record carries every stored field with UTC times; records come newest first; every
filter selects exactly the matching records and never another user's; keyset pages neither
skip nor repeat a record while new ones arrive; a bad query parameter or a cursor beyond any
record id is 400 naming it.
"""

from __future__ import annotations

import asyncio
import json
import re

import orjson
import pytest
from support import assert_error, client_body, get_logs, post_logs, read_headers

from bot_logging_server.records import CSV_COLUMNS
from bot_logging_server.schemas.query import encode_cursor

pytest_plugins = ["support.api_fixtures"]


ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z")


async def test_a_record_carries_every_stored_field_with_utc_times(client, seeded):
    user, ids, _, _ = seeded
    body = await get_logs(client, user, limit=100)
    assert body["next_cursor"] is None
    records = {r["id"]: r for r in body["logs"]}
    record = records[ids[5]]
    assert set(record) == set(CSV_COLUMNS)
    assert record["user_id"] == user.id
    assert (record["level"], record["level_name"]) == (40, "ERROR")
    assert json.loads(record["msg"]) == {"order": 17, "error": "card declined"}
    assert (record["p_name"], record["p_description"], record["pid"]) == ("worker", "billing", 200)
    assert (record["truncated"], record["msg_length"]) == (False, len(record["msg"]))
    assert record["event_at"] == "2024-03-02T09:00:00.000000Z"
    assert all(ISO_Z.match(record[k]) for k in ("event_at", "post_time", "received_at"))
    assert records[ids[6]]["level_name"] == "Level 35"


async def test_logs_are_newest_first(client, seeded):
    user, ids, _, _ = seeded
    assert [r["id"] for r in (await get_logs(client, user))["logs"]] == ids[::-1]


FILTERS = [
    ({"level": 40}, [3, 4, 5]),
    ({"level": "error"}, [3, 4, 5]),
    ({"level": "WARNING"}, [2, 3, 4, 5, 6]),
    ({"level": "35"}, [3, 4, 5, 6]),
    ({"since": "2024-03-02"}, [4, 5, 6]),
    ({"until": "2024-03-01T10:30:00"}, [0, 1]),
    ({"since": "2024-03-01T10:00:00Z", "until": "2024-03-01T11:00:00+00:00"}, [1, 2]),
    ({"since": "2024-03-01T12:00:00+02:00"}, [1, 2, 3, 4, 5, 6]),
    ({"q": "payment"}, [3, 6]),
    ({"q": "FAILED"}, [3]),
    ({"q": "failed"}, [3]),
    ({"q": "échec"}, [4]),
    ({"q": "85%"}, [2]),
    ({"q": "%"}, [2]),
    ({"q": "_"}, []),  # "_" is part of the word "order_17": no word starts with it
    ({"q": "*_"}, [3]),
    ({"q": "85_"}, []),
    ({"q": "|"}, []),
    ({"q": "card declined"}, [5]),
    ({"p_description": "billing"}, [3, 4, 5]),
    ({"p_name": "worker"}, [3, 4, 5, 6]),
    ({"pid": 201}, [6]),
    ({"level": 40, "p_description": "billing", "q": "order"}, [3, 5]),
    ({"level": "", "q": "", "since": ""}, [0, 1, 2, 3, 4, 5, 6]),
]


@pytest.mark.parametrize(("params", "expected"), FILTERS, ids=lambda v: json.dumps(v))
async def test_filters_select_exactly_the_matching_records(client, seeded, params, expected):
    user, ids, _, _ = seeded
    body = await get_logs(client, user, **params)
    assert [r["id"] for r in body["logs"]] == [ids[i] for i in reversed(expected)]


@pytest.mark.parametrize(("params", "expected"), FILTERS, ids=lambda v: json.dumps(v))
async def test_another_users_records_never_appear_whatever_the_filter(
    client, seeded, params, expected
):
    user, ids, other, other_ids = seeded
    for account, own in ((user, ids), (other, other_ids)):
        logs = (await get_logs(client, account, **params))["logs"]
        assert {r["id"] for r in logs} <= set(own)
        assert {r["user_id"] for r in logs} <= {account.id}
        export = await client.get(
            "/api/logs/export", query_string=params, headers=read_headers(account)
        )
        lines = (await export.get_data()).splitlines()
        assert {orjson.loads(line)["id"] for line in lines} == {r["id"] for r in logs}
        stats = await client.get("/api/stats", query_string=params, headers=read_headers(account))
        counts = (await stats.get_json())["counts"]
        assert sum(c["count"] for c in counts) == len(expected)


async def test_pages_neither_skip_nor_repeat_while_new_records_arrive(client, user):
    await post_logs(client, user, client_body(user.name, 25))
    first = await get_logs(client, user, limit=10)
    seen = [r["id"] for r in first["logs"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        # New records arrive between every two pages: they are newer, never on later pages.
        await post_logs(client, user, client_body(user.name, 5))
        page = await get_logs(client, user, limit=10, cursor=cursor)
        seen += [r["id"] for r in page["logs"]]
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 25
    assert seen == sorted(seen, reverse=True)
    newest = await get_logs(client, user, limit=1000)
    assert [r["id"] for r in newest["logs"]][-25:] == seen  # the 25 oldest, nothing missing


async def test_an_exactly_full_last_page_is_followed_by_an_empty_one(client, user):
    await post_logs(client, user, client_body(user.name, 20))
    first = await get_logs(client, user, limit=10)
    second = await get_logs(client, user, limit=10, cursor=first["next_cursor"])
    third = await get_logs(client, user, limit=10, cursor=second["next_cursor"])
    assert (len(first["logs"]), len(second["logs"]), third) == (
        10,
        10,
        {"logs": [], "next_cursor": None},
    )


async def test_default_page_is_100_and_limit_goes_up_to_1000(client, user):
    await post_logs(client, user, client_body(user.name, 150))
    assert len((await get_logs(client, user))["logs"]) == 100
    assert len((await get_logs(client, user, limit=1000))["logs"]) == 150


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"level": "loud"}, "query.level"),
        ({"level": "101"}, "query.level"),
        ({"since": "yesterday"}, "query.since"),
        ({"until": "2024-13-01"}, "query.until"),
        ({"limit": "0"}, "query.limit"),
        ({"limit": "1001"}, "query.limit"),
        ({"limit": "ten"}, "query.limit"),
        ({"pid": "x"}, "query.pid"),
        ({"cursor": "not-a-cursor"}, "query.cursor"),
        ({"cursor": "aWQ6LTE"}, "query.cursor"),  # "id:-1"
        ({"q": "x" * 1001}, "query.q"),
    ],
    ids=lambda v: str(v)[:40],
)
async def test_bad_query_parameters_are_400_naming_the_parameter(client, user, params, field):
    response = await client.get("/api/logs", query_string=params, headers=read_headers(user))
    body = await assert_error(response, 400, "BadRequest")
    assert body["detail"].startswith(field)


@pytest.mark.parametrize("path", ["/api/logs", "/api/logs/export"])
@pytest.mark.parametrize(
    ("last_id", "status"),
    [(2**63 - 1, 200), (2**63, 400), (2**64, 400), (10**20 - 1, 400)],
    ids=["2^63-1", "2^63", "2^64", "20-digits"],
)
async def test_a_cursor_beyond_any_record_id_is_400_before_the_answer_starts(
    client, user, path, last_id, status
):
    await post_logs(client, user)
    params = {"cursor": encode_cursor(last_id)}
    async with asyncio.timeout(10):
        response = await client.get(path, query_string=params, headers=read_headers(user))
        text = await response.get_data(as_text=True)
    if status == 400:
        body = await assert_error(response, 400, "BadRequest")
        assert body["detail"] == "query.cursor: not a valid cursor"
        return
    assert response.status_code == 200
    assert "msg" in text and "InternalServerError" not in text  # the one record, whole
