"""``keys ...``: a user's ingest keys (write usage events only): add, list, disable, enable,
remove."""

from __future__ import annotations

import click

from bot_logging_server import accounts as user_admin
from bot_logging_server.cli.common import existing_name, optional_name, with_storage
from bot_logging_server.config import Config

__all__ = ["keys"]


def _key_name(ctx: click.Context, param: click.Parameter, name: str) -> str:
    """A key NAME that follows the rule (that of user names); anything else is a usage error."""
    try:
        return user_admin.check_key_name(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group()
def keys() -> None:
    """Manage ingest keys: add, list, disable, enable, remove.

    An ingest key may only write usage events (POST /api/events and the event interfaces):
    it never reads anything and never writes logs, so it may be embedded in a web page. Key
    names are unique across the server.
    """


@keys.command("add")
@click.argument("user", callback=existing_name)
@click.argument("name", callback=_key_name)
@click.pass_obj
def keys_add(config: Config, user: str, name: str) -> None:
    """Create key NAME for USER and print it (shown this once; only a hash is stored)."""
    new = with_storage(config, lambda storage: user_admin.create_key(storage, user, name))
    click.echo(f"created key {name!r} for user {user!r}; the key (shown once):", err=True)
    click.echo(new.value)


@keys.command("list")
@click.argument("user", required=False, callback=optional_name)
@click.pass_obj
def keys_list(config: Config, user: str | None) -> None:
    """List keys (of USER only, when given): name, owner, state, creation time (never keys)."""
    rows = with_storage(config, lambda storage: user_admin.list_keys(storage, user))
    click.echo(f"{'name':<24} {'user':<24} {'state':<8} created (UTC)")
    for k in rows:
        state = "disabled" if k.disabled else "user-off" if k.owner_disabled else "active"
        click.echo(f"{k.name:<24} {k.username:<24} {state:<8} {k.created_at:%Y-%m-%d %H:%M:%S}")


@keys.command("disable")
@click.argument("name", callback=_key_name)
@click.pass_obj
def keys_disable(config: Config, name: str) -> None:
    """Disable key NAME: refused within --auth-cache-seconds in a running server."""
    with_storage(config, lambda storage: user_admin.set_key_disabled(storage, name, True))
    click.echo(f"disabled key {name!r}")


@keys.command("enable")
@click.argument("name", callback=_key_name)
@click.pass_obj
def keys_enable(config: Config, name: str) -> None:
    """Enable key NAME again."""
    with_storage(config, lambda storage: user_admin.set_key_disabled(storage, name, False))
    click.echo(f"enabled key {name!r}")


@keys.command("remove")
@click.argument("name", callback=_key_name)
@click.pass_obj
def keys_remove(config: Config, name: str) -> None:
    """Remove key NAME (the events it wrote stay with its user)."""
    with_storage(config, lambda storage: user_admin.remove_key(storage, name))
    click.echo(f"removed key {name!r}")
