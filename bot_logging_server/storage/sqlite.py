"""Embedded SQLite through aiosqlite (the default, needing nothing installed): its SQL dialect
and its two connections.

Both connections are opened at start-up, in WAL mode with ``synchronous=FULL`` (a commit is
on disk before the server answers 200): one for writes, used under an asyncio lock so a
transaction's statements never interleave with another's, and one for reads, which WAL lets
run beside a write. aiosqlite runs each call in its own thread, so nothing blocks the event
loop. Times are stored as text ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC), which sorts.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import aiosqlite

from bot_logging_server.storage.base import (
    Database,
    Dialect,
    DuplicateKey,
    Executed,
    Keep,
    StorageError,
    StorageUnavailable,
    Transaction,
    time_text,
    utc_now,
)
from bot_logging_server.storage.migrations import (
    REQUIRED_COLUMNS,
    SCHEMA_VERSION_TABLE,
    check_columns,
    for_backend,
)

__all__ = ["MIGRATIONS", "SQLiteDatabase", "SQLiteDialect"]

MIGRATIONS = for_backend("sqlite")

#: Rows per multi-row INSERT when a group is large: one prepared statement of this many
#: VALUES tuples runs about twice as fast per row as ``executemany`` of a one-row INSERT.
_CHUNK_ROWS = 64
_BUSY_TIMEOUT_MS = 10_000
# Bucket -> (characters of "YYYY-MM-DD HH:MM:SS" kept, what completes the start time).
_BUCKET_PREFIX = {"minute": (16, ":00"), "hour": (13, ":00:00"), "day": (10, " 00:00:00")}
_UNIQUE_FAILED = {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}


class SQLiteDialect(Dialect):
    """SQLite SQL: ``?`` placeholders, times as sortable text, a registered case fold."""

    name = "sqlite"

    def decode_time(self, value: Any) -> datetime:
        """Stored text back to a datetime."""
        return datetime.fromisoformat(value)

    def contains(self, column: str, text: str) -> tuple[str, object]:
        """``instr`` on Python's casefold (registered as ``blst_fold`` on the read connection):
        SQLite's own LIKE and lower() fold ASCII only, and q must fold every script."""
        return f"instr(blst_fold({column}), ?) > 0", text.casefold()

    def bucket(self, column: str, width: str) -> tuple[str, Callable[[Any], datetime]]:
        """A prefix of the stored time text (it sorts and cuts cleanly)."""
        chars, suffix = _BUCKET_PREFIX[width]
        return f"substr({column}, 1, {chars})", lambda value: datetime.fromisoformat(value + suffix)

    def on_conflict(self, keys: Sequence[str]) -> str:
        """``ON CONFLICT (keys) DO UPDATE SET``."""
        return f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET"

    def new_value(self, column: str) -> str:
        """``excluded.column``."""
        return f"excluded.{column}"


