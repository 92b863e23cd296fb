"""The per-minute counters behind ``GET /api/stats`` (``log_counts``), on both backends.

Stats without a text or field filter are summed from the counters (whole hours from the
hourly ones, whole minutes from the per-minute ones, the partial minutes at the ends of a
range from the rows); every answer here is compared with the same
stats grouped from the rows themselves, which a filter every record matches
(``p_name = "proc"``) forces. Random records, random ranges, every bucket width; again after
a retention purge, a replayed Idempotency-Key batch and a user's removal, and after the
migration that fills the counters of an older database.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from support import execute_sql, new_account

from bot_logging_server.config import DatabaseURL, build_config
from bot_logging_server.retention import Policy, Purger
from bot_logging_server.storage import (
    BUCKETS,
    Claim,
    LogQuery,
    LogRow,
    counts,
    logs,
    make_storage,
    utc_now,
)
from bot_logging_server.storage.migrations import for_backend

LEVELS = (10, 20, 25, 30, 40, 50)
#: Every record's process name: a filter on it matches them all, and takes the row query.
PROC = "proc"
SPAN = timedelta(days=3)


def random_rows(rng: random.Random, n: int, start: datetime) -> list[LogRow]:
    """`n` records at random times in the `SPAN` after `start` (a fifth of them exactly on
    a minute's start, where a range's edge may fall)."""
    out = []
    for i in range(n):
        at = start + timedelta(seconds=rng.uniform(0, SPAN.total_seconds()))
        if rng.random() < 0.2:
            at = at.replace(second=0, microsecond=0)
        msg = f"record {i}"
        out.append(LogRow(i % 7, PROC, rng.choice("ab"), rng.choice(LEVELS), msg, False, 9, at, at))
    return out


def random_moment(rng: random.Random, rows: list[LogRow], start: datetime) -> datetime | None:
    """A range's end: none, a record's own time, a minute's start, or any instant."""
    kind = rng.randrange(4)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice(rows).event_at
    moment = start + timedelta(seconds=rng.uniform(-3600, SPAN.total_seconds() + 3600))
    return moment.replace(second=0, microsecond=0) if kind == 2 else moment


async def assert_counted_as_grouped(storage, user_id: int, query: LogQuery, bucket: str):
    counted = await storage.log_stats(user_id, query, bucket)
    grouped = await storage.log_stats(
        user_id, LogQuery(query.min_level, query.since, query.until, p_name=PROC), bucket
    )
    assert counted == grouped, (query, bucket)
    return counted


async def assert_stats_exact(storage, user_id: int, rows: list[LogRow], rng: random.Random):
    """Stats of `user_id` over many random ranges, from the counters, equal the rows'."""
    for bucket in BUCKETS:
        everything = await assert_counted_as_grouped(storage, user_id, LogQuery(), bucket)
        assert sum(c.count for c in everything) == await storage.count_logs(user_id)
    await assert_random_ranges_exact(storage, user_id, rows, rng)


async def assert_random_ranges_exact(storage, user_id: int, rows: list[LogRow], rng):
    """Stats of `user_id` over 40 random ranges and levels equal the rows'."""
    start = min(r.event_at for r in rows)
    for i in range(40):
        since, until = random_moment(rng, rows, start), random_moment(rng, rows, start)
        if since is not None and until is not None and until < since:
            since, until = until, since
        if i % 10 == 0 and since is not None:  # within one minute, or across one boundary
            until = since + timedelta(seconds=rng.choice((1, 59, 61, 90)))
        query = LogQuery(min_level=rng.choice((None, None, 25, 40)), since=since, until=until)
        await assert_counted_as_grouped(storage, user_id, query, BUCKETS[i % len(BUCKETS)])


async def counters(storage, user_id: int, table: str = "log_counts") -> list[tuple]:
    """`user_id`'s counters in `table` (per minute, or ``log_counts_hour``): each (start,
    level) with its count, summed over the writers' rows."""
    column = "hour" if table == "log_counts_hour" else "minute"
    return [
        (start, level, int(n))
        for start, level, n in await storage.db.fetch(
            f"SELECT {column}, level, SUM(n) FROM {table} WHERE user_id = ? "
            f"GROUP BY {column}, level ORDER BY {column}, level",
            (user_id,),
        )
    ]


async def assert_counters_total(storage, user_id: int, total: int) -> None:
    """Both tables of `user_id` count `total` records, and hold no empty counter."""
    for table in ("log_counts", "log_counts_hour"):
        stored = await counters(storage, user_id, table)
        assert sum(n for *_, n in stored) == total, table
        assert all(n > 0 for *_, n in stored), table  # an emptied minute leaves none behind


