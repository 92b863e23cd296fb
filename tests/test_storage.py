"""The storage layer on both backends: schema, migrations, users, atomic batches."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import datetime

import pymysql
import pytest
from support import new_account, recent_logs, write_locked

from bot_logging_server.config import DatabaseURL, build_config
from bot_logging_server.storage import (
    LogRow,
    Storage,
    StorageError,
    StorageUnavailable,
    UserExists,
    UserNotFound,
    get_storage,
    make_storage,
)
from bot_logging_server.storage.mysql import MIGRATIONS as MYSQL_MIGRATIONS
from bot_logging_server.storage.sqlite import MIGRATIONS as SQLITE_MIGRATIONS

CONTRACT_COLUMNS = {
    "id",
    "user_id",
    "pid",
    "p_name",
    "p_description",
    "level",
    "msg",
    "truncated",
    "msg_length",
    "event_at",
    "post_time",
    "received_at",
}


def _row(**overrides):
    values = dict(
        pid=1,
        p_name="p",
        p_description="d",
        level=40,
        msg="m",
        truncated=False,
        msg_length=1,
        event_at=datetime(2020, 5, 5, 12, 22, 22, 123456),
        post_time=datetime(2020, 5, 5, 12, 22, 23),
    )
    values.update(overrides)
    return LogRow(**values)


async def _schema_version(storage: Storage) -> int:
    rows = await storage.db.fetch("SELECT COALESCE(MAX(version), 0) FROM schema_version")
    return int(rows[0][0])


async def test_schema_is_at_the_latest_version_and_reopening_migrates_nothing(storage, make_config):
    latest = {"mysql": MYSQL_MIGRATIONS, "sqlite": SQLITE_MIGRATIONS}[storage.name][-1].version
    assert await _schema_version(storage) == latest
    again = make_storage(make_config())
    await again.open()  # a second process starting on the same database
    try:
        assert await _schema_version(again) == latest
    finally:
        await again.close()


async def test_both_backends_define_the_same_migrations():
    assert [(m.version, m.name) for m in MYSQL_MIGRATIONS] == [
        (m.version, m.name) for m in SQLITE_MIGRATIONS
    ]


async def test_user_logs_has_the_contracts_columns(storage, database_url):
    if storage.name == "sqlite":
        import sqlite3

        path = DatabaseURL.parse(database_url).path
        with sqlite3.connect(path) as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(user_logs)")}
    else:
        url = DatabaseURL.parse(database_url)
        conn = pymysql.connect(
            host=url.host, port=url.port, user=url.user, password=url.password, database=url.name
        )
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, DATETIME_PRECISION "
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = 'user_logs'",
                (url.name,),
            )
            info = {r[0]: r[1:] for r in cur.fetchall()}
        conn.close()
        columns = set(info)
        assert info["msg"][:2] == ("longtext", "utf8mb4")
        assert info["event_at"] == ("datetime", None, 6)
        assert info["received_at"] == ("datetime", None, 6)
    assert columns >= CONTRACT_COLUMNS


async def test_rows_round_trip_with_microseconds_and_4_byte_characters(storage, user):
    rows = [_row(msg="😀 naïve"), _row(msg="x" * 70_000, truncated=True, msg_length=80_000)]
    received = datetime(2026, 1, 2, 3, 4, 5, 678901)
    assert await storage.insert_logs(user.id, rows, received) == 2
    cut, emoji = await recent_logs(storage, user.id)
    assert emoji.msg == "😀 naïve"
    assert emoji.event_at == datetime(2020, 5, 5, 12, 22, 22, 123456)
    assert emoji.received_at == received
    assert (cut.truncated, cut.msg_length, len(cut.msg)) == (True, 80_000, 70_000)


async def test_a_failing_batch_writes_nothing(storage, user):
    rows = [_row(), _row(), _row(pid=2**64)]  # the last row cannot be stored
    with pytest.raises(StorageError) as refused:
        await storage.insert_logs(user.id, rows, datetime(2026, 1, 1))
    assert not isinstance(refused.value, StorageUnavailable)  # a refused row is no outage
    assert await storage.count_logs(user.id) == 0
    assert await storage.insert_logs(user.id, [_row()], datetime(2026, 1, 1)) == 1


async def test_user_names_are_unique_and_exact(storage):
    name = f"Uniq_{uuid.uuid4().hex[:6]}"
    await storage.create_user(name, "hash", None)
    with pytest.raises(UserExists):
        await storage.create_user(name, "hash2", None)
    assert await storage.get_user(name.lower()) is None
    assert (await storage.get_user(name)).token_hash == "hash"


async def test_changing_an_unknown_user_raises_user_not_found(storage):
    for change in (
        storage.set_disabled("ghost", True),
        storage.set_token_hash("ghost", "h"),
        storage.remove_user("ghost"),
    ):
        with pytest.raises(UserNotFound):
            await change


async def test_removing_a_user_removes_only_their_logs(storage, make_user):
    alice, bob = await make_user(), await make_user()
    await storage.insert_logs(alice.id, [_row()] * 3, datetime(2026, 1, 1))
    await storage.insert_logs(bob.id, [_row()] * 2, datetime(2026, 1, 1))
    assert await storage.remove_user(alice.name) == 3
    assert await storage.count_logs(alice.id) == 0
    assert await storage.count_logs(bob.id) == 2


async def test_mysql_creates_a_missing_database_with_utf8mb4(mysql_server):
    name = f"blst_new_{uuid.uuid4().hex[:8]}"
    pw = f":{mysql_server.password}" if mysql_server.password else ""
    url = f"mysql://{mysql_server.user}{pw}@{mysql_server.host}:{mysql_server.port}/{name}"
    storage = make_storage(build_config({"database_url": url}, environ={}))
    await storage.open()
    try:
        await storage.ping()
    finally:
        await storage.close()
        conn = pymysql.connect(
            host=mysql_server.host,
            port=mysql_server.port,
            user=mysql_server.user,
            password=mysql_server.password,
        )
        with conn.cursor() as cur:
            cur.execute(
                "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "
                "WHERE SCHEMA_NAME = %s",
                (name,),
            )
            charset = cur.fetchone()
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()
    assert charset == ("utf8mb4",)


async def test_a_foreign_users_table_stops_start_up_with_a_clear_error(fresh_database_url):
    """A table of the same name made by something else (e.g. the original server)."""
    url = DatabaseURL.parse(fresh_database_url)
    foreign = "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT, user_token TEXT)"
    if url.scheme == "sqlite":
        import sqlite3

        with contextlib.closing(sqlite3.connect(url.path)) as db:
            db.execute(foreign)
    else:
        conn = pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password)
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{url.name}`")
            cur.execute(f"CREATE TABLE `{url.name}`.users {foreign[len('CREATE TABLE users') :]}")
        conn.close()
    storage = make_storage(build_config({"database_url": fresh_database_url}, environ={}))
    with pytest.raises(StorageError) as caught:
        await storage.open()
    assert "table users lacks created_at, disabled, tel_id, token_hash" in str(caught.value)
    await storage.close()


@pytest.mark.parametrize("fresh_database_url", ["mysql"], indirect=True)
async def test_a_mysql_migration_step_interrupted_midway_is_run_again(fresh_database_url):
    """On a cluster, another node's schema statement can abort this node's: the pass reruns.

    Here the abort is a ``KILL QUERY`` of a step's ALTER while it waits for a table lock
    that another session holds (MySQL error 1317, as a Galera node reports it).
    """
    config = build_config({"database_url": fresh_database_url}, environ={})
    url = DatabaseURL.parse(fresh_database_url)
    step = next(m for m in MYSQL_MIGRATIONS if "ix_user_logs_user_event_id" in m.statements[0])
    first = make_storage(config)
    await first.open()
    await first.close()

    def connect() -> pymysql.connections.Connection:
        return pymysql.connect(
            host=url.host, port=url.port, user=url.user, password=url.password, database=url.name
        )

    admin, holder = connect(), connect()
    try:
        with admin.cursor() as cur:  # undo that step (and forget the ones after it)
            cur.execute("ALTER TABLE user_logs DROP INDEX ix_user_logs_user_event_id")
            cur.execute("DELETE FROM schema_version WHERE version >= %s", (step.version,))
        admin.commit()
        with holder.cursor() as cur:  # a transaction holding user_logs: the ALTER waits
            cur.execute("SELECT COUNT(*) FROM user_logs")

        def kill_the_waiting_alter() -> None:
            for _ in range(200):
                with admin.cursor() as cur:
                    cur.execute(
                        "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s "
                        "AND INFO LIKE 'ALTER TABLE user_logs%%' AND STATE LIKE '%%metadata%%'",
                        (url.name,),
                    )
                    found = cur.fetchone()
                    if found:
                        cur.execute(f"KILL QUERY {int(found[0])}")
                        return
                time.sleep(0.05)
            raise AssertionError("the ALTER never waited for the table")

        second = make_storage(config)
        opening = asyncio.create_task(second.open())
        await asyncio.to_thread(kill_the_waiting_alter)
        holder.rollback()  # the lock is free for the pass run again
        try:
            await asyncio.wait_for(opening, 30)
            assert await _schema_version(second) == MYSQL_MIGRATIONS[-1].version
        finally:
            await second.close()
        with admin.cursor() as cur:
            cur.execute("SHOW INDEX FROM user_logs WHERE Key_name = 'ix_user_logs_user_event_id'")
            assert cur.fetchall()
    finally:
        admin.close()
        holder.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_write_cancelled_while_waiting_for_the_lock_leaves_no_transaction_open(
    storage, database_url, user
):
    """A client that disconnects while its write waits for SQLite's lock (review finding)."""
    import asyncio
    import sqlite3

    path = DatabaseURL.parse(database_url).path
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # Another process takes the write lock: waited for off the event loop, so that a write
    # of the server's own in progress (it needs the loop to commit) can end first.
    await asyncio.to_thread(other.execute, "BEGIN IMMEDIATE")
    try:
        waiting = asyncio.create_task(storage.set_disabled(user.name, True))
        await asyncio.sleep(0.3)  # BEGIN IMMEDIATE is now waiting in aiosqlite's thread
        waiting.cancel()
        await asyncio.sleep(0.1)
    finally:
        other.execute("COMMIT")  # the lock is free: the pending BEGIN can now run
        other.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # The next writes work, and the cancelled change did not happen.
    assert await storage.insert_logs(user.id, [_row()], datetime(2026, 1, 1)) == 1
    await storage.set_token_hash(user.name, "h2")
    assert (await storage.get_user(user.name)).disabled is False


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda s, u: s.insert_logs(u.id, [_row(), _row(pid=2**64)], datetime(2026, 1, 1)),
            id="huge-integer-in-a-group-commit",
        ),
        pytest.param(
            lambda s, u: s.create_user(f"big_{uuid.uuid4().hex[:6]}", "hash", 2**64),
            id="huge-integer-in-a-transaction",
        ),
        pytest.param(lambda s, u: s.get_user("a\ud800"), id="lone-surrogate-in-a-read"),
    ],
)
async def test_a_value_the_driver_refuses_leaves_storage_as_a_storage_error(storage, user, call):
    # SQLite's driver raises OverflowError / UnicodeEncodeError for these, pymysql raises
    # DataError / UnicodeEncodeError: none of them may reach the caller as such.
    with pytest.raises(StorageError) as caught:
        await call(storage, user)
    assert type(caught.value) is StorageError  # a retry would not help: 500, not 503
    assert "INSERT" not in str(caught.value) and "SELECT" not in str(caught.value)
    assert await storage.count_logs(user.id) == 0
    assert await storage.insert_logs(user.id, [_row()], datetime(2026, 1, 1)) == 1


