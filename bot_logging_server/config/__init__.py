"""The server's configuration: one frozen `Config`, built by one pure function.

`build_config(flags, environ)` takes the command-line flags (``None`` where a flag was not
given) and an environment mapping, and fills every field from the flag, else the environment
variable named in `quart_config.ENVIRONMENT`, else the default in `quart_config.DEFAULTS`.
Nothing here reads the process environment by itself, so tests pass their own mapping.

Storage is chosen by one URL: ``--database-url`` when given; otherwise MySQL built from
``--user/--password/--db-host/--db-port/--db-name`` when a database user is given; otherwise
SQLite in ``bot_logging.db`` in the working directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from quart import current_app

from bot_logging_server.config.quart_config import DEFAULTS, ENVIRONMENT

__all__ = ["Config", "ConfigError", "DatabaseURL", "build_config", "get_config"]

#: The key under which the app keeps its `Config` in ``app.config``.
APP_CONFIG_KEY = "BOT_LOGGING_SERVER"

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Event loops the server can run on (``auto``: uvloop when it is installed).
EVENT_LOOPS = ("auto", "asyncio", "uvloop")
#: HTTP servers the CLI can serve the app with.
HTTP_SERVERS = ("hypercorn", "uvicorn")


class ConfigError(ValueError):
    """A setting has a value the server cannot run with.

    The message names the setting (flag and environment variable) and the bad value, except
    for secrets, whose value is never repeated.
    """


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL: ``mysql://user:pw@host:port/name`` or ``sqlite:///path``.

    For SQLite, ``sqlite:///relative.db`` is relative to the working directory and
    ``sqlite:////abs/path.db`` is absolute; `path` holds the absolute path.
    """

    scheme: str
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = ""
    name: str = ""
    path: str = ""

    @classmethod
    def parse(cls, url: str) -> DatabaseURL:
        """Parse `url`; raise `ConfigError` (without repeating the URL) when it is not usable."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "sqlite":
            if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
                raise ConfigError("database URL: a SQLite URL looks like sqlite:///path/to/file.db")
            return cls(scheme="sqlite", path=os.path.abspath(unquote(parts.path[1:])))
        if scheme in ("mysql", "mariadb", "mysql+aiomysql"):
            try:
                port = parts.port or 3306
            except ValueError:
                raise ConfigError("database URL: the port is not a number") from None
            name = unquote(parts.path.lstrip("/"))
            if not parts.hostname or not parts.username or not name:
                raise ConfigError(
                    "database URL: a MySQL URL looks like mysql://user:password@host:port/dbname"
                )
            return cls(
                scheme="mysql",
                host=parts.hostname,
                port=port,
                user=unquote(parts.username),
                password=unquote(parts.password or ""),
                name=name,
            )
        raise ConfigError(
            f"database URL: unknown scheme {scheme!r} (use mysql://... or sqlite:///...)"
        )

    def masked(self) -> str:
        """The URL as it may be printed: the password replaced by ``***``."""
        if self.scheme == "sqlite":
            return f"sqlite:///{self.path}"
        secret = ":***" if self.password else ""
        return f"mysql://{quote(self.user, safe='')}{secret}@{self.host}:{self.port}/{self.name}"


@dataclass(frozen=True)
class Config:
    """Every setting of one server process. Build it with `build_config`.

    Attributes:
        host, port: where the HTTP server listens.
        workers: hypercorn worker processes.
        database: the storage URL, parsed.
        pool_size: connections in the MySQL pool (per worker).
        max_body_bytes: largest request body; larger answers 413.
        max_records: most records in one batch; more answers 413.
        max_msg_chars: longer messages are stored cut to this and flagged ``truncated``.
        auth_cache_seconds: how long a verified token is trusted before re-reading the user.
        api_key: enables ``POST /create_user`` when set.
        log_level: the server's own log level.
        db_timeout: seconds to wait for a pooled connection, a statement or a SQLite lock;
            past it the request answers 503.
        body_timeout: seconds a client has to send a whole request body (408 after).
        read_timeout: seconds hypercorn waits for any read on a connection.
        keep_alive_timeout: seconds an idle connection, or one still sending headers, is kept.
        rate_limit_requests: requests per second per user and process (0: no limit).
        rate_limit_records: log records per second per user and process (0: no limit).
        event_loop: ``auto`` (uvloop when installed, else asyncio), ``asyncio`` or ``uvloop``.
        http_server: ``hypercorn`` (the default) or ``uvicorn`` (an optional dependency).
    """

    host: str
    port: int
    workers: int
    database: DatabaseURL
    pool_size: int
    max_body_bytes: int
    max_records: int
    max_msg_chars: int
    auth_cache_seconds: float
    api_key: str | None
    log_level: str
    db_timeout: float = 10.0
    body_timeout: float = 30.0
    read_timeout: int = 30
    keep_alive_timeout: float = 5.0
    rate_limit_requests: int = 0
    rate_limit_records: int = 0
    event_loop: str = "auto"
    http_server: str = "hypercorn"

    def describe(self) -> str:
        """One start-up line: backend, where it is, and the listening URL; never a secret."""
        return (
            f"bot-logging-server: storage {self.database.scheme} at {self.database.masked()}, "
            f"listening on http://{self.host}:{self.port}"
            + (f" with {self.workers} workers" if self.workers > 1 else "")
        )


def _pick(name: str, flags: Mapping[str, object | None], environ: Mapping[str, str]) -> object:
    value = flags.get(name)
    if value is not None:
        return value
    env_name = ENVIRONMENT.get(name)
    if env_name and environ.get(env_name, "") != "":
        return environ[env_name]
    return DEFAULTS.get(name)


def _where(name: str) -> str:
    env_name = ENVIRONMENT.get(name)
    flag = "--" + name.replace("_", "-")
    return f"{flag} / {env_name}" if env_name else flag


def _number(
    name: str,
    flags: Mapping[str, object | None],
    environ: Mapping[str, str],
    kind: type[int] | type[float],
    low: float,
    high: float,
) -> int | float:
    raw = _pick(name, flags, environ)
    try:
        value = kind(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{_where(name)}: {raw!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{_where(name)}: {raw!r} is outside {low:g}..{high:g}")
    return value


def _database(flags: Mapping[str, object | None], environ: Mapping[str, str]) -> DatabaseURL:
    url = _pick("database_url", flags, environ)
    if url:
        return DatabaseURL.parse(str(url))
    user = _pick("db_user", flags, environ)
    if not user:
        return DatabaseURL(scheme="sqlite", path=os.path.abspath(str(DEFAULTS["sqlite_path"])))
    password = _pick("db_password", flags, environ) or ""
    name = str(_pick("db_name", flags, environ))
    if not name:
        raise ConfigError(f"{_where('db_name')}: the database name is empty")
    return DatabaseURL(
        scheme="mysql",
        host=str(_pick("db_host", flags, environ)),
        port=int(_number("db_port", flags, environ, int, 1, 65535)),
        user=str(user),
        password=str(password),
        name=name,
    )


def build_config(
    flags: Mapping[str, object | None] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Build the `Config` from `flags` (flag name -> value or None), then `environ`, then defaults.

    `flags` uses the `Config`/`quart_config` names (``port``, ``db_user``, ``database_url``...).
    Raises `ConfigError` naming the setting when a value is unusable.
    """
    flags = flags or {}
    environ = environ if environ is not None else {}
    log_level = str(_pick("log_level", flags, environ)).upper()
    if log_level not in _LOG_LEVELS:
        raise ConfigError(f"{_where('log_level')}: {log_level!r} is not one of {_LOG_LEVELS}")
    api_key = _pick("api_key", flags, environ)
    return Config(
        host=str(_pick("host", flags, environ)),
        port=int(_number("port", flags, environ, int, 0, 65535)),
        workers=int(_number("workers", flags, environ, int, 1, 64)),
        database=_database(flags, environ),
        pool_size=int(_number("pool_size", flags, environ, int, 1, 1000)),
        max_body_bytes=int(_number("max_body_bytes", flags, environ, int, 1024, 2**31)),
        max_records=int(_number("max_records", flags, environ, int, 1, 10_000_000)),
        max_msg_chars=int(_number("max_msg_chars", flags, environ, int, 1, 2**30)),
        auth_cache_seconds=float(_number("auth_cache_seconds", flags, environ, float, 0, 5)),
        api_key=str(api_key) if api_key else None,
        log_level=log_level,
        db_timeout=float(_number("db_timeout", flags, environ, float, 0.1, 3600)),
        body_timeout=float(_number("body_timeout", flags, environ, float, 0.1, 3600)),
        read_timeout=int(_number("read_timeout", flags, environ, int, 1, 3600)),
        keep_alive_timeout=float(_number("keep_alive_timeout", flags, environ, float, 0.1, 3600)),
        rate_limit_requests=int(_number("rate_limit_requests", flags, environ, int, 0, 10**9)),
        rate_limit_records=int(_number("rate_limit_records", flags, environ, int, 0, 10**12)),
        event_loop=_choice("event_loop", EVENT_LOOPS, flags, environ),
        http_server=_choice("http_server", HTTP_SERVERS, flags, environ),
    )


def _choice(
    name: str,
    choices: tuple[str, ...],
    flags: Mapping[str, object | None],
    environ: Mapping[str, str],
) -> str:
    value = str(_pick(name, flags, environ)).lower()
    if value not in choices:
        raise ConfigError(f"{_where(name)}: {value!r} is not one of {choices}")
    return value


def get_config() -> Config:
    """The current app's `Config`."""
    return current_app.config[APP_CONFIG_KEY]
