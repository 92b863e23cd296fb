"""The schema: numbered migrations, each spelled for both backends side by side.

A backend applies the steps newer than its ``schema_version`` table says, in order, under its
own lock (`Database.open`), then checks with `check_columns` that the tables it found are the
ones this server made.

The steps are written per topic: `storage.schema_logs` (users, user_logs, retention, the
counters), `storage.schema_events` (ingest keys, sessions, events, idempotency keys) and
`storage.schema_alerts`; the check and its `REQUIRED_COLUMNS` are `storage.schema_check`. A
new table family adds its step, numbered after the last one, to its topic's module (or a new
one, listed in `_STEPS` below) and its columns to `REQUIRED_COLUMNS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot_logging_server.storage import schema_alerts, schema_events, schema_logs
from bot_logging_server.storage.schema_check import REQUIRED_COLUMNS, check_columns
from bot_logging_server.storage.schema_logs import COUNTS_FILL

__all__ = [
    "COUNTS_FILL",
    "REQUIRED_COLUMNS",
    "SCHEMA_VERSION_TABLE",
    "Migration",
    "check_columns",
    "for_backend",
]


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

# Every topic's steps, in version order: (version, name, {backend: statements}).
_STEPS = tuple(
    sorted((*schema_logs.STEPS, *schema_events.STEPS, *schema_alerts.STEPS), key=lambda s: s[0])
)
if [version for version, _, _ in _STEPS] != list(range(1, len(_STEPS) + 1)):
    raise RuntimeError("the migration steps must be numbered 1, 2, 3... without a gap")


def for_backend(name: str) -> tuple[Migration, ...]:
    """Every step, in order, as backend `name` (``"mysql"`` or ``"sqlite"``) runs it."""
    return tuple(Migration(version, title, spelled[name]) for version, title, spelled in _STEPS)
