"""The storage interface every backend implements, its records and its exceptions.

Handlers and the CLI talk to storage only through `Storage`; each backend module
(`bot_logging_server.storage.mysql`, `bot_logging_server.storage.sqlite`) owns its SQL and
turns driver errors into the exceptions below, so nothing above this layer ever sees a driver
exception or an SQL text.

All times crossing this interface are naive `datetime` objects in UTC.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "BUCKETS",
    "MAX_PAGE",
    "MAX_STAT_ROWS",
    "REQUIRED_COLUMNS",
    "LevelCount",
    "LogQuery",
    "LogRow",
    "Migration",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "StoredLog",
    "User",
    "UserExists",
    "UserNotFound",
    "check_columns",
    "join_filters",
    "like_pattern",
    "utc_now",
]


def utc_now() -> datetime:
    """The server's clock: now, in UTC, as a naive datetime with microseconds."""
    return datetime.now(UTC).replace(tzinfo=None)


class StorageError(Exception):
    """A storage operation failed for a reason a retry will not fix (answered 500)."""


class StorageUnavailable(StorageError):
    """The database cannot be reached or is overloaded right now (answered 503, retry)."""


class UserExists(StorageError):
    """A user with that name already exists."""


class UserNotFound(StorageError):
    """No user has that name."""


@dataclass(frozen=True, slots=True)
class User:
    """A row of ``users``. `token_hash` is the stored hash, never the token."""

    id: int
    username: str
    token_hash: str
    tel_id: int | None
    disabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LogRow:
    """One validated log record, ready to insert (the user and receive time come separately).

    `msg` is already cut to the configured limit; `msg_length` is the original length in
    characters and `truncated` says whether it was cut.
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
    def from_row(cls, row: Sequence, time: Callable[[Any], datetime] = lambda t: t) -> StoredLog:
        """A row of ``SELECT`` in column order; `time` turns a stored time into a datetime."""
        return cls(*row[:7], bool(row[7]), row[8], time(row[9]), time(row[10]), time(row[11]))


#: The most records one page (``limit``) may hold.
MAX_PAGE = 1000
#: The most (bucket, level) rows one stats answer holds (newest buckets kept).
MAX_STAT_ROWS = 10_000
#: Stats bucket widths.
BUCKETS = ("minute", "hour", "day")


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Which of a user's records to read, and one keyset page of them (never an OFFSET).

    Filters (all optional, combined with AND):
        min_level: ``level >= min_level``.
        since, until: ``since <= event_at < until`` (naive UTC).
        q: case-insensitive substring of ``msg`` (wildcards in it are plain characters).
        p_name, p_description, pid: equal to.
    Page:
        before_id, after_id: only ``id < before_id`` / ``id > after_id`` (the keyset cursor).
        oldest_first: ascending ids (the live tail) instead of newest first.
        limit: 1..`MAX_PAGE` records.
    """

    min_level: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None
    p_name: str | None = None
    p_description: str | None = None
    pid: int | None = None
    before_id: int | None = None
    after_id: int | None = None
    oldest_first: bool = False
    limit: int = 100

    def __post_init__(self) -> None:
        """Refuse a limit outside 1..`MAX_PAGE` (a programming error, not a client's)."""
        if not 1 <= self.limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1..{MAX_PAGE}")


@dataclass(frozen=True, slots=True)
class LevelCount:
    """One bar of the histogram: how many records of `level` in the bucket starting `start`."""

    start: datetime
    level: int
    count: int


def like_pattern(text: str) -> str:
    """``%text%`` for ``LIKE ... ESCAPE '|'``, with ``|``, ``%`` and ``_`` in `text` escaped."""
    escaped = text.replace("|", "||").replace("%", "|%").replace("_", "|_")
    return f"%{escaped}%"


