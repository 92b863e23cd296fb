"""Embedded SQLite through aiosqlite (the default, needing nothing installed): its
connections (its SQL is `storage.sqlite_dialect`, what its faults mean `storage.sqlite_errors`).

Three connections are opened at start-up, in WAL mode with ``synchronous=FULL`` (a commit is
on disk before the server answers 200), each with its own thread (aiosqlite), so nothing
blocks the event loop:

* the writer, for transactions and group commits;
* the reader, for the read API (pages, exports, stats, tails), which WAL lets run beside a
  write; its thread runs at a lower CPU priority (Linux: ``nice`` +10, a per-thread value),
  so that a heavy read takes the CPU ingest leaves, not the other way round;
* the lookup connection, for token checks and health checks, so that they never queue behind
  a heavy read.

Each connection serves one caller at a time, and every use of one has a deadline
(``db_timeout``) covering the wait for the connection and the statements: SQLite's own
timeouts do not cover I/O, and a disk that stops answering would block a statement forever.
Past the deadline the caller gets `StorageUnavailable` at once; the statement is interrupted
(``sqlite3_interrupt``), and the connection goes to the next caller only once it has really
stopped (a write's transaction rolled back first).

Faults are named as SQLite names them (disk full, read-only, I/O error, locked), and those a
retry may fix are `StorageUnavailable` (503); a disk I/O error adds what the operating system
says about the file. Times are stored as text
``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC), which sorts.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, TypeVar

import aiosqlite

from bot_logging_server.storage.base import (
    Database,
    Executed,
    Keep,
    StorageError,
    StorageUnavailable,
    Then,
    Transaction,
    utc_now,
)
from bot_logging_server.storage.dialect import multi_row_insert, time_text
from bot_logging_server.storage.migrations import (
    REQUIRED_COLUMNS,
    SCHEMA_VERSION_TABLE,
    check_columns,
    for_backend,
)
from bot_logging_server.storage.sqlite_dialect import SQLiteDialect, fold, holds_word
from bot_logging_server.storage.sqlite_errors import translate

__all__ = ["MIGRATIONS", "SQLiteDatabase", "SQLiteDialect"]

log = logging.getLogger(__name__)

MIGRATIONS = for_backend("sqlite")

#: Rows per multi-row INSERT when a group is large: one prepared statement of this many
#: VALUES tuples runs about twice as fast per row as ``executemany`` of a one-row INSERT.
_CHUNK_ROWS = 64
_BUSY_TIMEOUT_MS = 10_000
# How much lower the reader thread's CPU priority is than the rest of the process.
_READER_NICENESS = 10
# How long the cause of a disk I/O error is looked for (it is only a better message).
_DIAGNOSE_SECONDS = 0.5
# Strong references to the tasks that wait for a statement past its deadline.
_SETTLING: set[asyncio.Task[None]] = set()

_T = TypeVar("_T")


def _lower_this_thread() -> int:
    """Lower the calling thread's CPU priority by `_READER_NICENESS`; 1 if done, else 0.

    On Linux the nice value belongs to a thread, and ``who=0`` is the calling one; elsewhere
    it would lower the whole process, so it is not done.
    """
    if not sys.platform.startswith("linux"):
        return 0
    try:
        os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0) + _READER_NICENESS)
    except OSError:
        return 0
    return 1


class _Slot:
    """One connection, used by one caller at a time: an interrupt stops only that caller's
    statement, and the next caller never finds a half-done transaction."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.conn: aiosqlite.Connection | None = None
        self.lock = asyncio.Lock()


