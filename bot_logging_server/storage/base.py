"""What the storage layer is made of: its records, its exceptions, and the `Database` seam a
backend fills in.

* A `Database` is a backend's connections: reads, transactions and the bulk insert behind
  group commit. Every exception leaves it as a `StorageError` (never a driver exception, never
  SQL text), so nothing above this layer ever sees one.
* Its `Dialect` (`storage.dialect`) says how the backend's SQL differs; the table families
  (`Table`) write their SQL once, with ``?`` placeholders, and ask the dialect for the rest.
* The records of ``users`` and ``user_logs`` are here; which log records to read, a
  `LogQuery`, is `storage.log_query`.

All times crossing the storage interface are naive `datetime` objects in UTC.
"""

from __future__ import annotations

import abc
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from bot_logging_server.storage.dialect import Dialect, multi_row_insert

__all__ = [
    "BUCKETS",
    "CHARS_PER_INSERT",
    "MAX_PAGE",
    "MAX_STAT_ROWS",
    "ROWS_PER_INSERT",
    "WRITE_FAULT_SECONDS",
    "Conflict",
    "Database",
    "DuplicateKey",
    "Executed",
    "Keep",
    "LevelCount",
    "LogRow",
    "StorageError",
    "StorageUnavailable",
    "StoredLog",
    "Table",
    "Then",
    "Transaction",
    "User",
    "UserExists",
    "UserNotActive",
    "UserNotFound",
    "cut_to_size",
    "escaped_size",
    "join_filters",
    "utc_now",
]


#: What MySQL's escaping doubles (pymysql's ``escape_string``): each takes two bytes.
_ESCAPED = ("\\", "\x00", "\n", "\r", "\x1a", "'", '"')


def escaped_size(text: str) -> int:
    """`text`'s bytes in a statement: UTF-8, plus one for each character the driver escapes.

    An upper bound for both backends (SQLite binds the UTF-8 bytes as they are).
    """
    return len(text.encode("utf-8", "surrogatepass")) + sum(text.count(c) for c in _ESCAPED)


def cut_to_size(text: str, limit: int) -> str:
    """The longest start of `text` whose `escaped_size` is at most `limit` bytes."""
    if len(text) * 4 <= limit:  # no character takes more than four bytes
        return text
    # Whole slices first (cheap in C), then the last slice a character at a time.
    step, used, end = 65536, 0, 0
    while end < len(text):
        size = escaped_size(text[end : end + step])
        if used + size > limit:
            break
        used += size
        end += step
    else:
        return text
    for char in text[end : end + step]:
        used += escaped_size(char)
        if used > limit:
            break
        end += 1
    return text[:end]


def utc_now() -> datetime:
    """The server's clock: now, in UTC, as a naive datetime with microseconds."""
    return datetime.now(UTC).replace(tzinfo=None)


# -- exceptions ---------------------------------------------------------------------------


class StorageError(Exception):
    """A storage operation failed for a reason a retry will not fix (answered 500)."""


class StorageUnavailable(StorageError):
    """The database cannot be reached or is overloaded right now (answered 503, retry)."""


class Conflict(StorageUnavailable):
    """The transaction was rolled back by a deadlock or, on a Galera cluster, by a
    certification conflict with a transaction committed through another node (MySQL error
    1213). Nothing of it is stored: running the whole transaction again is safe."""


class DuplicateKey(StorageError):
    """An INSERT met a row with the same unique key (the families turn it into their own)."""


class UserExists(StorageError):
    """A user with that name already exists."""


class UserNotFound(StorageError):
    """No user has that name."""


class UserNotActive(StorageError):
    """The user was removed or disabled after the request was authenticated: nothing of its
    batch was stored (answered 403, like any other refused user)."""


# -- records ------------------------------------------------------------------------------


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class User:
    """A row of ``users``. `token_hash` is the stored hash, never the token."""

    id: int
    username: str
    token_hash: str
    tel_id: int | None
    disabled: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: Sequence, time: Callable[[Any], datetime] = _same) -> User:
        """A row of ``SELECT`` in field order; `time` turns a stored time into a datetime."""
        return cls(row[0], row[1], row[2], row[3], bool(row[4]), time(row[5]))


class LogRow(msgspec.Struct, frozen=True, gc=False):
    """One validated log record, ready to insert (the user and receive time come separately).

    `msg` is already cut to the configured limit; `msg_length` is the original length in
    characters and `truncated` says whether it was cut.

    An immutable record like the dataclasses beside it (positional or keyword arguments,
    equality by value), built as a msgspec struct because one is built per record received:
    a frozen dataclass took about a tenth of the server's CPU time at 30 records a request.
    Its fields are plain values, never containers, so it is left out of the garbage
    collector's work (``gc=False``).
    """

    pid: int
    p_name: str
    p_description: str
    level: int
    msg: str
    truncated: bool
    msg_length: int
    event_at: datetime
    post_time: datetime


