"""The schema of the log side: ``users``, ``user_logs``, ``retention`` and the counters.

Steps 1, 2, 3, 7, 8 and 9 of `storage.migrations`, each spelled for both backends side by side
(``(version, name, {backend: statements})``). MySQL stores times as DATETIME(6); SQLite as
text "YYYY-MM-DD HH:MM:SS.ffffff" (UTC), which sorts.
"""

from __future__ import annotations

__all__ = ["COUNTS_FILL", "STEPS"]

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

#: This topic's steps, in version order.
STEPS: tuple[tuple[int, str, dict[str, tuple[str, ...]]], ...] = (
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
    (
        9,
        "user_logs: (user_id, event_at, level) index dropped",
        {
            # The stats read the counters now, and a time range reads (user_id, event_at,
            # id) as well: the index only cost every insert (measured: ingest at 30 x 64
            # on MariaDB 15-35 % faster without it).
            "mysql": ("ALTER TABLE user_logs DROP INDEX ix_user_logs_user_event_level",),
            "sqlite": ("DROP INDEX IF EXISTS ix_user_logs_user_event_level",),
        },
    ),
)
