"""The start-up check that the tables found are the ones this server made.

A backend runs `check_columns` after its migrations (`storage.migrations`), with the columns
each table of `REQUIRED_COLUMNS` has.
"""

from __future__ import annotations

from bot_logging_server.storage.base import StorageError

__all__ = ["REQUIRED_COLUMNS", "check_columns"]

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
    "retention": frozenset({"user_id", "max_age_seconds", "max_rows", "updated_at"}),
    "log_counts": frozenset({"user_id", "minute", "level", "writer", "n"}),
    "log_counts_hour": frozenset({"user_id", "hour", "level", "writer", "n"}),
    "ingest_keys": frozenset(
        {"id", "user_id", "name", "lookup", "key_hash", "disabled", "created_at", "updated_at"}
    ),
    "sessions": frozenset(
        {
            "id",
            "user_id",
            "source",
            "session_key",
            "ingest_key_id",
            "started_at",
            "started_client_time",
            "started_client_at",
            "stopped_at",
            "stopped_client_time",
            "stopped_client_at",
            "attributes",
            "ip",
            "user_agent",
            "event_count",
            "last_event_at",
            "last_event_name",
        }
    ),
    "idempotency_keys": frozenset(
        {"user_id", "idempotency_key", "fingerprint", "answer", "created_at"}
    ),
    "events": frozenset(
        {
            "id",
            "user_id",
            "source",
            "session_id",
            "ingest_key_id",
            "category",
            "name",
            "page",
            "data",
            "data_raw",
            "client_time",
            "client_at",
            "clock_skew_ms",
            "event_at",
            "sequence",
            "received_at",
            "ip",
            "user_agent",
        }
    ),
    "alert_rules": frozenset(
        {
            "id",
            "user_id",
            "min_level",
            "p_name",
            "p_description",
            "msg_text",
            "channel",
            "url",
            "secret",
            "created_at",
            "last_status",
            "last_error",
            "last_attempt_at",
            "last_sent_at",
        }
    ),
    "alert_windows": frozenset(
        {
            "id",
            "rule_id",
            "seq",
            "opened_at",
            "closes_at",
            "last_at",
            "match_count",
            "first_lines",
            "state",
            "attempts",
            "due_at",
            "last_error",
            "sent_at",
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