class _Use:
    """One caller's use of a `_Slot`: each statement runs within the use's deadline."""

    def __init__(self, conn: aiosqlite.Connection, deadline: float | None, what: str) -> None:
        self.conn = conn
        self.deadline = deadline
        self.what = what
        #: The statement still running when the caller stopped waiting for it.
        self.stuck: asyncio.Future[Any] | None = None
        #: Whether the caller stopped because the deadline passed (not a cancellation).
        self.timed_out = False

    async def run(self, statement: Awaitable[_T]) -> _T:
        """Await `statement` until the deadline; past it raise `StorageUnavailable`.

        The statement's thread is not waited for then: `stuck` keeps it for the slot's
        owner to interrupt and settle. A cancelled caller leaves it there the same way.
        (``asyncio.wait``, not ``wait_for``: on Python 3.11 ``wait_for`` loses a
        cancellation that comes as the statement ends, and a tail would outlive its client.)
        """
        task = asyncio.ensure_future(statement)
        left = None
        if self.deadline is not None:
            left = max(self.deadline - asyncio.get_running_loop().time(), 0)
        try:
            await asyncio.wait((task,), timeout=left)
        except asyncio.CancelledError:
            if task.done():
                _retrieve(task)
            else:
                self.stuck = task
            raise
        if not task.done():
            self.stuck, self.timed_out = task, True
            raise StorageUnavailable(
                f"the {self.what} did not finish within its deadline "
                "(the disk is not answering, or the database is locked)"
            )
        return task.result()


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark `task`'s outcome as seen (nobody else will look at it)."""
    if not task.cancelled():
        task.exception()


class _SQLiteTransaction(Transaction):
    """Statements on the write connection inside a `SQLiteDatabase.transaction`."""

    def __init__(self, use: _Use) -> None:
        self._use = use

    async def execute(self, sql: str, args: Sequence = ()) -> Executed:
        """Run one statement."""
        cur = await self._use.run(self._use.conn.execute(sql, args))
        return Executed(cur.rowcount, cur.lastrowid)

    async def executemany(self, sql: str, rows: Sequence[Sequence]) -> None:
        """Run one statement for each of `rows`."""
        await self._use.run(self._use.conn.executemany(sql, rows))

    async def fetch(self, sql: str, args: Sequence = ()) -> list[Sequence]:
        """Run one query and return every row."""
        return list(await self._use.run(self._use.conn.execute_fetchall(sql, args)))