@dataclass(frozen=True, slots=True)
class StoredLog:
    """One row of ``user_logs`` as read back."""

    id: int
    user_id: int
    pid: int
    p_name: str
    p_description: str
    level: int
    msg: str
    truncated: bool
    msg_length: int
    event_at: datetime
    post_time: datetime
    received_at: datetime

    @classmethod
    def from_row(cls, row: Sequence, time: Callable[[Any], datetime] = _same) -> StoredLog:
        """A row of ``SELECT`` in field order; `time` turns a stored time into a datetime."""
        return cls(*row[:7], bool(row[7]), row[8], time(row[9]), time(row[10]), time(row[11]))


#: The most records one page (``limit``) may hold.
MAX_PAGE = 1000
#: The most (bucket, level) rows one stats answer holds (newest buckets kept).
MAX_STAT_ROWS = 10_000
#: Stats bucket widths.
BUCKETS = ("minute", "hour", "day")


@dataclass(frozen=True, slots=True)
class LevelCount:
    """One bar of the histogram: how many records of `level` in the bucket starting `start`."""

    start: datetime
    level: int
    count: int


def join_filters(
    required: tuple[str, object], optional: Sequence[tuple[str, object]]
) -> tuple[str, list]:
    """A WHERE clause and its arguments: `required`, AND each optional clause whose value is
    not None (each clause holds one ``?``)."""
    chosen = [required, *((clause, value) for clause, value in optional if value is not None)]
    return " AND ".join(clause for clause, _ in chosen), [value for _, value in chosen]


# -- the seam a backend fills in ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Executed:
    """What a statement did: rows changed, and the id an INSERT generated (else None)."""

    rowcount: int
    lastrowid: int | None


class Transaction(abc.ABC):
    """The statements of one open transaction (see `Database.transaction`)."""

    @abc.abstractmethod
    async def execute(self, sql: str, args: Sequence = ()) -> Executed:
        """Run one statement."""

    @abc.abstractmethod
    async def fetch(self, sql: str, args: Sequence = ()) -> list[Sequence]:
        """Run one query and return every row."""

    async def defer(self, sql: str, args: Sequence = ()) -> None:
        """Run a statement whose answer nobody reads (an INSERT, an upsert).

        A backend may keep it and send it with the transaction's next statement or its
        commit, in one round trip (MySQL); it still runs in order, and its error, if any,
        is raised by that later call, inside the transaction. Here: run at once.
        """
        await self.execute(sql, args)

    async def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence]
    ) -> None:
        """Insert `rows` (values in `columns` order) with multi-row INSERTs in this
        transaction (deferred, as `defer`).

        A statement holds at most `ROWS_PER_INSERT` rows and about `CHARS_PER_INSERT`
        characters of text, so that no statement passes the server's packet limit.
        """
        chunk: list[Sequence] = []
        size = 0
        for row in rows:
            chunk.append(row)
            size += sum(len(value) for value in row if isinstance(value, str))
            if len(chunk) >= ROWS_PER_INSERT or size >= CHARS_PER_INSERT:
                await self.defer(multi_row_insert(table, tuple(columns), len(chunk)), _flat(chunk))
                chunk, size = [], 0
        if chunk:
            await self.defer(multi_row_insert(table, tuple(columns), len(chunk)), _flat(chunk))


#: Rows per statement of `Transaction.insert_rows`: 64 rows of 16 columns is about a
#: thousand parameters, well inside both backends' limits.
ROWS_PER_INSERT = 64
#: Characters of text per statement of `Transaction.insert_rows` (MySQL's packet limit is
#: 16 MiB by default; a character is at most 4 bytes, escaping may double a byte).
CHARS_PER_INSERT = 1_000_000


def _flat(rows: Sequence[Sequence]) -> list:
    return [value for row in rows for value in row]


#: How long a failed write keeps `Database.write_fault` set when no write succeeds after it.
WRITE_FAULT_SECONDS = 30.0


#: What `Database.insert_many` may run first in its transaction: given the transaction and
#: the rows, it returns the rows to insert.
Keep = Callable[["Transaction", list[tuple]], Awaitable[list[tuple]]]
#: What `Database.insert_many` may run last in its transaction, given the rows it inserted.
Then = Callable[["Transaction", list[tuple]], Awaitable[None]]