@functools.lru_cache(maxsize=64)
def _insert(table: str, columns: tuple[str, ...], rows: int) -> str:
    """``INSERT INTO table (columns) VALUES (?, ...)``, with `rows` VALUES tuples."""
    values = "(" + ", ".join(["?"] * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([values] * rows)


def _fold(text: str | None) -> str | None:
    return None if text is None else text.casefold()


async def _to_the_end(statement: Awaitable[object]) -> None:
    """Await `statement` to its end even when the caller is cancelled meanwhile.

    aiosqlite runs the statement in its own thread whatever happens to the awaiting task; a
    cancelled await would leave us not knowing whether BEGIN or COMMIT ran. The cancellation
    is raised once the statement has finished.
    """
    task = asyncio.ensure_future(statement)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


def _translate(exc: BaseException) -> StorageError:
    """Map a sqlite3 or value error to ours: a locked or unopenable file is worth a retry."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        if "locked" in text or "busy" in text or "unable to open" in text:
            return StorageUnavailable(f"database unavailable: {exc}")
    if isinstance(exc, sqlite3.IntegrityError) and exc.sqlite_errorname in _UNIQUE_FAILED:
        return DuplicateKey(f"duplicate key ({exc.sqlite_errorname})")
    return StorageError(f"database error: {type(exc).__name__}")


class _SQLiteTransaction(Transaction):
    """Statements on the write connection inside a `SQLiteDatabase.transaction`."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, args: Sequence = ()) -> Executed:
        """Run one statement."""
        cur = await self._conn.execute(sql, args)
        return Executed(cur.rowcount, cur.lastrowid)

    async def fetch(self, sql: str, args: Sequence = ()) -> list[Sequence]:
        """Run one query and return every row."""
        async with self._conn.execute(sql, args) as cur:
            return list(await cur.fetchall())


class SQLiteDatabase(Database):
    """One SQLite file: a write connection and a read connection."""

    dialect = SQLiteDialect()
    # One writer: while a transaction commits, the next requests gather into one group.
    writers = 1
    # SQLite's default SQLITE_MAX_LENGTH: no string or BLOB may be longer.
    max_value_bytes = 1_000_000_000

    def __init__(self, path: str, timeout: float = _BUSY_TIMEOUT_MS / 1000) -> None:
        """Remember the file; nothing is opened before `open`.

        `timeout` is how long, in seconds, a write waits for a lock held by another process
        before raising `StorageUnavailable` (answered 503).
        """
        self._path = path
        self._busy_timeout_ms = max(1, int(timeout * 1000))
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        conn = await aiosqlite.connect(self._path, isolation_level=None)
        await conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms:d}")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = FULL")
        return conn

    async def open(self) -> None:
        """Open both connections (creating the file) and migrate."""
        try:
            self._writer = await self._connect()
            await self._migrate()
            self._reader = await self._connect()
            await self._reader.create_function("blst_fold", 1, _fold, deterministic=True)
        except BaseException as exc:
            await self.close()
            if isinstance(exc, Exception) and not isinstance(exc, StorageError):
                raise _translate(exc) from exc
            raise

    async def _migrate(self) -> None:
        # One transaction: SQLite's DDL is transactional, and BEGIN IMMEDIATE is the lock.
        async with self._transaction() as conn:
            await conn.execute(SCHEMA_VERSION_TABLE["sqlite"])
            async with conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version") as c:
                (current,) = await c.fetchone()
            for migration in MIGRATIONS:
                if migration.version <= current:
                    continue
                for statement in migration.statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, time_text(utc_now())),
                )
            found: dict[str, set[str]] = {}
            for table in REQUIRED_COLUMNS:
                async with conn.execute(f"PRAGMA table_info({table})") as c:
                    found[table] = {row[1] for row in await c.fetchall()}
            check_columns(found)

    async def close(self) -> None:
        """Close both connections."""
        for attr in ("_reader", "_writer"):
            conn = getattr(self, attr)
            setattr(self, attr, None)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` on the write connection; COMMIT on success, else ROLLBACK.

        Any exception but our own leaves as a `StorageError`.
        """
        if self._writer is None:
            raise StorageUnavailable("storage is not open")
        async with self._write_lock:
            conn = self._writer
            try:
                await _to_the_end(conn.execute("BEGIN IMMEDIATE"))
                try:
                    yield conn
                except BaseException:
                    await _to_the_end(conn.execute("ROLLBACK"))
                    raise
                await _to_the_end(conn.execute("COMMIT"))
            except BaseException as exc:
                # A failed COMMIT, or the caller going away (a client that disconnected)
                # after BEGIN ran: undo it before the lock is released, or the next writer
                # finds a transaction open.
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        await _to_the_end(conn.execute("ROLLBACK"))
                if isinstance(exc, Exception) and not isinstance(exc, StorageError):
                    raise _translate(exc) from exc
                raise

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """``BEGIN IMMEDIATE`` on the write connection; COMMIT on success, else ROLLBACK."""
        async with self._transaction() as conn:
            yield _SQLiteTransaction(conn)

    async def fetch(self, sql: str, args: Sequence = ()) -> list[Sequence]:
        """Run one read on the read connection."""
        if self._reader is None:
            raise StorageUnavailable("storage is not open")
        try:
            async with self._reader.execute(sql, args) as cur:
                return list(await cur.fetchall())
        except Exception as exc:
            raise _translate(exc) from exc

    async def insert_many(
        self, table: str, columns: Sequence[str], rows: list[tuple], keep: Keep | None = None
    ) -> None:
        """One transaction of 64-row prepared INSERTs, the remainder by ``executemany``.

        `keep` runs first, in the same transaction.
        """
        columns = tuple(columns)
        chunk, one = _insert(table, columns, _CHUNK_ROWS), _insert(table, columns, 1)
        async with self._transaction() as conn:
            if keep is not None:
                rows = await keep(_SQLiteTransaction(conn), rows)
            full = len(rows) - len(rows) % _CHUNK_ROWS
            for start in range(0, full, _CHUNK_ROWS):
                part = rows[start : start + _CHUNK_ROWS]
                await conn.execute(chunk, [value for row in part for value in row])
            if full < len(rows):
                await conn.executemany(one, rows[full:])

    def connections_in_use(self) -> int:
        """1 while the write connection holds a transaction, else 0."""
        return int(self._write_lock.locked())

    @contextlib.asynccontextmanager
    async def named_lock(self, name: str, wait: float = 0.0) -> AsyncIterator[bool]:
        """An exclusive ``flock`` on the file ``<database>-<name>.lock`` beside the database,
        held for the block; the OS frees it if the process dies."""
        path = f"{self._path}-{name}.lock"
        try:
            handle = await asyncio.to_thread(open, path, "a")
        except OSError as exc:
            raise StorageError(f"cannot open the lock file: {exc.strerror}") from exc
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    got = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        got = False
                        break
                    await asyncio.sleep(0.05)
            try:
                yield got
            finally:
                if got:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        finally:
            handle.close()