async def test_an_upsert_inserts_a_new_key_and_updates_the_row_of_an_existing_one(storage):
    table = f"probe_{uuid.uuid4().hex[:8]}"
    db = storage.db
    async with db.transaction() as tx:
        await tx.execute(
            f"CREATE TABLE {table} (k VARCHAR(16) NOT NULL PRIMARY KEY, v INT NOT NULL, "
            "n INT NOT NULL)"
        )
    try:
        upsert = db.dialect.upsert(table, ("k", "v", "n"), ("k",))
        for args in [("a", 1, 10), ("b", 2, 20), ("a", 3, 30)]:
            async with db.transaction() as tx:
                await tx.execute(upsert, args)
        assert await db.fetch(f"SELECT k, v, n FROM {table} ORDER BY k") == [
            ("a", 3, 30),
            ("b", 2, 20),
        ]
    finally:
        async with db.transaction() as tx:
            await tx.execute(f"DROP TABLE {table}")


def _counting_inserts(monkeypatch) -> list[bytes]:
    """The INSERT statements aiomysql cursors execute from now on (and still execute)."""
    import aiomysql

    inserts: list[bytes] = []
    execute = aiomysql.Cursor.execute

    async def counting(self, query, args=None):
        if isinstance(query, bytes) and query.startswith(b"INSERT INTO user_logs"):
            inserts.append(query)
        return await execute(self, query, args)

    monkeypatch.setattr(aiomysql.Cursor, "execute", counting)
    return inserts


