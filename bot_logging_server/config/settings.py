"""Every setting of the server, declared once, in `SETTINGS`.

Each `Setting` names its flag, its environment variable, its default, its kind, the range or
the choices it allows, its help text and whether it is a secret. That one table drives:

* `bot_logging_server.config.build_config`, which fills `Config` from the flag, else the
  environment variable, else the default, and checks the range or the choices;
* the command line's options and their ``--help`` (`Setting.option_help`);
* the README's flag table (the tests check every setting has its row);
* `SECRETS`, the settings whose values are never printed, logged or echoed in an error.

This module only holds data. Adding a setting: one entry here, and the field of the same
name in `Config` (unless it only feeds the database URL), and its row in the README.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SECRETS", "SETTINGS", "SQLITE_PATH", "Setting", "cpu_cores", "setting"]

#: Where the data lives when no database user and no URL is given (relative to the working
#: directory).
SQLITE_PATH = "bot_logging.db"


@dataclass(frozen=True)
class Setting:
    """One setting: where its value comes from, what it may be, how it is explained.

    Attributes:
        name: the key in `build_config`'s flags, and the `Config` field it fills.
        env: the environment variable read when the flag is not given.
        default: the value when neither is given; ``None``: unset.
        kind: ``str``, ``int`` or ``float``: what a value is converted to.
        range_or_choices: for a number the inclusive ``(low, high)``; for text the allowed
            values (given in any case, stored as written here); ``None``: anything.
        help: the flag's help text (``--help`` adds the environment variable and default).
        secret: the value is never printed: no default in ``--help``, never in an error.
        flag: the command-line option, when it is not ``--`` + the name with dashes.
        words: values given as a word (any case) instead of a number, each with the function
            that computes the number it stands for (``--workers auto``).
    """

    name: str
    env: str
    default: str | int | float | None
    kind: type[str] | type[int] | type[float]
    range_or_choices: tuple[float, float] | tuple[str, ...] | None
    help: str
    secret: bool = False
    flag: str = ""
    words: tuple[tuple[str, Callable[[], int | float]], ...] = ()

    def __post_init__(self) -> None:
        """Derive the flag from the name when none is given."""
        if not self.flag:
            object.__setattr__(self, "flag", "--" + self.name.replace("_", "-"))

    @property
    def where(self) -> str:
        """How errors name the setting: ``--flag / ENV_VARIABLE``."""
        return f"{self.flag} / {self.env}"

    @property
    def choices(self) -> tuple[str, ...] | None:
        """The allowed values of a text setting, or ``None`` when any text is allowed."""
        if self.kind is str and self.range_or_choices is not None:
            return tuple(str(choice) for choice in self.range_or_choices)
        return None

    def option_help(self) -> str:
        """The flag's ``--help`` text: the help, then ``[env ENV; default D]``.

        A secret's default is never shown (nor, as anywhere, its value).
        """
        shown = "" if self.default is None or self.secret else f"; default {self.default}"
        return f"{self.help} [env {self.env}{shown}]"


_SECONDS = (0.1, 3600)
_MAX_WORKERS = 64


def cpu_cores() -> int:
    """The CPU cores this process may run on (at least 1, at most the workers' limit)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(_MAX_WORKERS, cores))


#: Every setting, in the order of ``--help`` and of the README's flag table.
SETTINGS: tuple[Setting, ...] = (
    Setting("host", "LOGGER_HOST", "127.0.0.1", str, None, "Address to listen on."),
    Setting("port", "LOGGER_PORT", 5000, int, (0, 65535), "Port to listen on."),
    Setting(
        "workers",
        "LOGGER_WORKERS",
        1,
        int,
        (1, _MAX_WORKERS),
        "Server processes; auto: one per CPU core.",
        words=(("auto", cpu_cores),),
    ),
    Setting(
        "db_user",
        "LOGGER_DB_USER",
        None,
        str,
        None,
        "MySQL/MariaDB user: with it the server runs on MySQL.",
        flag="--user",
    ),
    Setting(
        "db_password",
        "LOGGER_DB_PASSWORD",
        None,
        str,
        None,
        "MySQL/MariaDB password (never printed).",
        secret=True,
        flag="--password",
    ),
    # Several hosts: the nodes of a Galera cluster, in order of preference (storage.failover).
    Setting(
        "db_host",
        "LOGGER_DB_HOST",
        "127.0.0.1",
        str,
        None,
        "MySQL/MariaDB host, or several (Galera nodes, preferred first): h1:3306,h2:3306.",
    ),
    Setting(
        "db_port",
        "LOGGER_DB_PORT",
        3306,
        int,
        (1, 65535),
        "MySQL/MariaDB port (hosts without one).",
    ),
    Setting(
        "db_name",
        "LOGGER_DB_NAME",
        "bot_logging",
        str,
        None,
        "MySQL/MariaDB database (created when missing, if allowed).",
    ),
    Setting(
        "database_url",
        "LOGGER_DATABASE_URL",
        None,
        str,
        None,
        "mysql://USER:PASSWORD@HOST:PORT/DB or sqlite:///path/to/file.db; wins over the other "
        f"database options. Without it and without --user: SQLite in ./{SQLITE_PATH}.",
        secret=True,
    ),
    Setting(
        "pool_size",
        "LOGGER_POOL_SIZE",
        10,
        int,
        (1, 1000),
        "MySQL connections per worker for reads (the read API).",
    ),
    # Reads never take these: ingest and token checks keep working under any read load.
    Setting(
        "write_pool_size",
        "LOGGER_WRITE_POOL_SIZE",
        4,
        int,
        (1, 1000),
        "MySQL connections per worker for ingest, token checks and user changes.",
    ),
    Setting(
        "max_body_bytes",
        "LOGGER_MAX_BODY_BYTES",
        16 * 1024 * 1024,
        int,
        (1024, 2**31),
        "Largest request body; larger is refused with 413.",
    ),
    # bot_logging_server.admission: what one process holds at once; past it 503.
    Setting(
        "max_buffered_bytes",
        "LOGGER_MAX_BUFFERED_BYTES",
        64 * 1024 * 1024,
        int,
        (2**20, 2**40),
        "Request-body bytes held at once across all requests (at least --max-body-bytes); "
        "a body that does not fit is refused with 503 before it is read.",
    ),
    Setting(
        "max_concurrent_requests",
        "LOGGER_MAX_CONCURRENT_REQUESTS",
        1024,
        int,
        (1, 10**6),
        "Requests in progress at once (connections with a request); one more is a 503.",
    ),
    Setting(
        "max_connections",
        "LOGGER_MAX_CONNECTIONS",
        4096,
        int,
        (1, 10**6),
        "Open connections at once, idle, streaming and WebSocket ones included; one more is "
        "answered 503 and closed before anything is read from it.",
    ),
    Setting(
        "max_records",
        "LOGGER_MAX_RECORDS",
        10_000,
        int,
        (1, 10_000_000),
        "Most records in one batch; more is refused with 413.",
    ),
    Setting(
        "max_msg_chars",
        "LOGGER_MAX_MSG_CHARS",
        65_536,
        int,
        (1, 2**30),
        "Longer messages are stored cut and flagged truncated.",
    ),
    # The contract allows 5 s for a change made by another process (a user disabled,
    # a token rotated) to take effect.
    Setting(
        "auth_cache_seconds",
        "LOGGER_AUTH_CACHE_SECONDS",
        2.0,
        float,
        (0, 5),
        "Seconds a verified token is trusted before re-reading the user (0-5).",
    ),
    # Failed token checks (bot_logging_server.throttle): past either, 429 before hashing.
    Setting(
        "auth_failures_per_source",
        "LOGGER_AUTH_FAILURES_PER_SOURCE",
        60,
        int,
        (0, 10**6),
        "Failed token checks a minute from one client address; then 429 (locked). 0: no limit.",
    ),
    Setting(
        "auth_failures_per_user",
        "LOGGER_AUTH_FAILURES_PER_USER",
        10,
        int,
        (0, 10**6),
        "Failed token checks a minute for one user name; then 429 (locked). 0: no limit.",
    ),
    Setting(
        "api_key",
        "LOGGER_API_KEY",
        None,
        str,
        None,
        "Enables POST /create_user with this X-Api-Key (prefer the env).",
        secret=True,
    ),
    Setting(
        "log_level",
        "LOGGER_LOG_LEVEL",
        "INFO",
        str,
        ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        "The server's own log level.",
    ),
    # Past it the request answers 503 with Retry-After (the client retries).
    Setting(
        "db_timeout",
        "LOGGER_DB_TIMEOUT",
        10.0,
        float,
        _SECONDS,
        "Seconds to wait for a database connection, statement or SQLite lock; then 503.",
    ),
    # Quart's BODY_TIMEOUT.
    Setting(
        "body_timeout",
        "LOGGER_BODY_TIMEOUT",
        30.0,
        float,
        _SECONDS,
        "Seconds a client has to send a whole request body; then 408.",
    ),
    # A response (export, live tail) runs as long as the client keeps reading it.
    Setting(
        "read_timeout",
        "LOGGER_READ_TIMEOUT",
        30,
        int,
        (1, 3600),
        "Seconds a response waits for a client that stopped reading it; then it is cut.",
    ),
    # hypercorn's keep_alive_timeout (uvicorn: timeout_keep_alive, rounded).
    Setting(
        "keep_alive_timeout",
        "LOGGER_KEEP_ALIVE_TIMEOUT",
        5.0,
        float,
        _SECONDS,
        "Seconds an idle connection, or one still sending its headers, is kept open.",
    ),
    Setting(
        "rate_limit_requests",
        "LOGGER_RATE_LIMIT_REQUESTS",
        0,
        int,
        (0, 10**9),
        "Requests per second per user (per process); over it 429. 0: no limit.",
    ),
    Setting(
        "rate_limit_records",
        "LOGGER_RATE_LIMIT_RECORDS",
        0,
        int,
        (0, 10**12),
        "Log records per second per user (per process); over it 429. 0: no limit.",
    ),
    # Fair sharing: one user's heavy reads cannot take every read connection.
    Setting(
        "max_reads_per_user",
        "LOGGER_MAX_READS_PER_USER",
        4,
        int,
        (1, 10_000),
        "Reads (page, stats, export) one user may run at once, per process; more is 429.",
    ),
    Setting(
        "max_tails_per_user",
        "LOGGER_MAX_TAILS_PER_USER",
        4,
        int,
        (1, 10_000),
        "Live tails one user may keep open at once, per process; more is 429.",
    ),
    # uvloop is an optional dependency: a faster event loop.
    Setting(
        "event_loop",
        "LOGGER_EVENT_LOOP",
        "auto",
        str,
        ("auto", "asyncio", "uvloop"),
        "Event loop: auto uses uvloop when it is installed.",
    ),
    # uvicorn (with httptools) is an optional, faster HTTP server.
    Setting(
        "http_server",
        "LOGGER_HTTP_SERVER",
        "hypercorn",
        str,
        ("hypercorn", "uvicorn"),
        "HTTP server: hypercorn, or uvicorn (optional dependency; faster, see bench/RESULTS.md).",
    ),
    # Operators' view: metrics, the server's own log lines, the access log.
    Setting(
        "metrics_port",
        "LOGGER_METRICS_PORT",
        0,
        int,
        (0, 65535),
        "Serve Prometheus metrics at /metrics on this port, a listener of its own. 0: off.",
    ),
    Setting(
        "metrics_host",
        "LOGGER_METRICS_HOST",
        "127.0.0.1",
        str,
        None,
        "Address the metrics listener binds (only with --metrics-port).",
    ),
    Setting(
        "log_format",
        "LOGGER_LOG_FORMAT",
        "text",
        str,
        ("text", "json"),
        "The server's log lines: text, or json (one JSON object per line).",
    ),
    Setting(
        "access_log",
        "LOGGER_ACCESS_LOG",
        "off",
        str,
        ("off", "on"),
        "on: log one line per request (method, path, status, duration, user, records).",
    ),
    # Retention: per-user values (users set-retention) override these defaults.
    Setting(
        "retention_days",
        "LOGGER_RETENTION_DAYS",
        0.0,
        float,
        (0, 36_500),
        "Delete records older than this many days (by event_at). 0: keep them.",
    ),
    Setting(
        "retention_rows",
        "LOGGER_RETENTION_ROWS",
        0,
        int,
        (0, 10**12),
        "Keep at most this many newest records per user. 0: no limit.",
    ),
    Setting(
        "purge_interval",
        "LOGGER_PURGE_INTERVAL",
        60.0,
        float,
        (0, 86_400),
        "Seconds between background retention passes. 0: no background purge.",
    ),
    Setting(
        "purge_batch",
        "LOGGER_PURGE_BATCH",
        1000,
        int,
        (1, 10_000),
        "Records deleted per transaction when purging (small: ingest never waits long).",
    ),
    # Usage events from a web page may come without an ingest key (the tracker demo had no
    # auth at all); off by default: such events are refused.
    Setting(
        "keyless_events_user",
        "LOGGER_KEYLESS_EVENTS_USER",
        None,
        str,
        None,
        "User that usage events sent without an ingest key (POST /track, the Stats "
        "WebSocket) are stored for; unset: they are refused (401; a socket is closed 1008).",
    ),
    # The Stats_usage WebSocket's clients connect to ws://host:5655/ (the original's port).
    Setting(
        "stats_port",
        "LOGGER_STATS_PORT",
        0,
        int,
        (0, 65535),
        "Also serve the app on this port, e.g. 5655 for Stats_usage WebSocket clients "
        "(ws://HOST:PORT/). 0: off.",
    ),
    # Alerts (bot_logging_server.alerts): one message per rule per window, sent off the
    # ingest path; Telegram through the Bot API (a local fake one in the tests).
    Setting(
        "alert_window",
        "LOGGER_ALERT_WINDOW",
        60.0,
        float,
        (1, 86_400),
        "Seconds an alert gathers matching records into one message (count + first lines).",
    ),
    Setting(
        "alert_retry",
        "LOGGER_ALERT_RETRY",
        10.0,
        float,
        (0.1, 3600),
        "Seconds before a failed alert delivery is tried again (doubled each time, 1 h at most).",
    ),
    Setting(
        "telegram_token",
        "LOGGER_TELEGRAM_TOKEN",
        None,
        str,
        None,
        "Telegram bot token for alerts sent to users' tel_id (prefer the env).",
        secret=True,
    ),
    Setting(
        "telegram_api_url",
        "LOGGER_TELEGRAM_API_URL",
        "https://api.telegram.org",
        str,
        None,
        "Telegram Bot API base URL (messages go to {url}/bot{token}/sendMessage).",
    ),
)

#: Settings whose values are never printed, logged or echoed in an error.
SECRETS: frozenset[str] = frozenset(s.name for s in SETTINGS if s.secret)

_BY_NAME = {s.name: s for s in SETTINGS}


def setting(name: str) -> Setting:
    """The `Setting` called `name` (a `KeyError` names an unknown one)."""
    return _BY_NAME[name]
