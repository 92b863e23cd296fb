"""Defaults for every setting, and the environment variable that can override each.

This module only holds data: `bot_logging_server.config.build_config` reads it. A setting is
taken from the command-line flag if given, else from its environment variable, else from
`DEFAULTS`.
"""

from __future__ import annotations

#: Default value of every setting, by the name of the `Config` field it fills.
DEFAULTS: dict[str, object] = {
    "host": "127.0.0.1",
    "port": 5000,
    "workers": 1,
    "db_host": "127.0.0.1",
    "db_port": 3306,
    "db_name": "bot_logging",
    # No credentials and no URL: SQLite in a file in the working directory.
    "sqlite_path": "bot_logging.db",
    "pool_size": 10,
    "max_body_bytes": 16 * 1024 * 1024,
    "max_records": 10_000,
    "max_msg_chars": 65_536,
    # How long a verified token is trusted before the users table is read again; the
    # contract allows 5 s for a change made by another process to take effect.
    "auth_cache_seconds": 2.0,
    "log_level": "INFO",
    # Seconds to wait for the database: a pooled connection, a statement, a SQLite lock.
    # Past it the request answers 503 with Retry-After (the client retries).
    "db_timeout": 10.0,
    # Seconds a client has to send a request's whole body (Quart's BODY_TIMEOUT); 408 after.
    "body_timeout": 30.0,
    # Seconds hypercorn waits for any read on a connection before closing it.
    "read_timeout": 30,
    # Seconds an idle (keep-alive) connection, or one still sending its headers, is kept.
    "keep_alive_timeout": 5.0,
    # Per-user rate limits, per process (0 = off, the default).
    "rate_limit_requests": 0,
    "rate_limit_records": 0,
    # uvloop when it is installed (an optional dependency): a faster event loop.
    "event_loop": "auto",
    # uvicorn (with httptools) is an optional, faster HTTP server: see bench/RESULTS.md.
    "http_server": "hypercorn",
}

#: The environment variable read for each setting (flags win over these).
ENVIRONMENT: dict[str, str] = {
    "host": "LOGGER_HOST",
    "port": "LOGGER_PORT",
    "workers": "LOGGER_WORKERS",
    "database_url": "LOGGER_DATABASE_URL",
    "db_host": "LOGGER_DB_HOST",
    "db_port": "LOGGER_DB_PORT",
    "db_name": "LOGGER_DB_NAME",
    "db_user": "LOGGER_DB_USER",
    "db_password": "LOGGER_DB_PASSWORD",
    "pool_size": "LOGGER_POOL_SIZE",
    "max_body_bytes": "LOGGER_MAX_BODY_BYTES",
    "max_records": "LOGGER_MAX_RECORDS",
    "max_msg_chars": "LOGGER_MAX_MSG_CHARS",
    "auth_cache_seconds": "LOGGER_AUTH_CACHE_SECONDS",
    "api_key": "LOGGER_API_KEY",
    "log_level": "LOGGER_LOG_LEVEL",
    "db_timeout": "LOGGER_DB_TIMEOUT",
    "body_timeout": "LOGGER_BODY_TIMEOUT",
    "read_timeout": "LOGGER_READ_TIMEOUT",
    "keep_alive_timeout": "LOGGER_KEEP_ALIVE_TIMEOUT",
    "rate_limit_requests": "LOGGER_RATE_LIMIT_REQUESTS",
    "rate_limit_records": "LOGGER_RATE_LIMIT_RECORDS",
    "event_loop": "LOGGER_EVENT_LOOP",
    "http_server": "LOGGER_HTTP_SERVER",
}

#: Settings whose values are never printed, logged or echoed in an error.
SECRETS: frozenset[str] = frozenset({"db_password", "api_key", "database_url"})
