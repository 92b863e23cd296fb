"""Storage: the `Storage` interface, its backends, and how the app holds one.

`make_storage(config)` picks the backend from the database URL's scheme (the one place that
does). `init_app(app, storage)` opens it in ``before_serving`` and closes it in
``after_serving``; handlers reach it with `get_storage()`.
"""

from __future__ import annotations

from quart import Quart, current_app

from bot_logging_server.config import Config
from bot_logging_server.storage.base import (
    BUCKETS,
    MAX_PAGE,
    LevelCount,
    LogQuery,
    LogRow,
    Storage,
    StorageError,
    StorageUnavailable,
    StoredLog,
    User,
    UserExists,
    UserNotFound,
    utc_now,
)

__all__ = [
    "BUCKETS",
    "MAX_PAGE",
    "LevelCount",
    "LogQuery",
    "LogRow",
    "Storage",
    "StorageError",
    "StorageUnavailable",
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


def make_storage(config: Config) -> Storage:
    """A not-yet-opened `Storage` for the configured database URL."""
    if config.database.scheme == "mysql":
        from bot_logging_server.storage.mysql import MySQLStorage

        return MySQLStorage(config.database, pool_size=config.pool_size, timeout=config.db_timeout)
    from bot_logging_server.storage.sqlite import SQLiteStorage

    return SQLiteStorage(config.database.path, timeout=config.db_timeout)


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
