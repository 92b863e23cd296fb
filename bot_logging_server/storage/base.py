"""The storage interface every backend implements, its records and its exceptions.

Handlers and the CLI talk to storage only through `Storage`; each backend module
(`bot_logging_server.storage.mysql`, `bot_logging_server.storage.sqlite`) owns its SQL and
turns driver errors into the exceptions below, so nothing above this layer ever sees a driver
exception or an SQL text.

All times crossing this interface are naive `datetime` objects in UTC.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "LogRow",
    "Migration",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "StoredLog",
    "User",
    "UserExists",
    "UserNotFound",
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

    @abc.abstractmethod
    async def recent_logs(self, user_id: int, limit: int = 100) -> list[StoredLog]:
        """This user's newest rows, newest (highest id) first."""

    #: Bumped by every change to a user made through this object (disable, enable, token
    #: rotation, removal), so that this process's cache of verified tokens drops at once
    #: what it holds (`bot_logging_server.auth`); other processes' changes take up to
    #: ``auth_cache_seconds``.
    users_changed: int = 0
