"""The schema: numbered migrations, each spelled for both backends side by side.

A backend applies the steps newer than its ``schema_version`` table says, in order, under its
own lock (`Database.open`), then checks with `check_columns` that the tables it found are the
ones this server made. A new table family adds its step at the end of `_STEPS` and its
columns to `REQUIRED_COLUMNS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot_logging_server.storage.base import StorageError

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

#: The statements that fill the counters of ``storage.counts`` from the rows of user_logs
#: (step 8; and bench/read_speed.py after loading rows straight into the table).
COUNTS_FILL: dict[str, tuple[str, ...]] = {
    "mysql": tuple(
        f"INSERT INTO {table} (user_id, {column}, level, n) "
        f"SELECT user_id, DATE_FORMAT(event_at, '{pattern}') AS m, level, COUNT(*) "
        "FROM user_logs GROUP BY user_id, m, level ON DUPLICATE KEY UPDATE n = VALUES(n)"
        for table, column, pattern in (
            ("log_counts", "minute", "%Y-%m-%d %H:%i:00"),
            ("log_counts_hour", "hour", "%Y-%m-%d %H:00:00"),
        )
    ),
    "sqlite": tuple(
        f"INSERT OR REPLACE INTO {table} (user_id, {column}, level, n) "
        f"SELECT user_id, substr(event_at, 1, {chars}) || '{suffix}' AS m, level, COUNT(*) "
        "FROM user_logs GROUP BY user_id, m, level"
        for table, column, chars, suffix in (
            ("log_counts", "minute", 16, ":00.000000"),
            ("log_counts_hour", "hour", 13, ":00:00.000000"),
        )
    ),
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
    (
        3,
        "retention: per-user maximum age and rows",
        {
            # One row per user with its own retention; NULL: the server's default, 0: none.
            "mysql": (
                """CREATE TABLE IF NOT EXISTS retention (
                    user_id INT UNSIGNED NOT NULL PRIMARY KEY,
                    max_age_seconds BIGINT NULL,
                    max_rows BIGINT NULL,
                    updated_at DATETIME(6) NOT NULL
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
            ),
            "sqlite": (
                """CREATE TABLE IF NOT EXISTS retention (
                    user_id INTEGER NOT NULL PRIMARY KEY,
                    max_age_seconds INTEGER NULL,
                    max_rows INTEGER NULL,
                    updated_at TEXT NOT NULL
                )""",
            ),
        },
    ),
    (
        4,
        "usage events: ingest_keys, sessions, events",
        {
            # Session keys are VARBINARY: compared byte for byte (a PAD SPACE collation
            # would make "abc" and "abc " one session). Key names follow the user-name
            # rule (no whitespace), so their binary collation is exact.
            "mysql": (
                """CREATE TABLE IF NOT EXISTS ingest_keys (
                    id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                    user_id INT UNSIGNED NOT NULL,
                    name VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
                    lookup CHAR(16) CHARACTER SET ascii NOT NULL,
                    key_hash VARCHAR(255) NOT NULL,
                    disabled BOOL NOT NULL DEFAULT 0,
                    created_at DATETIME(6) NOT NULL,
                    updated_at DATETIME(6) NOT NULL,
                    UNIQUE KEY ux_ingest_keys_name (name),
                    KEY ix_ingest_keys_lookup (lookup),
                    KEY ix_ingest_keys_user (user_id)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
                """CREATE TABLE IF NOT EXISTS sessions (
                    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                    user_id INT UNSIGNED NOT NULL,
                    source VARCHAR(16) CHARACTER SET ascii NOT NULL,
                    session_key VARBINARY(256) NOT NULL,
                    ingest_key_id INT UNSIGNED NULL,
                    started_at DATETIME(6) NOT NULL,
                    started_client_time VARCHAR(255) NULL,
                    started_client_at DATETIME(6) NULL,
                    stopped_at DATETIME(6) NULL,
                    stopped_client_time VARCHAR(255) NULL,
                    stopped_client_at DATETIME(6) NULL,
                    attributes LONGTEXT NULL,
                    ip VARCHAR(64) NULL,
                    user_agent VARCHAR(1024) NULL,
                    event_count BIGINT UNSIGNED NOT NULL DEFAULT 0,
                    last_event_at DATETIME(6) NULL,
                    last_event_name VARCHAR(255) COLLATE utf8mb4_bin NULL,
                    UNIQUE KEY ux_sessions_key (source, session_key, user_id),
                    KEY ix_sessions_user_started (user_id, started_at)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
                # event_at: the client's time when it parsed, else the receive time.
                # clock_skew_ms: client time minus receive time; 0 when the client sent no
                # time, NULL when what it sent did not parse (the invalid-time index).
                """CREATE TABLE IF NOT EXISTS events (
                    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                    user_id INT UNSIGNED NOT NULL,
                    source VARCHAR(16) CHARACTER SET ascii NOT NULL,
                    session_id BIGINT UNSIGNED NULL,
                    ingest_key_id INT UNSIGNED NULL,
                    category VARCHAR(255) COLLATE utf8mb4_bin NULL,
                    name VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
                    page VARCHAR(2048) NULL,
                    data LONGTEXT NULL,
                    data_raw LONGTEXT NULL,
                    client_time VARCHAR(255) NULL,
                    client_at DATETIME(6) NULL,
                    clock_skew_ms BIGINT NULL,
                    event_at DATETIME(6) NOT NULL,
                    sequence BIGINT NULL,
                    received_at DATETIME(6) NOT NULL,
                    ip VARCHAR(64) NULL,
                    user_agent VARCHAR(1024) NULL,
                    KEY ix_events_user_id (user_id, id),
                    KEY ix_events_session_time (session_id, event_at),
                    KEY ix_events_user_time_name (user_id, event_at, name),
                    KEY ix_events_user_category_name (user_id, category, name),
                    KEY ix_events_user_skew (user_id, clock_skew_ms)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
            ),
            "sqlite": (
                """CREATE TABLE IF NOT EXISTS ingest_keys (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    user_id INTEGER NOT NULL,
                    name TEXT NOT NULL UNIQUE,
                    lookup TEXT NOT NULL,
                    key_hash TEXT NOT NULL,
                    disabled INTEGER NOT NULL DEFAULT 0,
                    created_at TEXT NOT NULL,
                    updated_at TEXT NOT NULL
                )""",
                "CREATE INDEX IF NOT EXISTS ix_ingest_keys_lookup ON ingest_keys (lookup)",
                "CREATE INDEX IF NOT EXISTS ix_ingest_keys_user ON ingest_keys (user_id)",
                """CREATE TABLE IF NOT EXISTS sessions (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    user_id INTEGER NOT NULL,
                    source TEXT NOT NULL,
                    session_key TEXT NOT NULL,
                    ingest_key_id INTEGER NULL,
                    started_at TEXT NOT NULL,
                    started_client_time TEXT NULL,
                    started_client_at TEXT NULL,
                    stopped_at TEXT NULL,
                    stopped_client_time TEXT NULL,
                    stopped_client_at TEXT NULL,
                    attributes TEXT NULL,
                    ip TEXT NULL,
                    user_agent TEXT NULL,
                    event_count INTEGER NOT NULL DEFAULT 0,
                    last_event_at TEXT NULL,
                    last_event_name TEXT NULL,
                    UNIQUE (source, session_key, user_id)
                )""",
                "CREATE INDEX IF NOT EXISTS ix_sessions_user_started "
                "ON sessions (user_id, started_at)",
                """CREATE TABLE IF NOT EXISTS events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    user_id INTEGER NOT NULL,
                    source TEXT NOT NULL,
                    session_id INTEGER NULL,
                    ingest_key_id INTEGER NULL,
                    category TEXT NULL,
                    name TEXT NOT NULL,
                    page TEXT NULL,
                    data TEXT NULL,
                    data_raw TEXT NULL,
                    client_time TEXT NULL,
                    client_at TEXT NULL,
                    clock_skew_ms INTEGER NULL,
                    event_at TEXT NOT NULL,
                    sequence INTEGER NULL,
                    received_at TEXT NOT NULL,
                    ip TEXT NULL,
                    user_agent TEXT NULL
                )""",
                "CREATE INDEX IF NOT EXISTS ix_events_user_id ON events (user_id, id)",
                "CREATE INDEX IF NOT EXISTS ix_events_session_time "
                "ON events (session_id, event_at)",
                "CREATE INDEX IF NOT EXISTS ix_events_user_time_name "
                "ON events (user_id, event_at, name)",
                "CREATE INDEX IF NOT EXISTS ix_events_user_category_name "
                "ON events (user_id, category, name)",
                "CREATE INDEX IF NOT EXISTS ix_events_user_skew ON events (user_id, clock_skew_ms)",
            ),
        },
    ),
    (
        5,
        "idempotency keys: the answers of batches sent with an Idempotency-Key",
        {
            # One row per (user, key), written in the transaction that stores the batch;
            # deleted a day later. Keys are visible ASCII, compared byte for byte.
            "mysql": (
                """CREATE TABLE IF NOT EXISTS idempotency_keys (
                    user_id INT UNSIGNED NOT NULL,
                    idempotency_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
                    fingerprint CHAR(64) CHARACTER SET ascii NOT NULL,
                    answer TEXT NOT NULL,
                    created_at DATETIME(6) NOT NULL,
                    PRIMARY KEY (user_id, idempotency_key),
                    KEY ix_idempotency_keys_created (created_at)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
            ),
            "sqlite": (
                """CREATE TABLE IF NOT EXISTS idempotency_keys (
                    user_id INTEGER NOT NULL,
                    idempotency_key TEXT NOT NULL,
                    fingerprint TEXT NOT NULL,
                    answer TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    PRIMARY KEY (user_id, idempotency_key)
                )""",
                "CREATE INDEX IF NOT EXISTS ix_idempotency_keys_created "
                "ON idempotency_keys (created_at)",
            ),
        },
    ),
    (
        6,
        "alerts: alert_rules and alert_windows",
        {
            # A rule: which records (NULL: any), where to send (telegram: the user's tel_id;
            # webhook: url, signed with secret), and how its last delivery went. A window:
            # the matches of one rule gathered into one message; (rule_id, seq) is unique,
            # so two workers can never open the same rule's next window twice; (state,
            # due_at) is what the dispatchers poll.
            "mysql": (
                """CREATE TABLE IF NOT EXISTS alert_rules (
                    id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                    user_id INT UNSIGNED NOT NULL,
                    min_level SMALLINT NOT NULL,
                    p_name VARCHAR(255) NULL,
                    p_description VARCHAR(255) NULL,
                    msg_text VARCHAR(1000) NULL,
                    channel VARCHAR(16) CHARACTER SET ascii NOT NULL,
                    url VARCHAR(2048) NULL,
                    secret VARCHAR(128) CHARACTER SET ascii NULL,
                    created_at DATETIME(6) NOT NULL,
                    last_status VARCHAR(16) CHARACTER SET ascii NULL,
                    last_error VARCHAR(1000) NULL,
                    last_attempt_at DATETIME(6) NULL,
                    last_sent_at DATETIME(6) NULL,
                    KEY ix_alert_rules_user (user_id)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
                """CREATE TABLE IF NOT EXISTS alert_windows (
                    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                    rule_id INT UNSIGNED NOT NULL,
                    seq INT UNSIGNED NOT NULL,
                    opened_at DATETIME(6) NOT NULL,
                    closes_at DATETIME(6) NOT NULL,
                    last_at DATETIME(6) NOT NULL,
                    match_count BIGINT UNSIGNED NOT NULL,
                    first_lines LONGTEXT NOT NULL,
                    state VARCHAR(8) CHARACTER SET ascii NOT NULL,
                    attempts INT UNSIGNED NOT NULL DEFAULT 0,
                    due_at DATETIME(6) NOT NULL,
                    last_error VARCHAR(1000) NULL,
                    sent_at DATETIME(6) NULL,
                    UNIQUE KEY ux_alert_windows_rule_seq (rule_id, seq),
                    KEY ix_alert_windows_due (state, due_at)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
            ),
            "sqlite": (
                """CREATE TABLE IF NOT EXISTS alert_rules (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    user_id INTEGER NOT NULL,
                    min_level INTEGER NOT NULL,
                    p_name TEXT NULL,
                    p_description TEXT NULL,
                    msg_text TEXT NULL,
                    channel TEXT NOT NULL,
                    url TEXT NULL,
                    secret TEXT NULL,
                    created_at TEXT NOT NULL,
                    last_status TEXT NULL,
                    last_error TEXT NULL,
                    last_attempt_at TEXT NULL,
                    last_sent_at TEXT NULL
                )""",
                "CREATE INDEX IF NOT EXISTS ix_alert_rules_user ON alert_rules (user_id)",
                """CREATE TABLE IF NOT EXISTS alert_windows (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    rule_id INTEGER NOT NULL,
                    seq INTEGER NOT NULL,
                    opened_at TEXT NOT NULL,
                    closes_at TEXT NOT NULL,
                    last_at TEXT NOT NULL,
                    match_count INTEGER NOT NULL,
                    first_lines TEXT NOT NULL,
                    state TEXT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    due_at TEXT NOT NULL,
                    last_error TEXT NULL,
                    sent_at TEXT NULL,
                    UNIQUE (rule_id, seq)
                )""",
                "CREATE INDEX IF NOT EXISTS ix_alert_windows_due ON alert_windows (state, due_at)",
            ),
        },
    ),
    (
        7,
        "user_logs: (user_id, event_at, id) index, the event-time order",
        {
            # A user's records by event time, ties by id: the listing's default order and
            # its keyset cursor. (user_id, event_at, level) stays for the stats (index only):
            # its level comes before id, so it cannot give this order.
            "mysql": (
                "ALTER TABLE user_logs ADD INDEX ix_user_logs_user_event_id "
                "(user_id, event_at, id)",
            ),
            "sqlite": (
                "CREATE INDEX IF NOT EXISTS ix_user_logs_user_event_id "
                "ON user_logs (user_id, event_at, id)",
            ),
        },
    ),
    (
        8,
        "log_counts, log_counts_hour: records per user, minute (hour) of event_at and level",
        {
            # Kept by the transactions that insert and delete user_logs (storage.counts);
            # filled here from the rows already stored. A minute (an hour) is its start,
            # stored as event_at is. Each process adds to rows of its own (`writer`), so
            # servers writing through different nodes of a cluster never update the same
            # row; a count is the sum over writers. The fill (writer 0) sets, not adds, each
            # counter: a server migrating through another node at the same moment writes
            # the same values.
            "mysql": (
                """CREATE TABLE IF NOT EXISTS log_counts (
                    user_id INT UNSIGNED NOT NULL,
                    minute DATETIME NOT NULL,
                    level SMALLINT NOT NULL,
                    writer INT UNSIGNED NOT NULL DEFAULT 0,
                    n BIGINT NOT NULL,
                    PRIMARY KEY (user_id, minute, level, writer)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
                """CREATE TABLE IF NOT EXISTS log_counts_hour (
                    user_id INT UNSIGNED NOT NULL,
                    hour DATETIME NOT NULL,
                    level SMALLINT NOT NULL,
                    writer INT UNSIGNED NOT NULL DEFAULT 0,
                    n BIGINT NOT NULL,
                    PRIMARY KEY (user_id, hour, level, writer)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
                *COUNTS_FILL["mysql"],
            ),
            "sqlite": (
                """CREATE TABLE IF NOT EXISTS log_counts (
                    user_id INTEGER NOT NULL,
                    minute TEXT NOT NULL,
                    level INTEGER NOT NULL,
                    writer INTEGER NOT NULL DEFAULT 0,
                    n INTEGER NOT NULL,
                    PRIMARY KEY (user_id, minute, level, writer)
                ) WITHOUT ROWID""",
                """CREATE TABLE IF NOT EXISTS log_counts_hour (
                    user_id INTEGER NOT NULL,
                    hour TEXT NOT NULL,
                    level INTEGER NOT NULL,
                    writer INTEGER NOT NULL DEFAULT 0,
                    n INTEGER NOT NULL,
                    PRIMARY KEY (user_id, hour, level, writer)
                ) WITHOUT ROWID""",
                *COUNTS_FILL["sqlite"],
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