async def test_stats_from_the_counters_equal_the_rows_grouped(storage):
    rng = random.Random(8)
    account, other = await new_account(storage), await new_account(storage)
    start = datetime(2024, 3, 1, 10, 17, 23, 500_000)
    rows = random_rows(rng, 1500, start)
    for part in range(0, len(rows), 300):  # several transactions, the same minutes again
        await storage.insert_logs(account.id, rows[part : part + 300], utc_now())
    await storage.insert_logs(other.id, random_rows(rng, 200, start), utc_now())
    await assert_stats_exact(storage, account.id, rows, rng)
    await assert_counters_total(storage, account.id, 1500)
    # Minutes shared by several records are one counter; hours far fewer.
    assert len(await counters(storage, account.id, "log_counts_hour")) <= 72 * len(LEVELS)


async def test_a_purge_takes_its_records_out_of_the_counters(storage):
    rng = random.Random(9)
    account = await new_account(storage)
    now = utc_now()
    cutoff = now - timedelta(days=1)
    # None within a minute of the cutoff: the purge's own clock reads it a moment later.
    rows = [
        r
        for r in random_rows(rng, 1200, now - timedelta(days=2))
        if abs(r.event_at - cutoff) > timedelta(minutes=1)
    ]
    await storage.insert_logs(account.id, rows, utc_now())
    # Every record older than a day goes, in small transactions that cut minutes.
    policy = Policy(max_age=timedelta(days=1))
    report = await Purger(storage, policy, batch=37).run(username=account.name)
    kept = [r for r in rows if r.event_at >= cutoff]
    assert 0 < report.deleted[account.name] < len(rows)
    assert await storage.count_logs(account.id) == len(kept)
    await assert_stats_exact(storage, account.id, kept, rng)
    await assert_counters_total(storage, account.id, len(kept))


async def test_keeping_the_newest_rows_takes_the_others_out_of_the_counters(storage):
    rng = random.Random(10)
    account = await new_account(storage)
    rows = random_rows(rng, 600, utc_now() - timedelta(days=4))
    await storage.insert_logs(account.id, rows, utc_now())
    await Purger(storage, Policy(max_rows=250), batch=64).run(username=account.name)
    assert await storage.count_logs(account.id) == 250
    await assert_stats_exact(storage, account.id, rows[-250:], rng)
    await assert_counters_total(storage, account.id, 250)


async def test_counters_of_several_writers_sum_and_an_emptied_minute_leaves_no_row(
    storage, monkeypatch
):
    """Each process adds to rows of its own (servers through different cluster nodes never
    update one row): a count is their sum, and a purge that empties a minute deletes every
    writer's row of it."""
    rng = random.Random(15)
    account = await new_account(storage)
    now = utc_now()
    cutoff = now - timedelta(days=1)
    rows = [
        r
        for r in random_rows(rng, 900, now - timedelta(days=2))
        if abs(r.event_at - cutoff) > timedelta(minutes=1)
    ]
    for writer, part in enumerate((rows[0::3], rows[1::3], rows[2::3]), start=1):
        monkeypatch.setattr(counts, "writer_id", lambda writer=writer: writer)
        await storage.insert_logs(account.id, part, utc_now())
    stored = await storage.db.fetch(
        "SELECT COUNT(DISTINCT writer), COUNT(*), COUNT(DISTINCT minute, level) FROM log_counts "
        "WHERE user_id = ?"
        if storage.name == "mysql"
        else "SELECT COUNT(DISTINCT writer), COUNT(*), COUNT(DISTINCT minute || level) "
        "FROM log_counts WHERE user_id = ?",
        (account.id,),
    )
    writers, counter_rows, keys = (int(v) for v in stored[0])
    assert writers == 3 and counter_rows > keys  # minutes written by several writers
    await assert_stats_exact(storage, account.id, rows, rng)
    monkeypatch.setattr(counts, "writer_id", lambda: 4)  # the purge: yet another process
    await Purger(storage, Policy(max_age=timedelta(days=1)), batch=41).run(username=account.name)
    kept = [r for r in rows if r.event_at >= cutoff]
    await assert_stats_exact(storage, account.id, kept, rng)
    await assert_counters_total(storage, account.id, len(kept))
    for table, column in (("log_counts", "minute"), ("log_counts_hour", "hour")):
        old = await storage.db.fetch(
            f"SELECT COUNT(*) FROM {table} WHERE user_id = ? AND {column} < ?",
            (account.id, storage.db.dialect.encode_time(cutoff - timedelta(hours=1))),
        )
        assert old == [(0,)], table  # every writer's rows of the emptied minutes went


