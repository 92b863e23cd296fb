"""The schema: numbered migrations, each spelled for both backends side by side.

A backend applies the steps newer than its ``schema_version`` table says, in order, under its
own lock (`Database.open`), then checks with `check_columns` that the tables it found are the
ones this server made. A new table family adds its step at the end of `_STEPS` and its
columns to `REQUIRED_COLUMNS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot_logging_server.storage.base import StorageError

__all__ = ["REQUIRED_COLUMNS", "SCHEMA_VERSION_TABLE", "Migration", "check_columns", "for_backend"]


@dataclass(frozen=True)
class Migration:
    """One schema step: applied once, in `version` order, recorded in ``schema_version``."""

    version: int
    name: str
    statements: tuple[str, ...]


#: Where each backend records the applied steps.
SCHEMA_VERSION_TABLE = {
    "mysql": """CREATE TABLE IF NOT EXISTS schema_version (
        version INT NOT NULL PRIMARY KEY,
        name VARCHAR(255) NOT NULL,
        applied_at DATETIME(6) NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "sqlite": "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
    "name TEXT NOT NULL, applied_at TEXT NOT NULL)",
}

# (version, name, {backend: statements}). MySQL stores times as DATETIME(6); SQLite as text
# "YYYY-MM-DD HH:MM:SS.ffffff" (UTC), which sorts.
_STEPS: tuple[tuple[int, str, dict[str, tuple[str, ...]]], ...] = (
    (
        1,
        "users and user_logs",
        {
            "mysql": (
                """CREATE TABLE IF NOT EXISTS users (
                    id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                    username VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
                    token_hash VARCHAR(255) NOT NULL,
                    tel_id BIGINT NULL,
                    disabled BOOL NOT NULL DEFAULT 0,
                    created_at DATETIME(6) NOT NULL,
                    updated_at DATETIME(6) NOT NULL,
                    UNIQUE KEY ux_users_username (username)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
                # id orders a user's records; (user_id, id) reads them newest first and
                # (user_id, event_at) serves time ranges.
                """CREATE TABLE IF NOT EXISTS user_logs (
                    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                    user_id INT UNSIGNED NOT NULL,
                    pid BIGINT NOT NULL,
                    p_name VARCHAR(255) NOT NULL,
                    p_description VARCHAR(255) NOT NULL,
                    level SMALLINT NOT NULL,
                    msg LONGTEXT NOT NULL,
                    truncated BOOL NOT NULL DEFAULT 0,
                    msg_length INT UNSIGNED NOT NULL,
                    event_at DATETIME(6) NOT NULL,
                    post_time DATETIME(6) NOT NULL,
                    received_at DATETIME(6) NOT NULL,
                    KEY ix_user_logs_user_id (user_id, id),
                    KEY ix_user_logs_user_event_at (user_id, event_at)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
            ),
            "sqlite": (
                """CREATE TABLE IF NOT EXISTS users (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    username TEXT NOT NULL UNIQUE,
                    token_hash TEXT NOT NULL,
                    tel_id INTEGER NULL,
                    disabled INTEGER NOT NULL DEFAULT 0,
                    created_at TEXT NOT NULL,
                    updated_at TEXT NOT NULL
                )""",
                """CREATE TABLE IF NOT EXISTS user_logs (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    user_id INTEGER NOT NULL,
                    pid INTEGER NOT NULL,
                    p_name TEXT NOT NULL,
                    p_description TEXT NOT NULL,
                    level INTEGER NOT NULL,
                    msg TEXT NOT NULL,
                    truncated INTEGER NOT NULL DEFAULT 0,
                    msg_length INTEGER NOT NULL,
                    event_at TEXT NOT NULL,
                    post_time TEXT NOT NULL,
                    received_at TEXT NOT NULL
                )""",
                "CREATE INDEX IF NOT EXISTS ix_user_logs_user_id ON user_logs (user_id, id)",
                "CREATE INDEX IF NOT EXISTS ix_user_logs_user_event_at "
                "ON user_logs (user_id, event_at)",
            ),
        },
    ),
    (
        2,
        "read side: (user_id, event_at, level) index",
        {
            # Covers the stats query (index only) and time ranges with a level filter; it
            # serves everything (user_id, event_at) did, so that one goes.
            "mysql": (
                "ALTER TABLE user_logs ADD INDEX ix_user_logs_user_event_level "
                "(user_id, event_at, level), DROP INDEX ix_user_logs_user_event_at",
            ),
            "sqlite": (
                "CREATE INDEX IF NOT EXISTS ix_user_logs_user_event_level "
                "ON user_logs (user_id, event_at, level)",
                "DROP INDEX IF EXISTS ix_user_logs_user_event_at",
            ),
        },
    ),
)


def for_backend(name: str) -> tuple[Migration, ...]:
    """Every step, in order, as backend `name` (``"mysql"`` or ``"sqlite"``) runs it."""
    return tuple(Migration(version, title, spelled[name]) for version, title, spelled in _STEPS)


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
