"""Storage: the `Storage` object, its backends, and how the app holds one.

Layout: `base` (records, exceptions, the `Dialect` and `Database` seams), one module per table
family whose SQL is written once (`users`, `logs`, `retention`, `keys`, `sessions`,
`events`, `alerts`), one module per backend holding only what differs (`mysql`, `sqlite`: dialect,
connections, error mapping; `mysql_schema` creates and migrates a MySQL database),
`migrations` (the schema, both backends side by side), `group_commit`, and for several
database hosts (a Galera cluster) `hosts` (node health) and `failover` (which node, when to
move). A new table family is a new module beside those, a class `Storage` inherits, and a
step in `migrations`.

`make_storage(config)` picks the backend from the database URL's scheme (the one place that
does). `init_app(app, storage)` opens it in ``before_serving`` and closes it in
``after_serving``; handlers reach it with `get_storage()`.
"""

from __future__ import annotations

from quart import Quart, current_app

from bot_logging_server.config import Config
from bot_logging_server.storage.alerts import (
    AlertDelivery,
    AlertRule,
    AlertRuleLimit,
    AlertTable,
    Matches,
)
from bot_logging_server.storage.base import (
    BUCKETS,
    MAX_PAGE,
    Database,
    LevelCount,
    LogQuery,
    LogRow,
    StorageError,
    StorageUnavailable,
    StoredLog,
    User,
    UserExists,
    UserNotFound,
    utc_now,
)
from bot_logging_server.storage.events import (
    EVENT_SORTS,
    Event,
    EventQuery,
    EventTable,
    NameCount,
    Recorded,
    StoredEvent,
)
from bot_logging_server.storage.keys import IngestKey, KeyExists, KeyNotFound, KeyTable
from bot_logging_server.storage.logs import LogTable
from bot_logging_server.storage.retention import RetentionRule, RetentionTable
from bot_logging_server.storage.sessions import (
    SESSION_SORTS,
    Session,
    SessionExists,
    SessionQuery,
    SessionTable,
    StopOutcome,
)
from bot_logging_server.storage.users import UserTable

__all__ = [
    "BUCKETS",
    "EVENT_SORTS",
    "MAX_PAGE",
    "SESSION_SORTS",
    "AlertDelivery",
    "AlertRule",
    "AlertRuleLimit",
    "Event",
    "EventQuery",
    "IngestKey",
    "KeyExists",
    "KeyNotFound",
    "LevelCount",
    "LogQuery",
    "LogRow",
    "Matches",
    "NameCount",
    "Recorded",
    "RetentionRule",
    "Session",
    "SessionExists",
    "SessionQuery",
    "StopOutcome",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "StoredEvent",
    "StoredLog",
    "User",
    "UserExists",
    "UserNotFound",
    "get_storage",
    "init_app",
    "make_storage",
    "utc_now",
]

_EXTENSION = "bot_logging_server.storage"


class Storage(UserTable, LogTable, RetentionTable, KeyTable, SessionTable, EventTable, AlertTable):
    """What the server needs from a database: every table family, on one `Database`.

    One instance per process, shared by requests. `open` is awaited once at start-up (it
    creates the database when allowed, and applies pending migrations under a lock, so
    several workers may start at once); `close` once at shutdown. Every other method raises
    only `StorageError`s: `StorageUnavailable` when the database is away.
    """

    @property
    def name(self) -> str:
        """Short backend name: ``"mysql"`` or ``"sqlite"``."""
        return self.db.dialect.name

    async def open(self) -> None:
        """Connect (pool or connections), create the database if needed, migrate the schema."""
        await self.db.open()

    async def close(self) -> None:
        """Finish pending group commits, then close every connection. Safe to call twice."""
        await self.drain()
        await self.db.close()

    async def ping(self) -> None:
        """Run a trivial query; raise `StorageUnavailable` when the database does not answer."""
        await self.db.fetch("SELECT 1")


def make_storage(config: Config) -> Storage:
    """A not-yet-opened `Storage` for the configured database URL."""
    db: Database
    if config.database.scheme == "mysql":
        from bot_logging_server.storage.mysql import MySQLDatabase

        db = MySQLDatabase(config.database, pool_size=config.pool_size, timeout=config.db_timeout)
    else:
        from bot_logging_server.storage.sqlite import SQLiteDatabase

        db = SQLiteDatabase(config.database.path, timeout=config.db_timeout)
    return Storage(db)


def init_app(app: Quart, storage: Storage) -> None:
    """Attach `storage` to `app`: opened before serving, closed after."""
    app.extensions[_EXTENSION] = storage

    @app.before_serving
    async def _open_storage() -> None:
        await storage.open()

    @app.after_serving
    async def _close_storage() -> None:
        await storage.close()


def get_storage(app: Quart | None = None) -> Storage:
    """The `Storage` of `app` (default: the current app)."""
    return (app or current_app).extensions[_EXTENSION]
