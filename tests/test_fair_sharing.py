"""Reads never starve ingest, on both backends (README, "Limits, timeouts and failures").

Ingest and token checks have connections the read API never takes (MySQL: the write pool;
SQLite: a lookup connection beside the reader); each user may run only a few reads and tails
at once (429 past it); and a read past ``--db-timeout`` is stopped on the database itself.

The load test runs a real server process: 60 clients run the most expensive read there is (a
text searched anywhere, ``*word``, that matches nothing, a full page, so every one of the
user's rows is scanned), spread over 15 users so that the per-user limit refuses none of
them and every query reaches the database, while another user's client posts batches one
after another.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pymysql
import pytest
from support import (
    Account,
    ServerProcess,
    assert_error,
    batch_body,
    client_body,
    client_headers,
    http,
    new_account,
    post_logs,
    read_headers,
)

from bot_logging_server.accounts import create_user
from bot_logging_server.config import build_config
from bot_logging_server.readlimit import ReadLimiter, get_read_limiter, held_by
from bot_logging_server.storage import (
    LogRow,
    Storage,
    StorageUnavailable,
    get_storage,
    make_storage,
)

READERS = 60
READ_USERS = 15  # 4 readers each: the default --max-reads-per-user lets every one through
ROWS_PER_READ_USER = 12_000
HEAVY_READ = "/api/logs?q=*zzznomatch&limit=1000"
IDLE_SECONDS = 2.0
MEASURE_SECONDS = 8.0
P99_BOUND = 0.100


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


async def _seed(database_url: str) -> tuple[list[Account], Account]:
    """`READ_USERS` users with `ROWS_PER_READ_USER` rows each, and one user who ingests."""
    storage = make_storage(build_config({"database_url": database_url}, environ={}))
    await storage.open()
    try:
        users = []
        for _ in range(READ_USERS + 1):
            new = await create_user(storage, f"u_{uuid.uuid4().hex[:10]}")
            users.append(Account(new.user.username, new.token, new.user.id))
        readers, writer = users[:-1], users[-1]
        msg = "worker finished a job without incident, nothing to see here " * 2
        at = datetime(2026, 1, 1)
        rows = [LogRow(1, "seed", "seed", 30, f"{msg}{i}", False, 200, at, at) for i in range(2000)]
        first = readers[0].id
        for _ in range(ROWS_PER_READ_USER // len(rows)):
            await storage.insert_logs(first, rows, at)
        # The other readers get a copy of the first one's rows, made by the database.
        columns = (
            "pid, p_name, p_description, level, msg, truncated, msg_length, event_at, "
            "post_time, received_at"
        )
        for reader in readers[1:]:
            async with storage.db.transaction() as tx:
                await tx.execute(
                    f"INSERT INTO user_logs (user_id, {columns}) "
                    f"SELECT ?, {columns} FROM user_logs WHERE user_id = ?",
                    (reader.id, first),
                )
        return readers, writer
    finally:
        await storage.close()


class HeavyReaders:
    """`READERS` clients, each running `HEAVY_READ` again as soon as it is answered."""

    def __init__(self, port: int, users: list[Account]) -> None:
        self.port, self.users = port, users
        self.statuses: dict[int | str, int] = {}
        self.latencies: list[float] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> HeavyReaders:
        self._tasks = [
            asyncio.ensure_future(self._client(self.users[i % len(self.users)]))
            for i in range(READERS)
        ]
        return self

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _client(self, user: Account) -> None:
        headers = {"X-User": user.name, "X-User-Token": user.token}
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                reply = await http(self.port, "GET", HEAVY_READ, headers=headers, timeout=60)
                status: int | str = reply.status
            except (TimeoutError, OSError) as exc:
                status = type(exc).__name__
            self.latencies.append(time.perf_counter() - started)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 429:
                await asyncio.sleep(1)  # Retry-After


async def _probe_latencies(port: int, stop: asyncio.Event) -> list[float]:
    """Until `stop`: a request that needs no database (a 404) every 20 ms; the latency of
    each. What the machine and the server's event loop cost at the same moments."""
    latencies = []
    while not stop.is_set():
        started = time.perf_counter()
        reply = await http(port, "GET", "/no-such-route", timeout=60)
        latencies.append(time.perf_counter() - started)
        assert reply.status == 404, reply
        await asyncio.sleep(0.02)
    return latencies