@pytest.mark.parametrize("database_url", ["mysql"], indirect=True)
async def test_a_mysql_group_over_the_statement_size_is_split_and_stored_whole(
    storage, user, monkeypatch
):
    from bot_logging_server.storage import mysql_transaction

    monkeypatch.setattr(mysql_transaction, "_STATEMENT_BYTES", 4000)
    inserts = _counting_inserts(monkeypatch)
    rows = [_row(msg=f"message {i} " + "x" * 100) for i in range(100)]
    await storage.insert_logs(user.id, rows, datetime(2026, 1, 1))
    assert len(inserts) > 2
    assert all(len(statement) <= 4000 for statement in inserts)
    stored = await recent_logs(storage, user.id, 100)
    assert sorted(r.msg for r in stored) == sorted(r.msg for r in rows)


@pytest.mark.parametrize("database_url", ["mysql"], indirect=True)
async def test_a_failing_statement_of_a_split_mysql_group_stores_none_of_the_group(
    storage, user, monkeypatch
):
    from bot_logging_server.storage import mysql_transaction

    monkeypatch.setattr(mysql_transaction, "_STATEMENT_BYTES", 4000)
    inserts = _counting_inserts(monkeypatch)
    # The last row breaks the column's size (strict SQL mode), in the group's last statement.
    rows = [_row(msg=f"message {i} " + "x" * 100) for i in range(100)]
    rows.append(_row(p_name="p" * 300))
    with pytest.raises(StorageError):
        await storage.insert_logs(user.id, rows, datetime(2026, 1, 1))
    assert len(inserts) > 2  # the first statements went through before the failure
    assert await storage.count_logs(user.id) == 0  # the row count did not change


