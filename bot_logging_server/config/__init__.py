"""The server's configuration: one frozen `Config`, built by one pure function.

Every setting is declared once, in `bot_logging_server.config.settings.SETTINGS`: its flag,
environment variable, default, kind, range or choices, help text and whether it is secret.
`build_config(flags, environ)` takes the command-line flags (``None`` where a flag was not
given) and an environment mapping, and fills every field from the flag, else the setting's
environment variable, else its default, checked against the setting's range or choices.
Nothing here reads the process environment by itself, so tests pass their own mapping.

Storage is chosen by one URL: ``--database-url`` when given; otherwise MySQL built from
``--user/--password/--db-host/--db-port/--db-name`` when a database user is given; otherwise
SQLite in ``bot_logging.db`` in the working directory. A MySQL URL, and ``--db-host``, may
list several hosts (the nodes of a Galera cluster): ``mysql://u:pw@h1:3306,h2:3306/db``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from urllib.parse import quote, unquote, urlsplit

from quart import current_app

from bot_logging_server.config.hosts import HostPort, parse_hosts
from bot_logging_server.config.settings import SECRETS, SETTINGS, SQLITE_PATH, Setting, setting

__all__ = [
    "APP_CONFIG_KEY",
    "SECRETS",
    "SETTINGS",
    "Config",
    "ConfigError",
    "DatabaseURL",
    "HostPort",
    "Setting",
    "build_config",
    "get_config",
]

#: The key under which the app keeps its `Config` in ``app.config``.
APP_CONFIG_KEY = "BOT_LOGGING_SERVER"

#: The settings that only feed `Config.database` (through `DatabaseURL`), not a field of
#: their own; read only when the URL is built from them.
_DATABASE_SETTINGS = frozenset(
    {"database_url", "db_user", "db_password", "db_host", "db_port", "db_name"}
)


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

    A MySQL URL may list several hosts, ``mysql://user:pw@h1:p1,h2:p2/name`` (the nodes of
    a Galera cluster, in order of preference): `hosts` holds them all, `host` and `port`
    the first. Given only `host` and `port`, `hosts` is that one address.
    """

    scheme: str
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = field(default="", repr=False)
    name: str = ""
    path: str = ""
    hosts: tuple[HostPort, ...] = ()

    def __post_init__(self) -> None:
        """Keep `hosts` and (`host`, `port`) in step: either may be given."""
        if self.hosts:
            object.__setattr__(self, "host", self.hosts[0].host)
            object.__setattr__(self, "port", self.hosts[0].port)
        elif self.scheme == "mysql":
            object.__setattr__(self, "hosts", (HostPort(self.host, self.port),))

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
            # Split by hand: urlsplit reads no host list (h1:p1,h2:p2).
            userinfo, _, host_list = parts.netloc.rpartition("@")
            username, _, password = userinfo.partition(":")
            name = unquote(parts.path.lstrip("/"))
            if not host_list or not username or not name:
                raise ConfigError(
                    "database URL: a MySQL URL looks like mysql://user:password@host:port/dbname"
                )
            try:
                hosts = parse_hosts(host_list)
            except ConfigError:
                # The message would quote the entry; the URL may be a secret.
                raise ConfigError(
                    "database URL: the hosts must be host:port, several separated by commas"
                ) from None
            return cls(
                scheme="mysql",
                user=unquote(username),
                password=unquote(password),
                name=name,
                hosts=hosts,
            )
        raise ConfigError(
            f"database URL: unknown scheme {scheme!r} (use mysql://... or sqlite:///...)"
        )

    def masked(self) -> str:
        """The URL as it may be printed: the password replaced by ``***``."""
        if self.scheme == "sqlite":
            return f"sqlite:///{self.path}"
        secret = ":***" if self.password else ""
        hosts = ",".join(str(address) for address in self.hosts)
        return f"mysql://{quote(self.user, safe='')}{secret}@{hosts}/{self.name}"


@dataclass(frozen=True)
class Config:
    """Every setting of one server process. Build it with `build_config`.

    Each field is the setting of the same name in `SETTINGS` (listed below with its help
    text), except `database`, the storage URL parsed from the database settings.
    """

    host: str
    port: int
    workers: int
    database: DatabaseURL
    pool_size: int
    write_pool_size: int
    max_body_bytes: int
    max_buffered_bytes: int
    max_concurrent_requests: int
    max_connections: int
    max_records: int
    max_msg_chars: int
    auth_cache_seconds: float
    auth_failures_per_source: int
    auth_failures_per_user: int
    api_key: str | None
    log_level: str
    db_timeout: float
    body_timeout: float
    read_timeout: int
    keep_alive_timeout: float
    rate_limit_requests: int
    rate_limit_records: int
    max_reads_per_user: int
    max_tails_per_user: int
    event_loop: str
    http_server: str
    metrics_port: int
    metrics_host: str
    log_format: str
    access_log: str
    retention_days: float
    retention_rows: int
    purge_interval: float
    purge_batch: int
    keyless_events_user: str | None
    stats_port: int
    alert_window: float
    alert_retry: float
    telegram_token: str | None
    telegram_api_url: str

    def describe(self) -> str:
        """One start-up line: backend, where it is, and the listening URL; never a secret."""
        return (
            f"bot-logging-server: storage {self.database.scheme} at {self.database.masked()}, "
            f"listening on http://{self.host}:{self.port}"
            + (f" with {self.workers} workers" if self.workers > 1 else "")
            + (
                f", metrics on http://{self.metrics_host}:{self.metrics_port}/metrics"
                if self.metrics_port
                else ""
            )
            + (f", also on port {self.stats_port} (ws://)" if self.stats_port else "")
        )

    def __repr__(self) -> str:
        """The fields, every secret (`SECRETS`) shown as ``***`` when it is set."""
        shown = []
        for item in fields(self):
            value = getattr(self, item.name)
            text = "***" if item.name in SECRETS and value is not None else repr(value)
            shown.append(f"{item.name}={text}")
        return f"Config({', '.join(shown)})"