class SQLiteDatabase(Database):
    """One SQLite file: a write connection, a read connection and a lookup connection."""

    dialect = SQLiteDialect()
    # One writer: while a transaction commits, the next requests gather into one group.
    writers = 1
    # SQLite's default SQLITE_MAX_LENGTH: no string or BLOB may be longer.
    max_value_bytes = 1_000_000_000

    def __init__(self, path: str, timeout: float = _BUSY_TIMEOUT_MS / 1000) -> None:
        """Remember the file; nothing is opened before `open`.

        `timeout` is the deadline, in seconds, of every use of a connection: waiting for it,
        for a lock held by another process, and for the statements (then
        `StorageUnavailable`, answered 503).
        """
        self._path = path
        self._timeout = timeout
        self._busy_timeout_ms = max(1, int(timeout * 1000))
        self._writer = _Slot("writer")
        self._reader = _Slot("reader")
        self._lookups = _Slot("lookups")

    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        conn = await aiosqlite.connect(self._path, isolation_level=None)
        await conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms:d}")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = FULL")
        return conn

    async def open(self) -> None:
        """Open the connections (creating the file) and migrate."""
        try:
            self._writer.conn = await self._connect()
            await self._migrate()
            for slot in (self._reader, self._lookups):
                slot.conn = await self._connect()
                await slot.conn.create_function("blst_fold", 1, fold, deterministic=True)
                await slot.conn.create_function(
                    "blst_holds_word", 2, holds_word, deterministic=True
                )
            # A function SQLite calls runs in the connection's own thread: the reader's.
            reader = self._reader.conn
            await reader.create_function("blst_lower_priority", 0, _lower_this_thread)
            await reader.execute_fetchall("SELECT blst_lower_priority()")
        except BaseException as exc:
            await self.close()
            if isinstance(exc, Exception) and not isinstance(exc, StorageError):
                raise await self._name(exc) from exc
            raise

    async def _migrate(self) -> None:
        # One transaction: SQLite's DDL is transactional, and BEGIN IMMEDIATE is the lock.
        # No deadline: rebuilding an index of a large table takes its time.
        async with self._transaction(None, note=False) as tx:
            await tx.execute(SCHEMA_VERSION_TABLE["sqlite"])
            (current,) = (await tx.fetch("SELECT COALESCE(MAX(version), 0) FROM schema_version"))[0]
            for migration in MIGRATIONS:
                if migration.version <= current:
                    continue
                for statement in migration.statements:
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, time_text(utc_now())),
                )
            found: dict[str, set[str]] = {}
            for table in REQUIRED_COLUMNS:
                found[table] = {row[1] for row in await tx.fetch(f"PRAGMA table_info({table})")}
            check_columns(found)

    async def alter_schema(self, statements: Sequence[str]) -> None:
        """In one transaction on the writer, without a deadline (as `_migrate`)."""
        async with self._transaction(None, note=False) as tx:
            for statement in statements:
                await tx.execute(statement)

    async def close(self) -> None:
        """Close the connections (each given the timeout to finish what it runs)."""
        for slot in (self._reader, self._lookups, self._writer):
            conn, slot.conn = slot.conn, None
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), self._timeout)

    @contextlib.asynccontextmanager
    async def _use(self, slot: _Slot, what: str, timeout: float | None) -> AsyncIterator[_Use]:
        """The connection of `slot` for one caller, within `timeout` seconds (None: none).

        A statement still running when the caller leaves (deadline, cancellation) is
        settled in the background (`_settle`) before the next caller gets the connection.
        """
        conn = slot.conn
        if conn is None:
            raise StorageUnavailable("storage is not open")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                await slot.lock.acquire()
        except TimeoutError:
            raise StorageUnavailable(
                f"no {slot.name} connection free within the deadline "
                f"(a {what} before this one has not finished)"
            ) from None
        use = _Use(conn, deadline, what)
        try:
            yield use
        finally:
            if use.stuck is None:
                slot.lock.release()
            else:
                # Reads, and writes past their deadline, are interrupted; a write whose
                # caller was cancelled (a client gone) is left to finish.
                interrupt = use.timed_out or slot is not self._writer
                task = asyncio.ensure_future(self._settle(slot, conn, use.stuck, interrupt))
                _SETTLING.add(task)
                task.add_done_callback(_SETTLING.discard)

    async def _settle(
        self, slot: _Slot, conn: aiosqlite.Connection, stuck: asyncio.Future[Any], interrupt: bool
    ) -> None:
        """Stop `stuck` (interrupt it), wait until its thread is done, roll back what it left
        open, then free the slot."""
        started = time.monotonic()
        try:
            if interrupt:
                with contextlib.suppress(Exception):
                    await conn.interrupt()  # aiosqlite calls sqlite3_interrupt at once
            with contextlib.suppress(Exception):
                await stuck
            if slot.conn is conn and conn.in_transaction:
                with contextlib.suppress(Exception):
                    await conn.execute("ROLLBACK")
        finally:
            slot.lock.release()
        waited = time.monotonic() - started
        log.info("sqlite: a %s statement stopped %.1f s after its caller left", slot.name, waited)

    @contextlib.asynccontextmanager
    async def _transaction(
        self, timeout: float | None, note: bool = True
    ) -> AsyncIterator[_SQLiteTransaction]:
        """``BEGIN IMMEDIATE`` on the write connection; COMMIT on success, else ROLLBACK.

        Any exception but our own leaves as a `StorageError`. With `note`, the outcome is
        recorded for `write_fault`.
        """
        try:
            async with self._use(self._writer, "write", timeout) as use:
                try:
                    await use.run(use.conn.execute("BEGIN IMMEDIATE"))
                    yield _SQLiteTransaction(use)
                    await use.run(use.conn.execute("COMMIT"))
                except BaseException as exc:
                    # A failed statement or COMMIT: undo it before the next writer comes (a
                    # statement still running is rolled back by `_settle`).
                    if use.stuck is None and use.conn.in_transaction:
                        with contextlib.suppress(Exception):
                            await use.run(use.conn.execute("ROLLBACK"))
                    if isinstance(exc, Exception) and not isinstance(exc, StorageError):
                        raise await self._name(exc) from exc
                    raise
        except BaseException as exc:
            if note:
                self.note_write(exc)
            raise
        if note:
            self.note_write(None)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """``BEGIN IMMEDIATE`` on the write connection; COMMIT on success, else ROLLBACK."""
        async with self._transaction(self._timeout) as tx:
            yield tx

    async def _read(self, slot: _Slot, sql: str, args: Sequence) -> list[Sequence]:
        try:
            async with self._use(slot, "read", self._timeout) as use:
                return list(await use.run(use.conn.execute_fetchall(sql, args)))
        except StorageError:
            raise
        except Exception as exc:
            raise await self._name(exc) from exc

    async def fetch(self, sql: str, args: Sequence = ()) -> list[Sequence]:
        """Run one read on the read connection (interrupted past the deadline)."""
        return await self._read(self._reader, sql, args)

    async def lookup(self, sql: str, args: Sequence = ()) -> list[Sequence]:
        """Run one short read on the lookup connection, which the read API never uses."""
        return await self._read(self._lookups, sql, args)

    async def check_writable(self) -> None:
        """Commit a one-page write (the header's ``user_version``, set to itself) within
        the deadline: the file takes writes and the disk answers."""
        async with self._transaction(self._timeout, note=False) as tx:
            (version,) = (await tx.fetch("PRAGMA user_version"))[0]
            await tx.execute(f"PRAGMA user_version = {int(version):d}")

    async def insert_many(
        self,
        table: str,
        columns: Sequence[str],
        rows: list[tuple],
        keep: Keep | None = None,
        then: Then | None = None,
    ) -> None:
        """One transaction of 64-row prepared INSERTs, the remainder by ``executemany``;
        `keep` runs first in it, `then` last."""
        columns = tuple(columns)
        chunk, one = (
            multi_row_insert(table, columns, _CHUNK_ROWS),
            multi_row_insert(table, columns, 1),
        )
        async with self._transaction(self._timeout) as tx:
            if keep is not None:
                rows = await keep(tx, rows)
            full = len(rows) - len(rows) % _CHUNK_ROWS
            for start in range(0, full, _CHUNK_ROWS):
                part = rows[start : start + _CHUNK_ROWS]
                await tx.execute(chunk, [value for row in part for value in row])
            if full < len(rows):
                await tx.executemany(one, rows[full:])
            if then is not None:
                await then(tx, rows)

    async def _name(self, exc: BaseException) -> StorageError:
        """`exc` as our exception; a disk I/O error says what the system says about it."""
        cause = ""
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name.startswith("SQLITE_IOERR"):
            with contextlib.suppress(Exception):
                cause = await asyncio.wait_for(asyncio.to_thread(self._diagnose), _DIAGNOSE_SECONDS)
        return translate(exc, cause)

    def _diagnose(self) -> str:
        """Why the file cannot be written, as the operating system says it (read-only file
        system, no space left...), or ``""``. Opens the file for writing, writes nothing."""
        try:
            os.close(os.open(self._path, os.O_RDWR))
        except OSError as exc:
            return f": {exc.strerror or type(exc).__name__}".lower()
        return ""

    def connections_in_use(self) -> int:
        """How many of the three connections are busy right now."""
        return sum(slot.lock.locked() for slot in (self._writer, self._reader, self._lookups))

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