async def _ingest_latencies(port: int, user: Account, seconds: float) -> list[float]:
    """Post 10-record batches one after another for `seconds`; the latency of each."""
    latencies = []
    deadline = time.monotonic() + seconds
    seq = 0
    while time.monotonic() < deadline:
        body = batch_body(user.name, f"ingest-{seq}", 10)
        seq += 1
        started = time.perf_counter()
        reply = await http(
            port, "POST", "//send_logs", body, client_headers(user.token), timeout=60
        )
        latencies.append(time.perf_counter() - started)
        assert reply.status == 200, reply
    return latencies


def _bound(idle: list[float], no_database: list[float]) -> float:
    """The load test's bound on ingest's p99: 100 ms over twice the machine's own noise."""
    return P99_BOUND + 2 * max(_percentile(idle, 0.99), _percentile(no_database, 0.99))


async def _measure_busy(port: int, writer: Account) -> tuple[list[float], list[float]]:
    """Ingest latencies for `MEASURE_SECONDS`, and those of a no-database probe meanwhile."""
    stop = asyncio.Event()
    probe = asyncio.ensure_future(_probe_latencies(port, stop))
    try:
        busy = await _ingest_latencies(port, writer, MEASURE_SECONDS)
    finally:
        stop.set()
        noise = await probe
    return busy, noise


@pytest.fixture
def load_database_url(fresh_database_url: str) -> Iterator[str]:
    """`fresh_database_url`, with SQLite's file in memory (tmpfs) when there is one: the load
    test measures contention, not the fsync latency of the machine's disk."""
    shm = Path("/dev/shm")
    if not fresh_database_url.startswith("sqlite:") or not shm.is_dir():
        yield fresh_database_url
        return
    path = shm / f"blst-{uuid.uuid4().hex[:10]}.db"
    try:
        yield f"sqlite:///{path}"
    finally:
        for leftover in shm.glob(f"{path.name}*"):
            leftover.unlink()


@pytest.mark.slow
async def test_ingest_p99_stays_under_100_ms_while_60_heavy_readers_run(
    load_database_url, tmp_path
):
    """The bound is 100 ms on top of twice this machine's own noise: on two cores shared
    with other work, stalls alone sometimes pass 100 ms, and they are not what is measured.
    The noise is the larger of the p99 of a request that needs no database, sent at the same
    moments (measured: 10 to 230 ms from one run to the next), and the p99 of the same ingest
    just before, with nobody reading (it includes the commit's fsync: 10 to 430 ms on
    MariaDB here). Twice, because the readers rightly keep one of the two cores busy (one
    read at a time on the database), which leaves everything else half the CPU it had while
    the noise was measured. Before the fix ingest waited seconds, and failed by far."""
    readers_users, writer = await _seed(load_database_url)
    # --auth-cache-seconds 0: every request, ingest included, reads its user again, so each
    # ingest needs the database twice (token check, commit) while the readers hold it.
    # --pool-size 1 (MySQL): reads run one at a time on the database, as on SQLite's one
    # reader. A full scan takes a whole core: --pool-size is how an operator bounds the
    # database CPU that reads may take (docs/OPERATIONS.md); with two on this two-core
    # machine, MariaDB shares both cores with the inserts and their p50 triples.
    with ServerProcess(
        load_database_url,
        tmp_path,
        *("--auth-cache-seconds", "0", "--db-timeout", "5", "--pool-size", "1"),
    ) as server:
        await server.wait_ready()
        idle = await _ingest_latencies(server.port, writer, IDLE_SECONDS)
        readers = HeavyReaders(server.port, readers_users).start()
        try:
            await asyncio.sleep(1.0)  # every reader has a query running or queued
            # A second window only when the first one misses the bound: a stall of the
            # machine must not fail the test, while starvation (seconds) fails both.
            for windows in (1, 2):  # noqa: B007 (reported below)
                busy, noise = await _measure_busy(server.port, writer)
                if _percentile(busy, 0.99) < _bound(idle, noise):
                    break
        finally:
            await readers.stop()
    idle_p99, busy_p99 = _percentile(idle, 0.99), _percentile(busy, 0.99)
    bound = _bound(idle, noise)
    figures = {
        "ingest_idle_p50_ms": round(_percentile(idle, 0.5) * 1000, 1),
        "ingest_idle_p99_ms": round(idle_p99 * 1000, 1),
        "ingest_busy_p50_ms": round(_percentile(busy, 0.5) * 1000, 1),
        "ingest_busy_p99_ms": round(busy_p99 * 1000, 1),
        "ingest_requests": len(busy),
        "windows": windows,
        "bound_ms": round(bound * 1000, 1),
        "no_database_request_p99_ms": round(_percentile(noise, 0.99) * 1000, 1),
        "reads_answered": readers.statuses,
        "read_p50_ms": round(_percentile(readers.latencies, 0.5) * 1000),
    }
    print(f"\nfair sharing: {figures}")
    assert busy_p99 < bound, figures
    # And the readers were heavy: the read side was saturated (a read waited many times the
    # length of an ingest), and none was refused for being over the per-user limit.
    assert _percentile(readers.latencies, 0.5) > 10 * _percentile(busy, 0.5), figures
    assert 429 not in readers.statuses, figures


