"""The order of ``/api/logs`` and ``/api/logs/export``: by event time, or by arrival.

docs/API.md, "GET /api/logs" (``sort``, ``order``).

By default a user's records are listed by event time, newest first, ties by id; a record
sent late (its client was offline) takes its place in time, not the top of the list. Pages
are keyset pages on (event_at, id): a reader paging down sees each record at most once, and
sees every record that was below the page it is at when it arrived. ``sort=id`` lists by
arrival, as every listing did before, and a cursor from then still pages that way.
"""

from __future__ import annotations

import base64
import sqlite3
from datetime import datetime

import orjson
import pytest
from support import (
    assert_error,
    client_body,
    client_record,
    execute_sql,
    get_logs,
    new_account,
    post_logs,
    read_headers,
)

from bot_logging_server.config import DatabaseURL, build_config
from bot_logging_server.schemas.query import encode_cursor
from bot_logging_server.storage import LogQuery, LogRow, make_storage
from bot_logging_server.storage.migrations import for_backend

BASE = "2024-05-05T12:"


def at(minute: int, second: int = 0, micro: int = 0) -> str:
    """An event time on 2024-05-05 at 12:`minute`:`second`.`micro` (naive UTC)."""
    return f"{BASE}{minute:02d}:{second:02d}.{micro:06d}"


async def send(client, account, *events: tuple[str, str]) -> list[int]:
    """Send one batch of ``(msg, event_at)`` records; answer their ids, in order."""
    logs = [client_record(msg=msg, event_at=event_at) for msg, event_at in events]
    response = await post_logs(client, account, client_body(account.name, logs))
    assert response.status_code == 200, await response.get_data(as_text=True)
    listed = await get_logs(client, account, sort="id", limit=len(events))
    return [r["id"] for r in reversed(listed["logs"])]


def msgs(body: dict) -> list[str]:
    return [r["msg"] for r in body["logs"]]


async def pages(client, account, limit: int, between=None, **params) -> list[dict]:
    """Every page from the first, following next_cursor; `between()` runs between pages."""
    body = await get_logs(client, account, limit=limit, **params)
    seen = list(body["logs"])
    while body["next_cursor"] is not None:
        if between is not None:
            await between()
        body = await get_logs(client, account, limit=limit, cursor=body["next_cursor"], **params)
        seen += body["logs"]
    return seen


def key(record: dict) -> tuple[str, int]:
    return record["event_at"], record["id"]


