"""Storage: the `Storage` object, its backends, and how the app holds one.

Layout: `base` (records of users and log rows, exceptions, the `Database` seam), `dialect`
(the `Dialect` seam: how a backend's SQL differs), one module per table family whose SQL is
written once (`users`, `logs`, `retention`, `keys`, `sessions`, `events`, `idempotency`,
`alerts`, with `counts` keeping the log counters), the values some families take and give
(`log_query`: which log records to read and its WHERE clause; `event_records`;
`alert_records`), per backend what differs (`mysql`, `sqlite`: connections;
`mysql_dialect`, `sqlite_dialect`: their SQL; `mysql_errors`, `sqlite_errors`: what their
errors mean; `mysql_schema` creates and migrates a MySQL database), `migrations` (the
schema, both backends side by side: the steps per topic in `schema_logs`, `schema_events`,
`schema_alerts`, the start-up column check in `schema_check`), `group_commit`, and for
several database hosts (a Galera cluster) `hosts` (node health) and `failover` (which node,
when to move). A new table family is a new module beside those, a class `Storage`
inherits, and a step in a `schema_*` module.

`make_storage(config)` picks the backend from the database URL's scheme (the one place that
does). `init_app(app, storage)` opens it in ``before_serving`` and closes it in
``after_serving``; handlers reach it with `get_storage()`.
"""

from __future__ import annotations

import asyncio
import time

from quart import Quart, current_app

from bot_logging_server.config import Config
from bot_logging_server.storage.alert_records import AlertDelivery, AlertRule, Matches
from bot_logging_server.storage.alerts import AlertRuleLimit, AlertTable
from bot_logging_server.storage.base import (
    BUCKETS,
    MAX_PAGE,
    Database,
    LevelCount,
    LogRow,
    StorageError,
    StorageUnavailable,
    StoredLog,
    User,
    UserExists,
    UserNotActive,
    UserNotFound,
    utc_now,
)
from bot_logging_server.storage.event_records import (
    EVENT_SORTS,
    PAGE_SORTS,
    Event,
    EventQuery,
    NameCount,
    PageCount,
    Recorded,
    StoredEvent,
)
from bot_logging_server.storage.events import EventTable
from bot_logging_server.storage.idempotency import (
    KEY_LIFETIME,
    Claim,
    IdempotencyTable,
    Remembered,
)
from bot_logging_server.storage.keys import IngestKey, KeyExists, KeyNotFound, KeyTable
from bot_logging_server.storage.log_query import LOG_SORTS, LogQuery
from bot_logging_server.storage.logs import LogTable
from bot_logging_server.storage.retention import RetentionRule, RetentionTable
from bot_logging_server.storage.sessions import (
    SESSION_SORTS,
    Session,
    SessionCount,
    SessionExists,
    SessionQuery,
    SessionTable,
    StopOutcome,
)
from bot_logging_server.storage.users import UserTable

__all__ = [
    "BUCKETS",
    "EVENT_SORTS",
    "KEY_LIFETIME",
    "LOG_SORTS",
    "MAX_PAGE",
    "PAGE_SORTS",
    "SESSION_SORTS",
    "AlertDelivery",
    "AlertRule",
    "AlertRuleLimit",
    "Claim",
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
    "PageCount",
    "Recorded",
    "Remembered",
    "RetentionRule",
    "Session",
    "SessionCount",
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
    "UserNotActive",
    "UserNotFound",
    "get_storage",
    "init_app",
    "make_storage",
    "utc_now",
]

_EXTENSION = "bot_logging_server.storage"
#: A write probe's answer is reused this long: ``/healthz`` needs no authentication, and a
#: write probe per request would let anyone compete with ingest for the writer.
HEALTH_SECONDS = 1.0


class Storage(
    UserTable,
    LogTable,
    RetentionTable,
    KeyTable,
    SessionTable,
    EventTable,
    IdempotencyTable,
    AlertTable,
):
    """What the server needs from a database: every table family, on one `Database`.

    One instance per process, shared by requests. `open` is awaited once at start-up (it
    creates the database when allowed, and applies pending migrations under a lock, so
    several workers may start at once); `close` once at shutdown. Every other method raises
    only `StorageError`s: `StorageUnavailable` when the database is away.
    """

    def __init__(self, db: Database) -> None:
        """Serve every table family from `db` (not opened yet)."""
        super().__init__(db)
        self._pinging: asyncio.Future[None] | None = None
        self._probe: asyncio.Future[None] | None = None
        self._probe_at = 0.0

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
        await self.db.lookup("SELECT 1")

    async def check_health(self) -> None:
        """Raise `StorageUnavailable`, naming the fault, unless the database takes writes now.

        Unhealthy while the last write failed for a reason a retry may fix (disk full,
        read-only, deadline passed...) and no write succeeded since; when a trivial query
        fails (concurrent calls share one); or when the backend's write probe
        (`Database.check_writable`) fails, whose answer is reused for `HEALTH_SECONDS`.
        """
        fault = self.db.write_fault
        if fault is not None:
            raise StorageUnavailable(fault)
        if self._pinging is None or self._pinging.done():
            self._pinging = _retrieved(asyncio.ensure_future(self.ping()))
        # shield: a caller going away must not cancel the check the others wait for.
        await asyncio.shield(self._pinging)
        probe = self._probe
        if probe is None or (probe.done() and time.monotonic() - self._probe_at > HEALTH_SECONDS):
            self._probe_at = time.monotonic()
            probe = self._probe = _retrieved(asyncio.ensure_future(self.db.check_writable()))
        await asyncio.shield(probe)


def _retrieved(task: asyncio.Future[None]) -> asyncio.Future[None]:
    """`task`, whose outcome counts as seen even if every caller went away before its end."""
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    return task


def make_storage(config: Config) -> Storage:
    """A not-yet-opened `Storage` for the configured database URL."""
    db: Database
    if config.database.scheme == "mysql":
        from bot_logging_server.storage.mysql import MySQLDatabase

        db = MySQLDatabase(
            config.database,
            pool_size=config.pool_size,
            timeout=config.db_timeout,
            write_pool_size=config.write_pool_size,
        )
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