def _nice_values() -> dict[int, int]:
    """Thread id -> nice value, for every thread of this process (Linux)."""
    values = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # a thread (of another test's pool) that ended while being listed
        values[int(task.name)] = int(fields[16])  # field 19 of stat: nice
    return values


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux only")
async def test_sqlite_reads_run_at_a_lower_cpu_priority_than_ingest(make_config):
    before = _nice_values()
    storage = make_storage(make_config())
    await storage.open()
    try:
        main = before[threading.get_native_id()]
        added = {tid: nice for tid, nice in _nice_values().items() if tid not in before}
        # Three connection threads: the writer and the lookups as the process, the reader
        # 10 lower.
        assert sorted(added.values()) == [main, main, main + 10], added
    finally:
        await storage.close()


async def test_a_token_check_never_waits_behind_a_running_read(make_config, database_url):
    # One read connection (MySQL --pool-size 1; SQLite has one reader), held by a read that
    # runs for seconds: the token check's lookup must not queue behind it.
    storage = make_storage(make_config(pool_size=1, db_timeout=3))
    await storage.open()
    marker = f"blst_{uuid.uuid4().hex[:8]}"
    try:
        new = await create_user(storage, f"u_{uuid.uuid4().hex[:10]}")
        heavy = asyncio.ensure_future(storage.db.fetch(_heavy_query(storage, marker)))
        try:
            await asyncio.sleep(0.3)  # the heavy read is running
            assert not heavy.done()
            started = time.monotonic()
            assert (await asyncio.wait_for(storage.get_user(new.user.username), 5)) is not None
            assert time.monotonic() - started < 0.5
        finally:
            with contextlib.suppress(StorageUnavailable, TimeoutError):
                await asyncio.wait_for(heavy, 10)
    finally:
        if storage.name == "mysql":  # never leave it running, whatever happened
            await asyncio.to_thread(_kill, database_url, marker)
        await storage.close()


def _heavy_query(storage: Storage, marker: str = "blst_heavy") -> str:
    """A read that keeps the database busy for many seconds (SQLite: about 20, MariaDB:
    minutes, killed at the end of the test), whose text holds `marker`."""
    if storage.name == "mysql":
        return f"SELECT BENCHMARK(5000000000, MD5('{marker}'))"
    return (
        f"WITH RECURSIVE {marker}(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM {marker} "
        f"WHERE n < 100000000) SELECT COUNT(*) FROM {marker}"
    )


def _running_queries(database_url: str, marker: str) -> list[Any]:
    """MariaDB's threads running a statement that holds `marker` (not this query)."""
    parts = urlsplit(database_url)
    conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user="root")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT ID, TIME FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' "
                "AND INFO LIKE %s AND ID <> CONNECTION_ID()",
                (f"%MD5('{marker}')%",),
            )
            return list(cur.fetchall())
    finally:
        conn.close()


