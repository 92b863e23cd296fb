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
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from bot_logging_server import accounts as user_admin
from bot_logging_server import server
from bot_logging_server.config import SETTINGS, Config, ConfigError, Setting, build_config
from bot_logging_server.storage import (
    Storage,
    StorageError,
    UserExists,
    UserNotFound,
    make_storage,
)

__all__ = ["main"]

T = TypeVar("T")


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
        ctx.obj = config
        if ctx.invoked_subcommand is None:
            server.serve(config, flags)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


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
    """Create user NAME and print its token (shown this once; only a hash is stored).

    NAME is stored in Unicode NFKC form (full-width letters become ASCII, accents one code
    point) and may not hold invisible format characters such as zero-width spaces.
    """
    try:
        user_admin.check_new_user(name, password, tel_id)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    new = _with_storage(
        config, lambda storage: user_admin.create_user(storage, name, password, tel_id)
    )
    click.echo(f"created user {new.user.username!r}; its token (shown once):", err=True)
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
    _with_storage(config, lambda storage: user_admin.set_disabled(storage, name, True))
    click.echo(f"disabled user {name!r}")


@users.command("enable")
@click.argument("name", callback=_existing_name)
@click.pass_obj
def users_enable(config: Config, name: str) -> None:
    """Enable NAME again."""
    _with_storage(config, lambda storage: user_admin.set_disabled(storage, name, False))
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
    deleted = _with_storage(config, lambda storage: user_admin.remove_user(storage, name))
    click.echo(f"removed user {name!r} and {deleted} log records")
