"""Retention: a default and a per-user maximum age and rows, purged in small batches.

Old records go, recent ones stay; the newest ``max_rows`` are kept; a user's own rule wins
over the default; one process purges at a time; ingest keeps answering quickly while a purge
runs; ``purge`` and ``users set-retention`` work from the command line.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import timedelta

import pytest
from click.testing import CliRunner
from support import client_body, new_account, post_logs, recent_logs

from bot_logging_server.cli import main
from bot_logging_server.config import build_config
from bot_logging_server.retention import Policy, Purger, format_duration, parse_duration
from bot_logging_server.storage import LogRow, UserNotFound, make_storage, utc_now

DAY = timedelta(days=1)


def rows(n: int, age: timedelta = timedelta(0), tag: str = "m") -> list[LogRow]:
    """`n` records whose ``event_at`` is `age` ago."""
    at = utc_now() - age
    return [
        LogRow(1, "proc", "retention", 40, f"{tag} {i}", False, len(f"{tag} {i}"), at, at)
        for i in range(n)
    ]


async def store(storage, account, n: int, age: timedelta = timedelta(0), tag: str = "m"):
    """Store `n` records of `account` in chunks (one transaction each)."""
    for start in range(0, n, 5000):
        chunk = rows(min(5000, n - start), age, tag)
        await storage.insert_logs(account.id, chunk, utc_now())


async def messages(storage, account) -> list[str]:
    return sorted(r.msg for r in await recent_logs(storage, account.id, 1000))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("45s", 45), ("2w", 1209600), ("0", 0)],
)
def test_durations_read_with_units(text, seconds):
    assert parse_duration(text) == seconds
    if seconds:
        assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["30", "3x", "d", "-1d", "0.1s", ""])
def test_durations_without_a_unit_or_too_short_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


async def test_records_older_than_the_maximum_age_are_deleted_and_the_rest_kept(storage, make_user):
    old, young = await make_user(), await make_user()
    await store(storage, old, 7, 40 * DAY, "old")
    await store(storage, old, 3, timedelta(0), "new")
    await store(storage, young, 4, 29 * DAY, "young")
    report = await Purger(storage, Policy(max_age=30 * DAY), batch=3).run()
    assert report.deleted.get(old.name) == 7
    assert young.name not in report.deleted
    assert await messages(storage, old) == ["new 0", "new 1", "new 2"]
    assert len(await messages(storage, young)) == 4
    assert report.longest_transaction > 0


async def test_maximum_rows_keeps_the_newest_in_small_transactions(storage, make_user):
    account = await make_user()
    for k in range(25):  # one transaction each: ids in this order
        await storage.insert_logs(account.id, rows(1, tag=f"r{k:02d}"), utc_now())
    purger = Purger(storage, Policy(max_rows=10), batch=4)
    report = await purger.run(username=account.name)
    assert report.deleted == {account.name: 15}
    assert report.transactions == math.ceil(15 / 4)
    assert await messages(storage, account) == [f"r{k:02d} 0" for k in range(15, 25)]
    again = await purger.run(username=account.name)
    assert again.deleted == {} and await storage.count_logs(account.id) == 10


async def test_a_users_own_rule_overrides_the_default(storage, make_user):
    forever, own_rows, no_row_limit, default = [await make_user() for _ in range(4)]
    for account in (forever, own_rows, no_row_limit, default):
        await store(storage, account, 5, 100 * DAY, "old")
        await store(storage, account, 5, timedelta(0), "new")
    await storage.set_retention(forever.id, 0, 0)  # keep everything, whatever the default
    await storage.set_retention(own_rows.id, None, 2)  # the default age, and 2 rows at most
    await storage.set_retention(no_row_limit.id, None, 0)  # the default age, any number
    report = await Purger(storage, Policy(max_age=30 * DAY, max_rows=4), batch=100).run()
    assert forever.name not in report.deleted
    assert report.deleted[own_rows.name] == 8
    assert report.deleted[no_row_limit.name] == 5
    assert report.deleted[default.name] == 6  # 5 too old, then 1 past the 4 newest
    counts = [await storage.count_logs(a.id) for a in (forever, own_rows, no_row_limit, default)]
    assert counts == [10, 2, 5, 4]
    await storage.set_retention(own_rows.id, None, None)  # back to the defaults
    assert own_rows.id not in await storage.retention_rules()


async def test_without_a_default_only_users_with_a_rule_lose_records(storage, make_user):
    ruled, other = await make_user(), await make_user()
    await store(storage, ruled, 3, 10 * DAY)
    await store(storage, other, 3, 10 * DAY)
    await storage.set_retention(ruled.id, 86400, None)
    report = await Purger(storage, Policy(), batch=100).run()
    assert report.deleted.get(ruled.name) == 3 and other.name not in report.deleted
    assert await storage.count_logs(other.id) == 3


async def test_a_dry_run_counts_what_would_go_and_deletes_nothing(storage, make_user):
    account = await make_user()
    await store(storage, account, 6, 40 * DAY, "old")
    await store(storage, account, 6, timedelta(0), "new")
    purger = Purger(storage, Policy(max_age=30 * DAY, max_rows=4), batch=5)
    # 6 old (also beyond the 4 newest) + 2 more new ones beyond the 4 newest, counted once.
    dry = await purger.run(username=account.name, dry_run=True)
    assert dry.deleted == {account.name: 8} and dry.dry_run
    assert await storage.count_logs(account.id) == 12
    done = await purger.run(username=account.name)
    assert done.deleted == {account.name: 8}
    assert await storage.count_logs(account.id) == 4


async def test_older_than_replaces_the_policies_and_user_limits_the_pass(storage, make_user):
    one, two = await make_user(), await make_user()
    await storage.set_retention(one.id, 0, 0)  # its own rule is not what --older-than uses
    for account in (one, two):
        await store(storage, account, 3, 5 * DAY)
    purger = Purger(storage, Policy(), batch=100)
    report = await purger.run(username=one.name, older_than=2 * DAY)
    assert report.deleted == {one.name: 3}
    assert await storage.count_logs(two.id) == 3
    with pytest.raises(UserNotFound):
        await purger.run(username="no_such_user_here")


async def test_only_one_process_purges_at_a_time(storage, make_user, make_config):
    account = await make_user()
    await store(storage, account, 5, 40 * DAY)
    other = make_storage(make_config())  # another process's storage: its own connections
    await other.open()
    try:
        purger = Purger(storage, Policy(max_age=30 * DAY), batch=100)
        async with other.purge_lock() as held:
            assert held
            assert await purger.run(username=account.name) is None  # skipped: busy
            started = time.monotonic()
            assert await purger.run(username=account.name, wait=0.3) is None
            assert time.monotonic() - started >= 0.25  # it waited for the lock
            assert await storage.count_logs(account.id) == 5
        report = await purger.run(username=account.name)  # released: this one purges
        assert report.deleted == {account.name: 5}
    finally:
        await other.close()


async def test_the_background_purge_runs_while_the_app_serves(make_app):
    async with make_app(retention_days=30, purge_interval=0.2, purge_batch=2) as app:
        from bot_logging_server.storage import get_storage

        storage = get_storage(app.app)
        account = await new_account(storage)
        await store(storage, account, 5, 31 * DAY, "old")
        await store(storage, account, 2, timedelta(0), "new")
        deadline = time.monotonic() + 20
        while await storage.count_logs(account.id) > 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await messages(storage, account) == ["new 0", "new 1"]


async def test_a_stopping_server_ends_its_purge_after_the_current_batch(make_app, make_config):
    async with make_app(retention_days=30, purge_interval=0.1, purge_batch=1) as app:
        from bot_logging_server.storage import get_storage

        storage = get_storage(app.app)
        account = await new_account(storage)
        await store(storage, account, 400, 31 * DAY)
        deadline = time.monotonic() + 20
        while await storage.count_logs(account.id) == 400 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stopping = time.monotonic()
    stopped_in = time.monotonic() - stopping
    other = make_storage(make_config())
    await other.open()
    try:
        left = await other.count_logs(account.id)
    finally:
        await other.close()
    assert 0 < left < 400  # stopped mid-pass, between batches
    assert stopped_in < 2.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def _ingest_latencies(client, account, stop: asyncio.Event, minimum: int) -> list[float]:
    """Post 20-record batches, two at a time, until `stop` (and at least `minimum`)."""
    latencies: list[float] = []

    async def sender() -> None:
        while not stop.is_set() or len(latencies) < minimum:
            started = time.perf_counter()
            answer = await post_logs(client, account, client_body(account.name, 20))
            assert answer.status_code == 200
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(sender(), sender())
    return latencies


OLD_ROWS = 30_000


async def test_ingest_stays_fast_while_many_old_rows_are_purged(app, storage, backend):
    old, writer = await new_account(storage), await new_account(storage)
    await store(storage, old, OLD_ROWS, 60 * DAY)
    client = app.test_client()
    await post_logs(client, writer, client_body(writer.name, 20))  # the token's hash, once
    stop = asyncio.Event()
    stop.set()
    baseline = await _ingest_latencies(client, writer, stop, 60)
    stop.clear()
    purger = Purger(storage, Policy(max_age=30 * DAY), batch=1000)
    ingest = asyncio.ensure_future(_ingest_latencies(client, writer, stop, 60))
    started = time.perf_counter()
    report = await purger.run(username=old.name)
    purge_seconds = time.perf_counter() - started
    stop.set()
    during = await ingest
    assert report.deleted == {old.name: OLD_ROWS}
    assert await storage.count_logs(old.id) == 0
    assert await storage.count_logs(writer.id) == 20 * (1 + len(baseline) + len(during))
    p99_before, p99_during = percentile(baseline, 0.99), percentile(during, 0.99)
    print(
        f"\n{backend}: purged {OLD_ROWS} rows in {purge_seconds:.2f} s "
        f"({report.transactions} transactions, longest {report.longest_transaction * 1000:.0f} ms);"
        f" ingest p50/p99/max before {percentile(baseline, 0.5) * 1000:.0f}/"
        f"{p99_before * 1000:.0f}/{max(baseline) * 1000:.0f} ms, during "
        f"{percentile(during, 0.5) * 1000:.0f}/{p99_during * 1000:.0f}/"
        f"{max(during) * 1000:.0f} ms over {len(during)} batches"
    )
    # The work is cut into many short transactions (one per 1,000 rows, none lasting long),
    # and no ingest waits much longer than without a purge. Not a share of the purge's busy
    # time: in a 0.3-1.3 s purge, one stall of a shared machine (69 ms, 152 ms seen in CI)
    # is a fifth of it.
    assert report.transactions >= OLD_ROWS // 1000
    assert report.longest_transaction < 0.5
    assert max(during) < max(0.75, 3 * max(baseline))


# -- the command line ---------------------------------------------------------------------


@pytest.fixture
def cli(database_url):
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, ["--database-url", database_url, *args], catch_exceptions=False)

    return run


def _seed(database_url: str, old: int, new: int) -> str:
    async def work() -> str:
        storage = make_storage(build_config({"database_url": database_url}, environ={}))
        await storage.open()
        try:
            account = await new_account(storage)
            await store(storage, account, old, 40 * DAY, "old")
            await store(storage, account, new, timedelta(0), "new")
            return account.name
        finally:
            await storage.close()

    return asyncio.run(work())


def _count(database_url: str, name: str) -> int:
    async def work() -> int:
        storage = make_storage(build_config({"database_url": database_url}, environ={}))
        await storage.open()
        try:
            user = await storage.get_user(name)
            return await storage.count_logs(user.id)
        finally:
            await storage.close()

    return asyncio.run(work())


def test_purge_by_hand_prints_counts_and_dry_run_deletes_nothing(cli, database_url):
    name = _seed(database_url, old=7, new=2)
    dry = cli("purge", "--older-than", "30d", "--user", name, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"{name}: would delete 7 records" in dry.output
    assert _count(database_url, name) == 9
    done = cli("purge", "--older-than", "30d", "--user", name)
    assert done.exit_code == 0, done.output
    assert f"{name}: deleted 7 records" in done.output
    assert "total: deleted 7 records" in done.output
    assert _count(database_url, name) == 2


def test_set_retention_then_purge_applies_the_users_rule(cli, database_url):
    name = _seed(database_url, old=3, new=5)
    shown = cli("users", "set-retention", name, "--max-rows", "4")
    assert shown.exit_code == 0, shown.output
    assert f"retention of {name!r}: max rows 4" in shown.output
    again = cli("--retention-days", "30", "users", "set-retention", name)  # shows it
    assert "max age 30d, max rows 4" in again.output
    assert "own values: max age default, max rows 4" in again.output
    done = cli("purge", "--user", name)
    assert f"{name}: deleted 4 records" in done.output
    assert _count(database_url, name) == 4
    cleared = cli("users", "set-retention", name, "--max-rows", "default")
    assert f"retention of {name!r}: keep everything" in cleared.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("users", "set-retention", "{name}", "--max-age", "30"), "not a duration"),
        (("users", "set-retention", "{name}", "--max-rows", "many"), "--max-rows"),
        (("purge", "--older-than", "soon"), "not a duration"),
        (("purge", "--older-than", "0"), "longer than 0"),
        (("users", "set-retention", "nobody_at_all"), "no user named"),
    ],
    ids=["age-no-unit", "rows-not-a-number", "older-than-garbage", "older-than-zero", "no-user"],
)
def test_bad_retention_options_are_refused(cli, database_url, args, message):
    name = _seed(database_url, old=1, new=0)
    result = cli(*(arg.format(name=name) for arg in args))
    assert result.exit_code != 0
    assert message in result.output
    assert _count(database_url, name) == 1