async def exported(client, account, **params) -> list[dict]:
    response = await client.get(
        "/api/logs/export", query_string=params, headers=read_headers(account)
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    return [orjson.loads(line) for line in (await response.get_data()).splitlines()]


async def test_late_records_are_listed_by_their_event_time(client, user):
    await send(client, user, ("at 10", at(10)), ("at 12", at(12)))
    # A client back online after a while: its records arrive last, with older times.
    await send(client, user, ("at 11", at(11)), ("at 9", at(9)))
    assert msgs(await get_logs(client, user)) == ["at 12", "at 11", "at 10", "at 9"]
    assert msgs(await get_logs(client, user, order="asc")) == ["at 9", "at 10", "at 11", "at 12"]


async def test_arrival_order_lists_records_as_they_were_stored(client, user):
    await send(client, user, ("at 10", at(10)), ("at 12", at(12)))
    await send(client, user, ("at 11", at(11)), ("at 9", at(9)))
    assert msgs(await get_logs(client, user, sort="id")) == ["at 9", "at 11", "at 12", "at 10"]
    oldest = await get_logs(client, user, sort="id", order="asc")
    assert msgs(oldest) == ["at 10", "at 12", "at 11", "at 9"]
    paged = await pages(client, user, 1, sort="id")
    assert [r["msg"] for r in paged] == ["at 9", "at 11", "at 12", "at 10"]


async def test_equal_event_times_are_ordered_by_id_across_pages(client, user):
    same = at(30, 5, 123456)
    ids = await send(client, user, *((f"tie {i}", same) for i in range(7)))
    await send(client, user, ("later", at(31)), ("earlier", at(29)))
    newest = await pages(client, user, 2)
    assert [r["msg"] for r in newest] == [
        "later",
        *(f"tie {i}" for i in range(6, -1, -1)),
        "earlier",
    ]
    assert [r["id"] for r in newest[1:8]] == ids[::-1]
    oldest = await pages(client, user, 3, order="asc")
    assert [r["msg"] for r in oldest] == ["earlier", *(f"tie {i}" for i in range(7)), "later"]


async def test_event_time_pages_neither_skip_nor_repeat_while_records_arrive(client, user):
    await send(client, user, *((f"m{i}", at(10 + i)) for i in range(25)))
    first = await get_logs(client, user, limit=6)
    top = key(first["logs"][0])
    newer, ties, late = [], [], []
    cursor, seen, rounds = first["next_cursor"], list(first["logs"]), 0
    while cursor is not None:
        rounds += 1
        edge = seen[-1]["event_at"][:-1]  # the cursor's own event time
        # Between two pages: a newer record (above every page), one at exactly the cursor's
        # time (a higher id: above the cursor too), and a late one older than everything.
        newer += await send(client, user, (f"new {rounds}", at(50, rounds)))
        ties += await send(client, user, (f"tie {rounds}", edge))
        late += await send(client, user, (f"late {rounds}", at(0, rounds)))
        body = await get_logs(client, user, limit=6, cursor=cursor)
        seen += body["logs"]
        cursor = body["next_cursor"]
    keys = [key(r) for r in seen]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)  # no repeat
    everything = await pages(client, user, 1000)
    assert {r["id"] for r in seen}.isdisjoint(newer + ties)
    # Nothing missed: every record at or below the top when the reading began (the late
    # ones included, in their place) was seen.
    expected = [r for r in everything if key(r) <= top and r["id"] not in ties]
    assert [r["id"] for r in seen] == [r["id"] for r in expected]
    assert set(late) <= {r["id"] for r in seen} and rounds >= 4


async def test_oldest_first_pages_see_every_record_once_while_newer_ones_arrive(client, user):
    await send(client, user, *((f"m{i}", at(10 + i)) for i in range(12)))
    count = 0

    async def arrive():
        nonlocal count
        count += 1
        await send(client, user, (f"new {count}", at(40, count)))

    seen = await pages(client, user, 5, between=arrive, order="asc")
    keys = [key(r) for r in seen]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    # The newer records are after every page read so far: oldest first reaches them all.
    assert [r["msg"] for r in seen] == [f"m{i}" for i in range(12)] + [
        f"new {i}" for i in range(1, count + 1)
    ]


async def test_an_arrival_cursor_from_before_event_order_still_pages_by_arrival(client, user):
    ids = await send(client, user, ("a", at(10)), ("b", at(12)), ("c", at(11)), ("d", at(9)))
    # What a client paging when the server was upgraded holds: an id cursor, no sort.
    body = await get_logs(client, user, limit=2, cursor=encode_cursor(ids[2]))
    assert msgs(body) == ["b", "a"]
    by_arrival = await get_logs(client, user, limit=2, sort="id")
    assert by_arrival["next_cursor"] == encode_cursor(ids[2])


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


