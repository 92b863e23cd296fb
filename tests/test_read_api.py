"""The read API: ``/api/logs``, ``/api/logs/export``, ``/api/stats``, on both backends.

docs/API.md, "Reading logs".

A user reads only their own records, whatever the filter; pages are keyset pages that neither
skip nor repeat a record while new ones arrive; every record carries every stored field.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import re
import uuid

import orjson
import pytest
from support import (
    assert_error,
    client_body,
    client_record,
    get_logs,
    new_account,
    post_logs,
    read_headers,
)

from bot_logging_server.records import CSV_COLUMNS
from bot_logging_server.schemas.query import encode_cursor
from bot_logging_server.storage import get_storage

# (level, msg, event_at, p_description, p_name, pid): the records every filter test reads.
SEED = [
    (10, "debug start", "2024-03-01T09:00:00", "web", "python3", 100),
    (20, "user logged in", "2024-03-01T10:00:00", "web", "python3", 100),
    (30, "disk 85% full", "2024-03-01T10:30:00", "disk", "python3", 100),
    (40, "Payment FAILED for order_17", "2024-03-01T11:00:00", "billing", "worker", 200),
    (50, "ÉCHEC critique", "2024-03-02T08:00:00", "billing", "worker", 200),
    (40, {"order": 17, "error": "card declined"}, "2024-03-02T09:00:00", "billing", "worker", 200),
    (35, "custom level payment retry", "2024-03-03T00:00:00", "retry", "worker", 201),
]
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z")


async def send_seed(client, account):
    """POST `SEED` as `account` (one batch per process); answer the stored ids in SEED order."""
    for (p_name, pid), group in itertools.groupby(SEED, key=lambda s: (s[4], s[5])):
        logs = [
            client_record(level=level, msg=msg, event_at=event_at, p_description=desc)
            for level, msg, event_at, desc, _, _ in group
        ]
        response = await post_logs(
            client, account, client_body(account.name, logs, p_name=p_name, pid=pid)
        )
        assert response.status_code == 200
    ids = [r["id"] for r in (await get_logs(client, account, limit=100))["logs"]]
    assert len(ids) == len(SEED)
    return ids[::-1]


@pytest.fixture
async def seeded(client, user, make_user):
    """`user` and another user each hold `SEED`; answers ``(user, ids, other, other_ids)``."""
    other = await make_user()
    other_ids = await send_seed(client, other)
    ids = await send_seed(client, user)
    return user, ids, other, other_ids


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
    ({"q": "_"}, [3]),
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


@pytest.mark.parametrize(
    ("params", "field"),
    [({"format": "xml"}, "query.format"), ({"limit": "0"}, "query.limit")],
)
async def test_bad_export_parameters_are_400(client, user, params, field):
    response = await client.get("/api/logs/export", query_string=params, headers=read_headers(user))
    assert (await assert_error(response, 400, "BadRequest"))["detail"].startswith(field)


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


async def test_bad_stats_bucket_is_400(client, user):
    response = await client.get(
        "/api/stats", query_string={"bucket": "week"}, headers=read_headers(user)
    )
    assert (await assert_error(response, 400, "BadRequest"))["detail"].startswith("query.bucket")


READ_PATHS = ["/api/logs", "/api/logs/export", "/api/stats", "/api/tail"]


@pytest.mark.parametrize("path", READ_PATHS)
@pytest.mark.parametrize(
    "headers",
    [
        "none",
        "user only",
        "token only",
        "wrong token",
        "token of another user",
        "malformed token",
        "unknown user",
        "bearer of another scheme",
    ],
)
async def test_reading_needs_the_users_own_token(client, user, make_user, path, headers):
    other = await make_user()
    cases = {
        "none": {},
        "user only": {"X-User": user.name},
        "token only": {"X-User-Token": user.token},
        "wrong token": {"X-User": user.name, "X-User-Token": "0" * 32},
        "token of another user": {"X-User": user.name, "X-User-Token": other.token},
        "malformed token": {"X-User": user.name, "X-User-Token": "secret"},
        "unknown user": {"X-User": "nobody-here", "X-User-Token": user.token},
        "bearer of another scheme": {"X-User": user.name, "Authorization": f"Basic {user.token}"},
    }
    response = await client.get(path, headers=cases[headers])
    await assert_error(response, 403, "Forbidden")


async def test_a_bearer_token_works_like_x_user_token(client, user):
    await post_logs(client, user)
    response = await client.get("/api/logs", headers=read_headers(user, bearer=True))
    assert response.status_code == 200
    assert len((await response.get_json())["logs"]) == 1


async def test_a_user_name_beyond_latin_1_is_sent_as_utf_8_bytes(client, make_user):
    account = await make_user(name=f"zoë_🚀_{uuid.uuid4().hex[:6]}")
    await post_logs(client, account)
    # Quart's test client writes header values as UTF-8 bytes, as the viewer does.
    response = await client.get("/api/logs", headers=read_headers(account))
    assert response.status_code == 200
    assert len((await response.get_json())["logs"]) == 1


async def test_a_disabled_user_cannot_read(make_app):
    async with make_app(auth_cache_seconds=0) as app:
        client, storage = app.test_client(), get_storage(app.app)
        account = await new_account(storage)
        assert (await client.get("/api/logs", headers=read_headers(account))).status_code == 200
        await storage.set_disabled(account.name, True)
        response = await client.get("/api/logs", headers=read_headers(account))
        await assert_error(response, 403, "Forbidden")


# -- export --------------------------------------------------------------------------------


async def export(client, account, **params):
    response = await client.get(
        "/api/logs/export", query_string=params, headers=read_headers(account)
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    return response


async def test_ndjson_export_streams_every_record_across_many_pages(client, user):
    await post_logs(client, user, client_body(user.name, 2345))
    response = await export(client, user, format="ndjson")
    assert response.content_type == "application/x-ndjson"
    assert "attachment" in response.headers["Content-Disposition"]
    records = [orjson.loads(line) for line in (await response.get_data()).splitlines()]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == 2345
    assert ids == sorted(ids, reverse=True)
    first_page = (await get_logs(client, user, limit=1000))["logs"]
    assert records[:1000] == first_page


async def test_export_applies_the_filters_and_an_optional_limit(client, user):
    await post_logs(client, user, client_body(user.name, 30))  # levels 30, 40, 50 in turn
    criticals = await export(client, user, level="critical")
    lines = (await criticals.get_data()).splitlines()
    assert len(lines) == 10 and {orjson.loads(x)["level"] for x in lines} == {50}
    capped = await export(client, user, limit=7)
    assert len((await capped.get_data()).splitlines()) == 7


async def test_csv_export_has_a_header_and_quotes_awkward_messages(client, user):
    awkward = 'a "quoted", comma\nand a second line'
    body = client_body(user.name, [client_record(msg=awkward), client_record(1, msg="plain")])
    await post_logs(client, user, body)
    response = await export(client, user, format="csv")
    assert response.content_type.startswith("text/csv")
    rows = list(csv.reader(io.StringIO(await response.get_data(as_text=True))))
    assert rows[0] == list(CSV_COLUMNS)
    assert [row[CSV_COLUMNS.index("msg")] for row in rows[1:]] == ["plain", awkward]
    assert rows[1][CSV_COLUMNS.index("truncated")] == "false"
    assert rows[1][CSV_COLUMNS.index("event_at")].endswith("Z")


FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]


async def test_csv_cells_that_would_run_as_formulas_get_a_leading_quote(client, user):
    harmless = ["a=b", "1-2", " =space first", "'already quoted", ""]
    logs = [client_record(msg=m, p_description=m) for m in FORMULAS + harmless]
    await post_logs(client, user, client_body(user.name, logs, p_name="=cmd|' /C calc'!A0"))
    response = await export(client, user, format="csv")
    rows = list(csv.reader(io.StringIO(await response.get_data(as_text=True), newline="")))
    msgs = [row[CSV_COLUMNS.index("msg")] for row in rows[1:]][::-1]  # oldest first
    descriptions = [row[CSV_COLUMNS.index("p_description")] for row in rows[1:]][::-1]
    quoted = ["'" + m for m in FORMULAS] + harmless
    assert msgs == descriptions == quoted
    assert {row[CSV_COLUMNS.index("p_name")] for row in rows[1:]} == {"'=cmd|' /C calc'!A0"}
    # NDJSON carries the text as stored.
    lines = (await (await export(client, user, format="ndjson")).get_data()).splitlines()
    assert [orjson.loads(line)["msg"] for line in lines][::-1] == FORMULAS + harmless


async def test_an_empty_export_is_empty(client, user):
    assert await (await export(client, user)).get_data() == b""
    assert await (await export(client, user, format="csv")).get_data(as_text=True) == (
        ",".join(CSV_COLUMNS) + "\r\n"
    )


# -- stats ---------------------------------------------------------------------------------


async def stats(client, account, **params):
    response = await client.get("/api/stats", query_string=params, headers=read_headers(account))
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


def table(body):
    return [(c["start"], c["level_name"], c["count"]) for c in body["counts"]]


async def test_stats_count_records_per_level_per_hour_newest_first(client, seeded):
    user, _, _, _ = seeded
    body = await stats(client, user)
    assert (body["bucket"], body["partial"]) == ("hour", False)
    assert table(body) == [
        ("2024-03-03T00:00:00.000000Z", "Level 35", 1),
        ("2024-03-02T09:00:00.000000Z", "ERROR", 1),
        ("2024-03-02T08:00:00.000000Z", "CRITICAL", 1),
        ("2024-03-01T11:00:00.000000Z", "ERROR", 1),
        ("2024-03-01T10:00:00.000000Z", "INFO", 1),
        ("2024-03-01T10:00:00.000000Z", "WARNING", 1),
        ("2024-03-01T09:00:00.000000Z", "DEBUG", 1),
    ]


async def test_stats_per_day_and_per_minute_with_filters(client, seeded):
    user, _, _, _ = seeded
    assert table(await stats(client, user, bucket="day", level=30)) == [
        ("2024-03-03T00:00:00.000000Z", "Level 35", 1),
        ("2024-03-02T00:00:00.000000Z", "ERROR", 1),
        ("2024-03-02T00:00:00.000000Z", "CRITICAL", 1),
        ("2024-03-01T00:00:00.000000Z", "WARNING", 1),
        ("2024-03-01T00:00:00.000000Z", "ERROR", 1),
    ]
    assert table(await stats(client, user, bucket="minute", q="payment", until="2024-03-02")) == [
        ("2024-03-01T11:00:00.000000Z", "ERROR", 1),
    ]


async def test_stats_buckets_cut_times_to_the_minute(client, user):
    times = ["2024-05-05T12:22:01.5", "2024-05-05T12:22:59.999999", "2024-05-05T12:23:00"]
    body = client_body(user.name, [client_record(level=40, event_at=t) for t in times])
    await post_logs(client, user, body)
    assert table(await stats(client, user, bucket="minute")) == [
        ("2024-05-05T12:23:00.000000Z", "ERROR", 1),
        ("2024-05-05T12:22:00.000000Z", "ERROR", 2),
    ]


async def test_export_is_streamed_page_by_page(client, user):
    await post_logs(client, user, client_body(user.name, 2500))
    chunks = []
    async with asyncio.timeout(30):
        connection = client.request("/api/logs/export", headers=read_headers(user))
        async with connection:
            await connection.send_complete()
            while sum(chunk.count(b"\n") for chunk in chunks) < 2500:
                chunks.append(await connection.receive())
    # One body chunk per page of at most 1000 records: 1000 + 1000 + 500.
    assert [chunk.count(b"\n") for chunk in chunks if chunk] == [1000, 1000, 500]


async def suggest(client, account, **params):
    """``GET /api/suggest`` as `account`; answer the response."""
    return await client.get("/api/suggest", query_string=params, headers=read_headers(account))


async def send_names(client, account, names: list[tuple[str, str]]) -> None:
    """One record per (p_name, p_description) in `names`, as `account`."""
    for p_name, p_description in names:
        record = client_record(p_description=p_description)
        response = await post_logs(
            client, account, client_body(account.name, [record], p_name=p_name)
        )
        assert response.status_code == 200


async def test_suggest_answers_own_distinct_names_starting_with_the_prefix_sorted(
    client, user, make_user
):
    other = await make_user()
    await send_names(client, other, [("web-other", "billing-other"), ("webhook", "bills")])
    names = [("web-2", "billing"), ("Web-1", "auth"), ("web-2", "Billing.charge"), ("cron", "a_b")]
    await send_names(client, user, names)
    answer = await suggest(client, user, field="process", prefix="WEB")
    assert answer.status_code == 200
    assert await answer.get_json() == {"field": "process", "values": ["Web-1", "web-2"]}
    loggers = await (await suggest(client, user, field="logger", prefix="bil")).get_json()
    assert loggers["values"] == ["billing", "Billing.charge"]
    everything = await (await suggest(client, user, field="process")).get_json()
    assert everything["values"] == ["cron", "Web-1", "web-2"]
    # Wildcards are plain characters.
    for prefix, expected in [("a_", ["a_b"]), ("_", []), ("%", []), ("a%", [])]:
        found = await (await suggest(client, user, field="logger", prefix=prefix)).get_json()
        assert found["values"] == expected, prefix
    # The other user's names are never suggested, and theirs are theirs.
    theirs = await (await suggest(client, other, field="process", prefix="web")).get_json()
    assert theirs["values"] == ["web-other", "webhook"]


async def test_suggest_answers_at_most_twenty_values(client, user):
    names = [(f"proc-{i:02}", "x") for i in range(25)]
    records = [client_record(p_description=f"logger-{i:02}") for i in range(25)]
    await post_logs(client, user, client_body(user.name, records))
    await send_names(client, user, names)
    answer = await (await suggest(client, user, field="logger", prefix="LOGGER-")).get_json()
    assert answer["values"] == [f"logger-{i:02}" for i in range(20)]


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({}, "query.field: missing data for required field"),
        ({"field": "msg"}, "query.field: must be one of: process, logger"),
        ({"field": "process", "prefix": "x" * 256}, "query.prefix: longer than maximum length 255"),
    ],
)
async def test_suggest_refuses_a_bad_query(client, user, params, detail):
    body = await assert_error(await suggest(client, user, **params), 400, "BadRequest")
    assert body["detail"].lower() == detail.lower()


async def test_suggest_needs_the_users_token(client, user):
    response = await client.get(
        "/api/suggest",
        query_string={"field": "process"},
        headers={"X-User": user.name, "X-User-Token": "0" * 32},
    )
    await assert_error(response, 403, "Forbidden")