class Database(abc.ABC):
    """A backend's connections, as the table families use them. One per process.

    `open` is awaited once at start-up: it connects, creates the database when allowed, and
    applies pending migrations under a lock (several workers may start at once); `close`
    once at shutdown. Every other method raises `StorageUnavailable` when the database is
    away, and only `StorageError`s whatever goes wrong.

    Two lanes keep reads from starving ingest: `fetch` runs on the read side's connections
    (the read API: pages, exports, stats, tails), while `lookup`, `transaction` and
    `insert_many` run on connections reads never take (token checks and writes). A read that
    passes the timeout is stopped on the database, not only abandoned.
    """

    dialect: Dialect
    #: How many group-commit transactions may be in flight at once.
    writers: int = 1
    #: The most bytes one text value may take in a statement, counted as `escaped_size`
    #: does (MySQL: ``max_allowed_packet``, read at `open`, minus room for the rest of a
    #: row); None: no limit. A longer message is stored cut to fit (`storage.logs`).
    max_value_bytes: int | None = None
    _write_fault: tuple[float, str] | None = None

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, create the database if needed (and allowed), migrate the schema."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every connection. Safe to call twice."""

    @abc.abstractmethod
    async def fetch(self, sql: str, args: Sequence = ()) -> list[Sequence]:
        """Run one read and return every row (it sees everything committed before it).

        On the read side's connections; stopped on the database (and `StorageUnavailable`)
        when it runs past the timeout.
        """

    async def lookup(self, sql: str, args: Sequence = ()) -> list[Sequence]:
        """Run one short read (by a key) on the connections reads never take: a token check
        is never queued behind the read API's queries. Same contract as `fetch`."""
        return await self.fetch(sql, args)

    async def check_writable(self) -> None:
        """Raise `StorageUnavailable`, naming the fault, when a write cannot be done now.

        The default does nothing (`write_fault` tells about the writes); a backend that can
        prove a write cheaply does.
        """
        return None

    @property
    def write_fault(self) -> str | None:
        """What the last write failed with, while no write succeeded since (for at most
        `WRITE_FAULT_SECONDS`); else None."""
        fault = self._write_fault
        if fault is None or time.monotonic() - fault[0] > WRITE_FAULT_SECONDS:
            return None
        return fault[1]

    def note_write(self, error: BaseException | None) -> None:
        """Record how a write ended: a `StorageUnavailable` sets `write_fault`, success
        clears it (a backend calls this after each transaction)."""
        if error is None:
            self._write_fault = None
        elif isinstance(error, StorageUnavailable):
            self._write_fault = (time.monotonic(), str(error))

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        """``async with db.transaction() as tx``: committed when the block ends, rolled back
        when it raises (and the exception, as a `StorageError`, goes on)."""

    @abc.abstractmethod
    async def insert_many(
        self,
        table: str,
        columns: Sequence[str],
        rows: list[tuple],
        keep: Keep | None = None,
        then: Then | None = None,
    ) -> None:
        """Insert `rows` (values in `columns` order) in one transaction, as fast as the
        backend can: a group commit's write.

        `keep`, when given, runs first in the same transaction and returns the rows to
        insert (a family's last checks: that the rows' owners still exist, which batches'
        idempotency keys are new). `then`, when given, runs last in it, before the commit,
        with the rows inserted (what a family keeps beside them: counters).
        """

    def connections_in_use(self) -> int:
        """How many of this process's connections are busy right now (for the metrics)."""
        return 0

    @abc.abstractmethod
    async def alter_schema(self, statements: Sequence[str]) -> None:
        """Run the schema `statements` in order without the timeout of other work (indexing
        a large table takes its time), as the migrations run theirs."""

    @abc.abstractmethod
    def named_lock(
        self, name: str, wait: float = 0.0
    ) -> contextlib.AbstractAsyncContextManager[bool]:
        """``async with db.named_lock("purge") as got``: `got` is True when this process
        holds the lock `name` (for this database, across processes) for the block, False
        when another holder kept it for `wait` seconds. The lock is released at the block's
        end, and by the database or the OS if the process dies."""


class Table:
    """Base of a table family: that table's queries, written once against any `Database`.

    `storage.Storage` inherits every family. A family that starts background work (a group
    commit) finishes it in `drain`, then calls ``super().drain()``.
    """

    def __init__(self, db: Database) -> None:
        """Run this family's queries on `db`."""
        self.db = db

    async def drain(self) -> None:
        """Finish pending writes before the connections close (nothing here)."""