#: The settings that are `Config` fields, in the table's order.
_FIELD_SETTINGS = tuple(s for s in SETTINGS if s.name not in _DATABASE_SETTINGS)

Config.__doc__ = (
    (Config.__doc__ or "")
    + "\n    Attributes:\n"
    + "".join(f"        {s.name}: {s.help}\n" for s in _FIELD_SETTINGS)
)


def _raw(item: Setting, flags: Mapping[str, object | None], environ: Mapping[str, str]) -> object:
    """The flag if given, else the environment variable if not empty, else the default."""
    value = flags.get(item.name)
    if value is not None:
        return value
    if environ.get(item.env, "") != "":
        return environ[item.env]
    return item.default


def _shown(item: Setting, raw: object) -> str:
    """How an error quotes a value: never a secret's."""
    return "the value" if item.secret else repr(raw)


def _value(item: Setting, flags: Mapping[str, object | None], environ: Mapping[str, str]) -> object:
    """The setting's value, converted to its kind and checked; `ConfigError` names it."""
    raw = _raw(item, flags, environ)
    if item.kind is str:
        return _text(item, raw)
    for word, compute in item.words:
        if isinstance(raw, str) and raw.strip().lower() == word:
            raw = compute()
    try:
        value = item.kind(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        also = "".join(f" or {word!r}" for word, _ in item.words)
        raise ConfigError(f"{item.where}: {_shown(item, raw)} is not a number{also}") from None
    if item.range_or_choices is not None:
        low, high = item.range_or_choices
        if not low <= value <= high:  # type: ignore[operator]
            raise ConfigError(f"{item.where}: {_shown(item, raw)} is outside {low:g}..{high:g}")
    return value


def _text(item: Setting, raw: object) -> str | None:
    """A text setting's value: ``None`` when unset, else one of its choices if it has any."""
    if raw is None or (raw == "" and item.default is None):
        return None  # unset (an empty value counts as not given)
    choices = item.choices
    if choices is None:
        return str(raw)
    # Any case is accepted; the value is stored as the table writes it.
    text = str(raw)
    for choice in choices:
        if text.lower() == choice.lower():
            return choice
    # The error quotes the value in the case the choices are written in.
    shown = text.upper() if choices[0].isupper() else text.lower()
    raise ConfigError(f"{item.where}: {_shown(item, shown)} is not one of {choices}")


def _database(flags: Mapping[str, object | None], environ: Mapping[str, str]) -> DatabaseURL:
    """The storage URL: ``--database-url``, else MySQL when a user is given, else SQLite."""

    def get(name: str) -> object:
        return _value(setting(name), flags, environ)

    url = get("database_url")
    if url:
        return DatabaseURL.parse(str(url))
    user = get("db_user")
    if not user:
        return DatabaseURL(scheme="sqlite", path=os.path.abspath(SQLITE_PATH))
    password = get("db_password") or ""
    name = str(get("db_name"))
    if not name:
        raise ConfigError(f"{setting('db_name').where}: the database name is empty")
    port = int(get("db_port"))  # type: ignore[call-overload]
    try:
        hosts = parse_hosts(str(get("db_host")), default_port=port)
    except ConfigError as exc:
        raise ConfigError(f"{setting('db_host').where}: {exc}") from None
    return DatabaseURL(
        scheme="mysql", user=str(user), password=str(password), name=name, hosts=hosts
    )


def build_config(
    flags: Mapping[str, object | None] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Build the `Config` from `flags` (name -> value or None), then `environ`, then defaults.

    `flags` uses the names of `SETTINGS` (``port``, ``db_user``, ``database_url``...).
    Raises `ConfigError` naming the setting (flag and environment variable) when a value is
    unusable; a secret's value is never repeated. The database settings are read only when
    the storage URL is built from them.
    """
    flags = flags or {}
    environ = environ if environ is not None else {}
    values = {item.name: _value(item, flags, environ) for item in _FIELD_SETTINGS}
    return Config(database=_database(flags, environ), **values)  # type: ignore[arg-type]


def get_config() -> Config:
    """The current app's `Config`."""
    return current_app.config[APP_CONFIG_KEY]