#: The columns the server reads and writes, per table. Checked at start-up after the
#: migrations: a table of the same name made by something else (say, the original server)
#: would otherwise fail every request with a 500.
REQUIRED_COLUMNS: dict[str, frozenset[str]] = {
    "users": frozenset({"id", "username", "token_hash", "tel_id", "disabled", "created_at"}),
    "user_logs": frozenset(
        {
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
    ),
}


def join_filters(
    required: tuple[str, object], optional: Sequence[tuple[str, object]]
) -> tuple[str, list]:
    """A WHERE clause and its arguments: `required`, AND each optional clause whose value is
    not None (each clause holds one placeholder, in the backend's own style)."""
    chosen = [required, *((clause, value) for clause, value in optional if value is not None)]
    return " AND ".join(clause for clause, _ in chosen), [value for _, value in chosen]


def check_columns(found: dict[str, set[str]]) -> None:
    """Raise `StorageError` naming what is missing when `found` lacks a required column.

    `found` maps each table name to the columns it has (a missing table has none).
    """
    problems = []
    for table, needed in REQUIRED_COLUMNS.items():
        missing = sorted(needed - found.get(table, set()))
        if missing:
            problems.append(f"table {table} lacks {', '.join(missing)}")
    if problems:
        raise StorageError(
            "; ".join(problems) + ": these tables were not created by this server; point it "
            "at another database (--db-name) or rename them"
        )


@dataclass(frozen=True)
class Migration:
    """One schema step: applied once, in `version` order, recorded in ``schema_version``."""

    version: int
    name: str
    statements: tuple[str, ...]


class Storage(abc.ABC):
    """What the server needs from a database. One instance per process, shared by requests.

    `open` is awaited once at start-up (it creates the database when allowed, and applies
    pending migrations under a lock, so several workers may start at once); `close` once at
    shutdown. Every other method may raise `StorageUnavailable` when the database is away.
    """

    #: Short backend name: ``"mysql"`` or ``"sqlite"``.
    name: str

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect (pool or connections), create the database if needed, migrate the schema."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every connection. Safe to call twice."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Run a trivial query; raise `StorageUnavailable` when the database does not answer."""

    @abc.abstractmethod
    async def schema_version(self) -> int:
        """The highest applied migration version."""

    # -- users ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def create_user(self, username: str, token_hash: str, tel_id: int | None) -> User:
        """Insert a user; raise `UserExists` when the name is taken."""

    @abc.abstractmethod
    async def get_user(self, username: str) -> User | None:
        """The user with exactly this name, or None."""

    @abc.abstractmethod
    async def list_users(self) -> list[User]:
        """Every user, by name."""

    @abc.abstractmethod
    async def set_disabled(self, username: str, disabled: bool) -> None:
        """Disable or enable a user; raise `UserNotFound` for an unknown name."""

    @abc.abstractmethod
    async def set_token_hash(self, username: str, token_hash: str) -> None:
        """Replace a user's token hash (rotation); raise `UserNotFound` for an unknown name."""

    @abc.abstractmethod
    async def remove_user(self, username: str) -> int:
        """Delete a user and all their logs in one transaction; return the logs deleted.

        Raises `UserNotFound` for an unknown name.
        """

    # -- logs ----------------------------------------------------------------------------

    @abc.abstractmethod
    async def insert_logs(self, user_id: int, rows: Sequence[LogRow], received_at: datetime) -> int:
        """Insert every row in one transaction (one multi-row INSERT); return how many.

        Either all rows are committed when this returns, or none are and it raises.
        """

    @abc.abstractmethod
    async def count_logs(self, user_id: int) -> int:
        """How many log rows this user has."""

    async def recent_logs(self, user_id: int, limit: int = 100) -> list[StoredLog]:
        """This user's newest rows, newest (highest id) first (at most `MAX_PAGE`)."""
        return await self.query_logs(user_id, LogQuery(limit=limit))

    # -- reading -------------------------------------------------------------------------

    @abc.abstractmethod
    async def query_logs(self, user_id: int, query: LogQuery) -> list[StoredLog]:
        """One page of this user's rows matching `query`: newest first, or oldest first.

        Only `user_id`'s rows are ever read, whatever the filters.
        """

    @abc.abstractmethod
    async def last_log_id(self, user_id: int) -> int:
        """The highest id among this user's rows, 0 when there is none (where a tail starts)."""

    @abc.abstractmethod
    async def log_stats(self, user_id: int, query: LogQuery, bucket: str) -> list[LevelCount]:
        """Counts per (bucket of ``event_at``, level) of rows matching `query`'s filters.

        `bucket` is one of `BUCKETS`; the cursor and limit of `query` are ignored. Newest
        buckets first, levels ascending, at most `MAX_STAT_ROWS` rows.
        """

    #: Bumped by every change to a user made through this object (disable, enable, token
    #: rotation, removal), so that this process's cache of verified tokens drops at once
    #: what it holds (`bot_logging_server.auth`); other processes' changes take up to
    #: ``auth_cache_seconds``.
    users_changed: int = 0
