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

from bot_logging_server import users as user_admin
from bot_logging_server.config import SETTINGS, Config, ConfigError, Setting, build_config
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


def _option(setting: Setting) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option of `setting`: its flag, kind or choices, and help from the table."""
    kind: Any = setting.kind
    if setting.choices is not None:
        kind = click.Choice(setting.choices, case_sensitive=False)
    elif setting.kind is str:
        kind = None
    return click.option(setting.flag, setting.name, type=kind, help=setting.option_help())


def _with_settings(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give `func` one option per setting, in the table's order."""
    for setting in reversed(SETTINGS):
        func = _option(setting)(func)
    return func


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@_with_settings
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
