"""The schema of alerts: ``alert_rules`` and ``alert_windows``.

Step 6 of `storage.migrations`, spelled for both backends side by side
(``(version, name, {backend: statements})``).
"""

from __future__ import annotations

__all__ = ["STEPS"]

#: This topic's steps, in version order.
STEPS: tuple[tuple[int, str, dict[str, tuple[str, ...]]], ...] = (
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
)