@pytest.mark.parametrize("database_url", ["mysql"], indirect=True)
async def test_a_mysql_group_commit_takes_three_round_trips(storage, user, monkeypatch):
    """The owners' check is one query; the INSERT and both counters' upserts go together in
    a second; the COMMIT alone in a third (each aiomysql ``execute`` is one round trip)."""
    import aiomysql

    sent: list[tuple[int, bytes]] = []
    execute = aiomysql.Cursor.execute

    async def recording(self, query, args=None):
        sent.append((id(self), query if isinstance(query, bytes) else query.encode()))
        return await execute(self, query, args)

    monkeypatch.setattr(aiomysql.Cursor, "execute", recording)
    await storage.insert_logs(user.id, [_row(msg=f"m{i}") for i in range(30)], datetime.now())
    (cursor,) = {c for c, text in sent if text.startswith(b"INSERT INTO user_logs")}
    trips = [text for c, text in sent if c == cursor]  # not the background jobs'
    assert len(trips) == 3, trips
    assert trips[0].startswith(b"SELECT id FROM users")
    statements = trips[1].split(b";")
    assert statements[0].startswith(b"INSERT INTO user_logs")
    assert [s.split(b" (")[0] for s in statements[1:]] == [
        b"INSERT INTO log_counts",
        b"INSERT INTO log_counts_hour",
    ]
    assert trips[2] == b"COMMIT"
    assert await storage.count_logs(user.id) == 30