NOT_A_CURSOR = "query.cursor: not a valid cursor"
NOON = "at:2024-05-05T12:00:00.000000"


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"cursor": "not-a-cursor"}, NOT_A_CURSOR),
        ({"cursor": b64(NOON + "/x")}, NOT_A_CURSOR),
        ({"cursor": b64(NOON)}, NOT_A_CURSOR),
        ({"cursor": b64(NOON + "/" + str(2**63))}, NOT_A_CURSOR),
        ({"cursor": b64("at:2024-05-05T12:00:00/7")}, NOT_A_CURSOR),  # not as we write it
        ({"cursor": b64("at:2024-05-05T12:00:00.000000+00:00/7")}, NOT_A_CURSOR),
        ({"cursor": b64("at:2024-13-05T12:00:00.000000/7")}, NOT_A_CURSOR),
        (
            {"cursor": encode_cursor(7), "sort": "event_at"},
            "query.cursor: a cursor of sort=id, not event_at",
        ),
        (
            {"cursor": b64(NOON + "/7"), "sort": "id"},
            "query.cursor: a cursor of sort=event_at, not id",
        ),
        ({"sort": "arrival"}, "query.sort: must be one of: event_at, id"),
        ({"order": "sideways"}, "query.order: must be one of: desc, asc"),
    ],
    ids=lambda v: str(v)[:60],
)
@pytest.mark.parametrize("path", ["/api/logs", "/api/logs/export"])
async def test_a_bad_cursor_sort_or_order_is_400(client, user, path, params, detail):
    await post_logs(client, user)
    response = await client.get(path, query_string=params, headers=read_headers(user))
    assert (await assert_error(response, 400, "BadRequest"))["detail"] == detail


async def test_an_event_time_cursor_round_trips_microseconds(client, user):
    await send(client, user, *((f"m{i}", at(10, 0, i)) for i in range(5)))
    seen = await pages(client, user, 1)
    assert [r["msg"] for r in seen] == [f"m{i}" for i in range(4, -1, -1)]


async def test_export_follows_the_order_asked_across_pages(client, user):
    # Two pages and a half of one event time, then records that arrive late and older:
    # the export's own pages are keyset pages on (event_at, id), ties and all.
    await post_logs(
        client,
        user,
        client_body(user.name, [client_record(i, event_at=at(20)) for i in range(1500)]),
    )
    await post_logs(
        client,
        user,
        client_body(user.name, [client_record(i, event_at=at(10)) for i in range(700)]),
    )
    await send(client, user, ("newest", at(30)))
    listed = await pages(client, user, 1000)
    by_event = await exported(client, user)
    assert by_event == listed and len(by_event) == 2201
    assert [key(r) for r in by_event] == sorted((key(r) for r in by_event), reverse=True)
    assert by_event[0]["msg"] == "newest" and by_event[-1]["event_at"] == at(10) + "Z"
    assert await exported(client, user, order="asc") == listed[::-1]
    by_arrival = await exported(client, user, sort="id")
    assert [r["id"] for r in by_arrival] == sorted((r["id"] for r in listed), reverse=True)
    csv_lines = (
        await (
            await client.get(
                "/api/logs/export",
                query_string={"format": "csv", "limit": 3},
                headers=read_headers(user),
            )
        ).get_data(as_text=True)
    ).splitlines()
    assert len(csv_lines) == 4 and "newest" in csv_lines[1]


async def test_export_starts_after_a_listing_cursor_of_the_same_order(client, user):
    await send(client, user, ("a", at(10)), ("b", at(12)), ("c", at(11)), ("d", at(9)))
    for params, rest in (({}, ["c", "a", "d"]), ({"sort": "id"}, ["b", "a"])):
        first = await get_logs(client, user, limit=1 if not params else 2, **params)
        after = await exported(client, user, cursor=first["next_cursor"], **params)
        assert [r["msg"] for r in after] == rest