def _kill(database_url: str, marker: str) -> None:
    parts = urlsplit(database_url)
    conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user="root")
    try:
        with conn.cursor() as cur:
            for ident, _ in _running_queries(database_url, marker):
                with contextlib.suppress(pymysql.err.OperationalError):
                    cur.execute(f"KILL QUERY {int(ident)}")
    finally:
        conn.close()


async def test_a_read_past_the_timeout_is_stopped_on_the_database(make_config, database_url):
    storage = make_storage(make_config(pool_size=1, db_timeout=1))
    await storage.open()
    marker = f"blst_{uuid.uuid4().hex[:8]}"
    try:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(storage.db.fetch(_heavy_query(storage, marker)), 5)
        assert time.monotonic() - started < 2.5
        if storage.name == "mysql":
            # Within a second the database has stopped it: no thread still runs it.
            deadline = time.monotonic() + 1.5
            while running := await asyncio.to_thread(_running_queries, database_url, marker):
                assert time.monotonic() < deadline, f"still running on MariaDB: {running}"
                await asyncio.sleep(0.1)
        # The read connection is free again at once: the next read does not wait for it.
        started = time.monotonic()
        assert await asyncio.wait_for(storage.db.fetch("SELECT 1"), 5) == [(1,)]
        assert time.monotonic() - started < 1.0
    finally:
        if storage.name == "mysql":
            await asyncio.to_thread(_kill, database_url, marker)
        await storage.close()


@contextlib.asynccontextmanager
async def tail(client: Any, account: Any) -> AsyncIterator[None]:
    """``/api/tail`` held open as `account` (connected) for the block, then closed."""
    async with asyncio.timeout(20):
        connection = client.request("/api/tail", headers=read_headers(account))
        async with connection:
            await connection.send_complete()
            received = b""
            while b": connected" not in received:
                received += await connection.receive()
            yield
            await connection.disconnect()


async def test_reads_past_the_per_user_limit_are_429_with_retry_after(make_app):
    async with make_app(max_reads_per_user=2, max_tails_per_user=1) as app:
        storage = get_storage(app.app)
        limiter = get_read_limiter(app.app)
        client = app.test_client()
        alice, bob = await new_account(storage), await new_account(storage)
        assert (await post_logs(client, alice, client_body(alice.name, 3))).status_code == 200
        # Two reads of alice's in progress (say, two exports still streaming): a third is
        # refused before any database work, whatever the endpoint.
        held = [limiter.take("reads", alice.id) for _ in range(2)]
        for path in ("/api/logs", "/api/stats", "/api/logs/export"):
            refused = await client.get(path, headers=read_headers(alice))
            body = await assert_error(refused, 429, "TooManyRequests")
            assert refused.headers["Retry-After"] == "1"
            assert body["detail"] == "too many reads at once for this user (at most 2)"
        # Another user is not affected.
        assert (await client.get("/api/logs", headers=read_headers(bob))).status_code == 200
        held[0].release()
        for path in ("/api/logs", "/api/stats", "/api/logs/export"):
            assert (await client.get(path, headers=read_headers(alice))).status_code == 200, path
        held[1].release()
        # Every read gave its slot back, the export at the end of its stream.
        assert limiter.in_use("reads", alice.id) == 0
        # Tails have a limit of their own, held for as long as the stream is open.
        async with tail(client, alice):
            assert limiter.in_use("tails", alice.id) == 1
            refused = await client.get("/api/tail", headers=read_headers(alice))
            body = await assert_error(refused, 429, "TooManyRequests")
            assert refused.headers["Retry-After"] == "1"
            assert body["detail"] == "too many live tails open for this user (at most 1)"
            assert (await client.get("/api/logs", headers=read_headers(alice))).status_code == 200
        deadline = time.monotonic() + 5
        while limiter.in_use("tails", alice.id):
            assert time.monotonic() < deadline, "the closed tail kept its slot"
            await asyncio.sleep(0.05)
        async with tail(client, alice):
            pass


async def test_a_stream_never_started_gives_its_slot_back():
    limiter = ReadLimiter(reads_per_user=1, tails_per_user=1)

    async def body():
        yield b"never sent"

    stream = held_by(body(), limiter.take("reads", 7))
    assert limiter.in_use("reads", 7) == 1
    del stream  # the response was dropped before its body was started
    gc.collect()
    assert limiter.in_use("reads", 7) == 0
