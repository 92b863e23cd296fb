"""The command line: ``python3 app.py`` (or ``bot-logging-server``).

Without a subcommand it serves; ``users ...`` manages users. Database options come first and
apply to both::

    python3 app.py                                    # serve on SQLite ./bot_logging.db
    python3 app.py --host 0.0.0.0 --port 5000 --user DBUSER --password DBPASS   # on MySQL
    python3 app.py users add alice --password secret  # prints md5("alice" + "secret")
    python3 app.py --database-url mysql://u:p@db:3306/logs users list

Every option has an environment fallback (see ``--help``); flags win over the environment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from bot_logging_server import accounts as user_admin
from bot_logging_server.config import Config, ConfigError, build_config
from bot_logging_server.config.quart_config import DEFAULTS, ENVIRONMENT
from bot_logging_server.storage import (
    Storage,
    StorageError,
    UserExists,
    UserNotFound,
    make_storage,
)

__all__ = ["CONFIG_ENV", "main"]

#: The environment variable through which worker processes receive the parent's flags.
CONFIG_ENV = "BOT_LOGGING_SERVER_FLAGS"

T = TypeVar("T")
log = logging.getLogger("bot_logging_server")


def _help(text: str, name: str, secret: bool = False) -> str:
    env = ENVIRONMENT.get(name)
    parts = [text]
    if env:
        parts.append(f"[env {env}")
        default = DEFAULTS.get(name)
        if default is not None and not secret:
            parts[-1] += f"; default {default}"
        parts[-1] += "]"
    return " ".join(parts)


_OPTIONS = [
    click.option("--host", help=_help("Address to listen on.", "host")),
    click.option("--port", type=int, help=_help("Port to listen on.", "port")),
    click.option(
        "--workers", type=int, help=_help("Server processes (hypercorn workers).", "workers")
    ),
    click.option(
        "--user",
        "db_user",
        help=_help("MySQL/MariaDB user: with it the server runs on MySQL.", "db_user"),
    ),
    click.option(
        "--password",
        "db_password",
        help=_help("MySQL/MariaDB password (never printed).", "db_password", secret=True),
    ),
    click.option("--db-host", help=_help("MySQL/MariaDB host.", "db_host")),
    click.option("--db-port", type=int, help=_help("MySQL/MariaDB port.", "db_port")),
    click.option(
        "--db-name",
        help=_help("MySQL/MariaDB database (created when missing, if allowed).", "db_name"),
    ),
    click.option(
        "--database-url",
        help=_help(
            "mysql://USER:PASSWORD@HOST:PORT/DB or sqlite:///path/to/file.db; wins over the "
            "other database options. Without it and without --user: SQLite in "
            "./bot_logging.db.",
            "database_url",
            secret=True,
        ),
    ),
    click.option("--pool-size", type=int, help=_help("MySQL connections per worker.", "pool_size")),
    click.option(
        "--max-body-bytes",
        type=int,
        help=_help("Largest request body; larger is refused with 413.", "max_body_bytes"),
    ),
    click.option(
        "--max-records",
        type=int,
        help=_help("Most records in one batch; more is refused with 413.", "max_records"),
    ),
    click.option(
        "--max-msg-chars",
        type=int,
        help=_help("Longer messages are stored cut and flagged truncated.", "max_msg_chars"),
    ),
    click.option(
        "--auth-cache-seconds",
        type=float,
        help=_help(
            "Seconds a verified token is trusted before re-reading the user (0-5).",
            "auth_cache_seconds",
        ),
    ),
    click.option(
        "--api-key",
        help=_help(
            "Enables POST /create_user with this X-Api-Key (prefer the env).",
            "api_key",
            secret=True,
        ),
    ),
    click.option(
        "--log-level",
        type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
        help=_help("The server's own log level.", "log_level"),
    ),
    click.option(
        "--db-timeout",
        type=float,
        help=_help(
            "Seconds to wait for a database connection, statement or SQLite lock; then 503.",
            "db_timeout",
        ),
    ),
    click.option(
        "--body-timeout",
        type=float,
        help=_help("Seconds a client has to send a whole request body; then 408.", "body_timeout"),
    ),
    click.option(
        "--read-timeout",
        type=int,
        help=_help("Seconds without any data before a connection is closed.", "read_timeout"),
    ),
    click.option(
        "--keep-alive-timeout",
        type=float,
        help=_help(
            "Seconds an idle connection, or one still sending its headers, is kept open.",
            "keep_alive_timeout",
        ),
    ),
    click.option(
        "--rate-limit-requests",
        type=int,
        help=_help(
            "Requests per second per user (per process); over it 429. 0: no limit.",
            "rate_limit_requests",
        ),
    ),
    click.option(
        "--rate-limit-records",
        type=int,
        help=_help(
            "Log records per second per user (per process); over it 429. 0: no limit.",
            "rate_limit_records",
        ),
    ),
    click.option(
        "--event-loop",
        type=click.Choice(["auto", "asyncio", "uvloop"], case_sensitive=False),
        help=_help("Event loop: auto uses uvloop when it is installed.", "event_loop"),
    ),
    click.option(
        "--http-server",
        type=click.Choice(["hypercorn", "uvicorn"], case_sensitive=False),
        help=_help(
            "HTTP server: hypercorn, or uvicorn (optional dependency; faster, see "
            "bench/RESULTS.md).",
            "http_server",
        ),
    ),
]


def _with_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@_with_options
@click.pass_context
def main(ctx: click.Context, **flags: Any) -> None:
    """Run the bot-logging-server (no subcommand), or manage its users.

    Storage: MySQL/MariaDB when --user (or --database-url mysql://...) is given, otherwise an
    embedded SQLite file. The schema is created and migrated at start-up.
    """
    try:
        config = build_config(flags, os.environ)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    ctx.obj = config
    if ctx.invoked_subcommand is None:
        serve(config, flags)


def serve(config: Config, flags: dict[str, Any]) -> None:
    """Serve the app (hypercorn, or uvicorn) until SIGINT/SIGTERM; exit 1 if start-up fails."""
    import hypercorn.asyncio
    import hypercorn.config
    import hypercorn.run
    from hypercorn.utils import LifespanFailureError

    from bot_logging_server import create_app
    from bot_logging_server.tail import shutdown_trigger

    logging.basicConfig(
        level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    hc = hypercorn.config.Config()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hc.bind = [f"{host}:{config.port}"]
    hc.graceful_timeout = 10.0
    # Slow clients: headers must arrive within keep_alive_timeout of the connection opening
    # (or of the previous answer), no read may wait longer than read_timeout, and the body
    # must be complete within body_timeout (Quart's BODY_TIMEOUT, set in create_app).
    hc.keep_alive_timeout = config.keep_alive_timeout
    hc.read_timeout = config.read_timeout
    # Route hypercorn's own messages through our logging set-up (no second handler).
    hc.errorlog = logging.getLogger("hypercorn.error")
    click.echo(config.describe(), err=False)
    use_uvloop = _wants_uvloop(config.event_loop)
    if config.http_server == "uvicorn":
        _serve_uvicorn(config, flags, use_uvloop)
        return
    try:
        if config.workers == 1:
            app = create_app(config)
            # The trigger also ends live tails at once (workers: at the graceful timeout).
            serving = hypercorn.asyncio.serve(app, hc, shutdown_trigger=shutdown_trigger(app))
            if use_uvloop:
                import uvloop

                uvloop.run(serving)
            else:
                asyncio.run(serving)
        else:
            hc.worker_class = "uvloop" if use_uvloop else "asyncio"
            # Workers are separate processes: hand them the same flags to rebuild the config.
            os.environ[CONFIG_ENV] = json.dumps(flags)
            hc.workers = config.workers
            hc.application_path = "bot_logging_server.asgi:app_from_environment()"
            sys.exit(hypercorn.run.run(hc))
    except LifespanFailureError as exc:
        # The database is not waited for: exit 1 at once, so that a supervisor (systemd,
        # docker) restarts the server, and say where it tried (never the password).
        log.error(
            "start-up failed (storage %s): %s", config.database.masked(), exc.__cause__ or exc
        )
        raise SystemExit(1) from None
    except StorageError as exc:
        log.error("start-up failed (storage %s): %s", config.database.masked(), exc)
        raise SystemExit(1) from None
    log.info("stopped")


def _serve_uvicorn(config: Config, flags: dict[str, Any], use_uvloop: bool) -> None:
    """Serve the same app with uvicorn (httptools when installed); exit 1 if start-up fails."""
    try:
        import uvicorn
    except ImportError:
        raise click.UsageError("--http-server uvicorn: uvicorn is not installed") from None
    from bot_logging_server import create_app

    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:
        http = "h11"
    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "loop": "uvloop" if use_uvloop else "asyncio",
        "http": http,
        "lifespan": "on",
        "access_log": False,
        # Keep our logging set-up (uvicorn's default config would replace it).
        "log_config": None,
        "log_level": config.log_level.lower(),
        "timeout_graceful_shutdown": 10,
        "timeout_keep_alive": max(1, round(config.keep_alive_timeout)),
    }
    try:
        if config.workers == 1:
            uvicorn.run(create_app(config), **options)
        else:
            # Workers are separate processes: hand them the same flags to rebuild the config.
            os.environ[CONFIG_ENV] = json.dumps(flags)
            uvicorn.run(
                "bot_logging_server.asgi:app_from_environment",
                factory=True,
                workers=config.workers,
                **options,
            )
    except SystemExit as exc:
        if exc.code not in (0, None):
            # uvicorn exits 3 when the app's start-up (storage open) failed; it logged why.
            log.error("start-up failed (see the messages above)")
            raise SystemExit(1) from None
        raise


def _wants_uvloop(choice: str) -> bool:
    """Whether to run on uvloop: ``uvloop`` demands it, ``auto`` takes it when installed."""
    if choice == "asyncio":
        return False
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if choice == "uvloop":
            raise click.UsageError("--event-loop uvloop: uvloop is not installed") from None
        return False
    return True


def _with_storage(config: Config, work: Callable[[Storage], Awaitable[T]]) -> T:
    async def run() -> T:
        storage = make_storage(config)
        await storage.open()
        try:
            return await work(storage)
        finally:
            await storage.close()

    try:
        return asyncio.run(run())
    except UserExists as exc:
        raise click.ClickException(f"user {exc.args[0]!r} exists already") from None
    except UserNotFound as exc:
        raise click.ClickException(f"no user named {exc.args[0]!r}") from None
    except StorageError as exc:
        raise click.ClickException(f"storage: {exc}") from None


def _existing_name(ctx: click.Context, param: click.Parameter, name: str) -> str:
    """A NAME that some user could have; anything else is a usage error.

    On MySQL the name column ignores trailing spaces in comparisons: without this check
    ``users disable "alice "`` would disable alice.
    """
    try:
        return user_admin.check_username(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.group()
def users() -> None:
    """Manage users: add, list, disable, enable, rotate, remove."""


@users.command("add")
@click.argument("name")
@click.option("--password", help="Token becomes md5(NAME + PASSWORD), as the client computes.")
@click.option("--tel-id", type=int, help="Telegram chat id of the user.")
@click.pass_obj
def users_add(config: Config, name: str, password: str | None, tel_id: int | None) -> None:
    """Create user NAME and print its token (shown this once; only a hash is stored)."""
    try:
        user_admin.check_new_user(name, password, tel_id)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    new = _with_storage(
        config, lambda storage: user_admin.create_user(storage, name, password, tel_id)
    )
    click.echo(f"created user {name!r}; its token (shown once):", err=True)
    click.echo(new.token)


@users.command("list")
@click.pass_obj
def users_list(config: Config) -> None:
    """List users: name, id, state, Telegram id, creation time (never tokens)."""
    rows = _with_storage(config, lambda storage: storage.list_users())
    click.echo(f"{'name':<24} {'id':>6}  {'state':<8} {'tel_id':<16} created (UTC)")
    for u in rows:
        state = "disabled" if u.disabled else "active"
        tel = "" if u.tel_id is None else str(u.tel_id)
        click.echo(
            f"{u.username:<24} {u.id:>6}  {state:<8} {tel:<16} {u.created_at:%Y-%m-%d %H:%M:%S}"
        )


@users.command("disable")
@click.argument("name", callback=_existing_name)
@click.pass_obj
def users_disable(config: Config, name: str) -> None:
    """Disable NAME: its token is refused (within 5 s in a running server)."""
    _with_storage(config, lambda storage: storage.set_disabled(name, True))
    click.echo(f"disabled user {name!r}")


@users.command("enable")
@click.argument("name", callback=_existing_name)
@click.pass_obj
def users_enable(config: Config, name: str) -> None:
    """Enable NAME again."""
    _with_storage(config, lambda storage: storage.set_disabled(name, False))
    click.echo(f"enabled user {name!r}")


@users.command("rotate")
@click.argument("name", callback=_existing_name)
@click.pass_obj
def users_rotate(config: Config, name: str) -> None:
    """Give NAME a new random token and print it once; the old one stops working."""
    token = _with_storage(config, lambda storage: user_admin.rotate_token(storage, name))
    click.echo(f"new token for {name!r} (shown once):", err=True)
    click.echo(token)


@users.command("remove")
@click.argument("name", callback=_existing_name)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (asked only on a terminal).")
@click.pass_obj
def users_remove(config: Config, name: str, yes: bool) -> None:
    """Remove NAME and all of its logs."""
    if not yes and sys.stdin.isatty():
        click.confirm(f"remove user {name!r} and all its logs?", abort=True)
    deleted = _with_storage(config, lambda storage: storage.remove_user(name))
    click.echo(f"removed user {name!r} and {deleted} log records")
