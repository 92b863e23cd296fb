"""The schema of usage events: ``ingest_keys``, ``sessions``, ``events``, and the
``idempotency_keys`` that batches of logs and of events are sent with.

Steps 4 and 5 of `storage.migrations`, each spelled for both backends side by side
(``(version, name, {backend: statements})``).
"""

from __future__ import annotations

__all__ = ["STEPS"]

#: This topic's steps, in version order.
STEPS: tuple[tuple[int, str, dict[str, tuple[str, ...]]], ...] = (
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
)