@pytest.mark.parametrize(
    ("params", "index"),
    [
        ({}, "ix_user_logs_user_event_id"),
        ({"order": "asc", "level": "warning"}, "ix_user_logs_user_event_id"),
        ({"sort": "id"}, "ix_user_logs_user_id"),
        ({"sort": "id", "order": "asc", "p_name": "python3"}, "ix_user_logs_user_id"),
    ],
    ids=lambda v: str(v)[:50],
)
async def test_each_order_is_read_off_its_index_without_sorting(
    client, user, storage, database_url, monkeypatch, params, index
):
    # SQLite with statistics from before (user_id, event_at, id) was added (an ANALYZE run
    # before the upgrade) read an arrival page through that index and sorted all of the
    # user's rows; MySQL could choose so too. The page query is spied (and run), then
    # explained on the real database.
    await send(client, user, *((f"m{i}", at(10 + i)) for i in range(5)))
    if storage.name == "sqlite":
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        conn.execute("ANALYZE")  # then statistics of a large table, as taken before
        conn.execute("DELETE FROM sqlite_stat1 WHERE tbl = 'user_logs'")
        conn.executemany(
            "INSERT INTO sqlite_stat1 VALUES ('user_logs', ?, ?)",
            [("ix_user_logs_user_id", "600000 60000 1"),
             ("ix_user_logs_user_event_level", "600000 60000 1 1")],
        )  # fmt: skip
        conn.commit()
        conn.close()
    statements = []
    fetch = storage.db.fetch

    async def spy(sql, args=()):
        statements.append((sql, args))
        return await fetch(sql, args)

    monkeypatch.setattr(storage.db, "fetch", spy)
    first = await get_logs(client, user, limit=2, **params)  # the first page, then the next
    await get_logs(client, user, limit=2, cursor=first["next_cursor"], **params)
    monkeypatch.undo()
    pages = [(s, a) for s, a in statements if s.startswith("SELECT id, user_id")]
    assert len(pages) == 2
    for sql, args in pages:
        if storage.name == "sqlite":
            plan = " | ".join(str(r[-1]) for r in await fetch("EXPLAIN QUERY PLAN " + sql, args))
            assert index in plan and "TEMP B-TREE" not in plan, plan
        else:
            plan = " | ".join(str(row) for row in await fetch("EXPLAIN " + sql, args))
            assert index in plan and "filesort" not in plan, plan


def _downgrade_to_version_6(url: DatabaseURL) -> None:
    """Undo steps 7 and 8 by hand: the index and the counters go, and so do their
    schema_version rows."""
    on = "" if url.scheme == "sqlite" else " ON user_logs"
    execute_sql(
        url,
        [
            f"DROP INDEX ix_user_logs_user_event_id{on}",
            "DROP TABLE log_counts",
            "DROP TABLE log_counts_hour",
            "DELETE FROM schema_version WHERE version >= 7",
        ],
    )


def _row(msg: str, event_at: str) -> LogRow:
    at_ = datetime.fromisoformat(event_at)
    return LogRow(1, "p", "d", 40, msg, False, len(msg), at_, at_)


async def test_a_version_6_database_gets_the_event_time_index_and_lists_by_event_time(
    fresh_database_url,
):
    config = build_config({"database_url": fresh_database_url}, environ={})
    storage = make_storage(config)
    await storage.open()
    try:
        owner = await new_account(storage)
        now = datetime.fromisoformat(at(59))
        await storage.insert_logs(owner.id, [_row("at 10", at(10)), _row("at 12", at(12))], now)
        await storage.insert_logs(owner.id, [_row("late: at 11", at(11))], now)
    finally:
        await storage.close()
    _downgrade_to_version_6(DatabaseURL.parse(fresh_database_url))
    storage = make_storage(config)
    await storage.open()  # migrates: step 7 again (and the steps after it)
    try:
        rows = await storage.db.fetch("SELECT MAX(version) FROM schema_version")
        assert int(rows[0][0]) == for_backend(storage.name)[-1].version  # every step again
        page = await storage.query_logs(owner.id, LogQuery(sort="event_at"))
        assert [r.msg for r in page] == ["at 12", "late: at 11", "at 10"]
        arrival = await storage.query_logs(owner.id, LogQuery(sort="id"))
        assert [r.msg for r in arrival] == ["late: at 11", "at 12", "at 10"]
    finally:
        await storage.close()