async def test_a_replayed_idempotent_batch_is_counted_once(storage):
    rng = random.Random(11)
    account = await new_account(storage)
    rows = random_rows(rng, 300, datetime(2024, 6, 1))
    first = Claim.new(account.id, "batch-1", "fp", '{"added": 300}', utc_now())
    assert await storage.insert_logs(account.id, rows, utc_now(), first) == 300
    again = Claim.new(account.id, "batch-1", "fp", '{"added": 300}', utc_now())
    assert await storage.insert_logs(account.id, rows, utc_now(), again) == 0
    assert again.duplicate is not None
    assert await storage.count_logs(account.id) == 300
    await assert_stats_exact(storage, account.id, rows, rng)
    await assert_counters_total(storage, account.id, 300)


async def test_removing_a_user_drops_their_counters_only(storage):
    rng = random.Random(12)
    gone, stays = await new_account(storage), await new_account(storage)
    start = datetime(2024, 6, 1)
    await storage.insert_logs(gone.id, random_rows(rng, 100, start), utc_now())
    kept = random_rows(rng, 100, start)
    await storage.insert_logs(stays.id, kept, utc_now())
    await storage.remove_user(gone.name)
    assert await counters(storage, gone.id) == []
    assert await counters(storage, gone.id, "log_counts_hour") == []
    await assert_counters_total(storage, stays.id, 100)
    await assert_stats_exact(storage, stays.id, kept, rng)


@pytest.mark.parametrize("bucket", BUCKETS)
async def test_a_range_inside_one_minute_is_counted_from_the_rows(storage, bucket):
    account = await new_account(storage)
    at = datetime(2024, 6, 1, 12, 30)
    rows = [
        LogRow(1, PROC, "a", 20, "m", False, 1, at + timedelta(seconds=s), at)
        for s in (0, 10, 20, 30, 59.999999)
    ]
    await storage.insert_logs(account.id, rows, utc_now())
    query = LogQuery(since=at + timedelta(seconds=10), until=at + timedelta(seconds=30))
    counted = await assert_counted_as_grouped(storage, account.id, query, bucket)
    assert [c.count for c in counted] == [2]


def _downgrade_to_version_7(url: DatabaseURL) -> None:
    """Undo step 8 by hand: the counters go, and so do the schema_version rows of step 8
    and the steps after it (they run again)."""
    execute_sql(
        url,
        [
            "DROP TABLE log_counts",
            "DROP TABLE log_counts_hour",
            "DELETE FROM schema_version WHERE version >= 8",
        ],
    )


async def test_a_version_7_database_gets_counters_of_the_records_it_holds(fresh_database_url):
    rng = random.Random(13)
    config = build_config({"database_url": fresh_database_url}, environ={})
    start = datetime(2024, 2, 28, 23, 0, 0, 1)
    storage = make_storage(config)
    await storage.open()
    try:
        owners = [await new_account(storage), await new_account(storage)]
        stored = {}
        for owner in owners:
            stored[owner.id] = random_rows(rng, 400, start)
            await storage.insert_logs(owner.id, stored[owner.id], utc_now())
        before = {
            (owner.id, table): await counters(storage, owner.id, table)
            for owner in owners
            for table in ("log_counts", "log_counts_hour")
        }
    finally:
        await storage.close()
    _downgrade_to_version_7(DatabaseURL.parse(fresh_database_url))
    storage = make_storage(config)
    await storage.open()  # migrates: step 8 again, filling the counters from the rows
    try:
        rows = await storage.db.fetch("SELECT MAX(version) FROM schema_version")
        assert int(rows[0][0]) == for_backend(storage.name)[-1].version
        for owner in owners:
            for table in ("log_counts", "log_counts_hour"):
                assert await counters(storage, owner.id, table) == before[(owner.id, table)]
            await assert_stats_exact(storage, owner.id, stored[owner.id], rng)
    finally:
        await storage.close()


@pytest.mark.parametrize("cap", [1, 7, 50])
async def test_the_cap_keeps_the_same_newest_bars_as_the_rows(storage, monkeypatch, cap):
    rng = random.Random(14)
    account = await new_account(storage)
    rows = random_rows(rng, 400, datetime(2024, 6, 1, 0, 0, 30))
    await storage.insert_logs(account.id, rows, utc_now())
    monkeypatch.setattr(logs, "MAX_STAT_ROWS", cap)
    for bucket in BUCKETS:
        everything = await assert_counted_as_grouped(storage, account.id, LogQuery(), bucket)
        assert len(everything) == cap if bucket == "minute" else len(everything) <= cap
    await assert_random_ranges_exact(storage, account.id, rows, rng)