@pytest.mark.parametrize("database_url", ["mysql"], indirect=True)
async def test_a_mysql_write_given_up_while_it_waits_for_a_lock_is_never_committed(
    make_app, database_url
):
    """The client's timeout closes the connection with the rows sent but no COMMIT: once the
    lock comes free the database rolls them back, so a 503 never hides a stored batch."""
    async with make_app(db_timeout=0.3) as app:
        storage = get_storage(app.app)
        account = await new_account(storage)
        with write_locked(database_url, "user_logs"), pytest.raises(StorageError):
            await storage.insert_logs(account.id, [_row(msg="given up")], datetime.now())
        await asyncio.sleep(1.0)  # the INSERT the database still held has run by now
        assert await storage.count_logs(account.id) == 0


@pytest.mark.parametrize("database_url", ["mysql"], indirect=True)
async def test_a_mysql_statement_sent_with_others_that_fails_rolls_back_the_whole_transaction(
    storage, user
):
    """Deferred statements go with the COMMIT; the second of three breaks a column (strict
    SQL mode), so the third and the COMMIT never run and the first is rolled back."""
    counter = ("user_id", "minute", "level", "writer", "n")
    with pytest.raises(StorageError):
        async with storage.db.transaction() as tx:
            await tx.insert_rows("log_counts", counter, [(user.id, "2026-01-01", 20, 1, 5)])
            await tx.defer("UPDATE users SET tel_id = ? WHERE id = ?", ("not a number", user.id))
            await tx.defer("UPDATE users SET disabled = 1 WHERE id = ?", (user.id,))
    found = await storage.db.fetch("SELECT COUNT(*) FROM log_counts WHERE user_id = ?", (user.id,))
    assert int(found[0][0]) == 0
    found = await storage.db.fetch("SELECT disabled FROM users WHERE id = ?", (user.id,))
    assert int(found[0][0]) == 0


@pytest.mark.parametrize("database_url", ["mysql"], indirect=True)
async def test_a_dropped_mysql_connection_wakes_a_request_waiting_for_the_pool(make_config):
    """aiomysql wakes waiters only when a live connection comes back; the backend wakes one
    itself (its private ``Pool._wakeup``, which requirements.txt pins aiomysql for)."""
    import asyncio
    import time

    storage = make_storage(make_config(write_pool_size=1, db_timeout=5))
    await storage.open()
    holding = asyncio.Event()

    async def fail_while_holding_the_only_connection():
        async with storage.db.transaction() as tx:
            holding.set()
            await asyncio.sleep(0.3)  # meanwhile the ping below waits for the pool
            await tx.execute("SELECT no_such_column FROM users")

    try:
        failing = asyncio.create_task(fail_while_holding_the_only_connection())
        await holding.wait()
        started = time.monotonic()
        await storage.ping()  # gets a fresh connection once the failed one is dropped
        assert time.monotonic() - started < 2  # not the 5 s pool timeout
        with pytest.raises(StorageError):
            await failing
    finally:
        await storage.close()
