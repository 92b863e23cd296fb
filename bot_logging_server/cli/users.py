"""``users ...``: add, list, disable, enable, set-tel-id, rotate, remove, set-retention."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from bot_logging_server import accounts as user_admin
from bot_logging_server.cli.common import existing_name, with_storage
from bot_logging_server.config import Config
from bot_logging_server.retention import Policy, format_duration, parse_duration
from bot_logging_server.storage import RetentionRule, Storage, UserNotFound

__all__ = ["users"]


@click.group()
def users() -> None:
    """Manage users: add, list, disable, enable, rotate, remove, set-tel-id, set-retention."""


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
    new = with_storage(
        config, lambda storage: user_admin.create_user(storage, name, password, tel_id)
    )
    # Which database: run from another directory, the default SQLite file is another file.
    click.echo(
        f"created user {new.user.username!r} in {config.database.masked()}; "
        "its token (shown once):",
        err=True,
    )
    click.echo(new.token)


@users.command("list")
@click.pass_obj
def users_list(config: Config) -> None:
    """List users: name, id, state, Telegram id, creation time (never tokens)."""
    rows = with_storage(config, lambda storage: storage.list_users())
    click.echo(f"{'name':<24} {'id':>6}  {'state':<8} {'tel_id':<16} created (UTC)")
    for u in rows:
        state = "disabled" if u.disabled else "active"
        tel = "" if u.tel_id is None else str(u.tel_id)
        click.echo(
            f"{u.username:<24} {u.id:>6}  {state:<8} {tel:<16} {u.created_at:%Y-%m-%d %H:%M:%S}"
        )


@users.command("disable")
@click.argument("name", callback=existing_name)
@click.pass_obj
def users_disable(config: Config, name: str) -> None:
    """Disable NAME: its token is refused (within 5 s in a running server)."""
    with_storage(config, lambda storage: user_admin.set_disabled(storage, name, True))
    click.echo(f"disabled user {name!r}")


@users.command("enable")
@click.argument("name", callback=existing_name)
@click.pass_obj
def users_enable(config: Config, name: str) -> None:
    """Enable NAME again."""
    with_storage(config, lambda storage: user_admin.set_disabled(storage, name, False))
    click.echo(f"enabled user {name!r}")


# A group chat's id is negative: "-100200" is the id, not an option.
@users.command("set-tel-id", context_settings={"ignore_unknown_options": True})
@click.argument("name", callback=existing_name)
@click.argument("tel_id", metavar="TEL_ID|none")
@click.pass_obj
def users_set_tel_id(config: Config, name: str, tel_id: str) -> None:
    """Set the Telegram chat id NAME's alerts go to ('none' clears it)."""
    try:
        value = None if tel_id.strip().lower() == "none" else int(tel_id)
        user_admin.check_tel_id(value)
    except ValueError as exc:
        problem = f"{tel_id!r} is not an integer" if "int()" in str(exc) else str(exc)
        raise click.BadParameter(problem, param_hint="TEL_ID") from None
    with_storage(config, lambda storage: user_admin.set_tel_id(storage, name, value))
    click.echo(f"tel_id of {name!r}: {'none' if value is None else value}")


@users.command("rotate")
@click.argument("name", callback=existing_name)
@click.pass_obj
def users_rotate(config: Config, name: str) -> None:
    """Give NAME a new random token and print it once; the old one stops working."""
    token = with_storage(config, lambda storage: user_admin.rotate_token(storage, name))
    click.echo(f"new token for {name!r} (shown once):", err=True)
    click.echo(token)


@users.command("remove")
@click.argument("name", callback=existing_name)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (asked only on a terminal).")
@click.pass_obj
def users_remove(config: Config, name: str, yes: bool) -> None:
    """Remove NAME and all of its logs, usage events, sessions and ingest keys."""
    if not yes and sys.stdin.isatty():
        click.confirm(f"remove user {name!r} and all its logs, events and keys?", abort=True)
    deleted = with_storage(config, lambda storage: user_admin.remove_user(storage, name))
    click.echo(f"removed user {name!r} and {deleted} log records")


def _limit(text: str | None, parse: Callable[[str], int], what: str) -> int | bool | None:
    """An option of set-retention: False when not given, None for ``default``, 0 for
    ``none``/``0``, else `parse`'s value; `click.BadParameter` names `what` otherwise."""
    if text is None:
        return False
    word = text.strip().lower()
    if word == "default":
        return None
    if word in ("none", "0"):
        return 0
    try:
        value = parse(word)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=what) from None
    if value < 0:
        raise click.BadParameter("must be positive", param_hint=what)
    return value


@users.command("set-retention")
@click.argument("name", callback=existing_name)
@click.option(
    "--max-age",
    help="Keep records this long: 30d, 12h, 2w; 'none' keeps them forever; 'default' "
    "follows --retention-days.",
)
@click.option(
    "--max-rows",
    help="Keep at most this many newest records; 'none': no limit; 'default' follows "
    "--retention-rows.",
)
@click.pass_obj
def users_set_retention(
    config: Config, name: str, max_age: str | None, max_rows: str | None
) -> None:
    """Set (or, without options, show) how long NAME's records are kept."""
    age = _limit(max_age, parse_duration, "--max-age")
    rows = _limit(max_rows, int, "--max-rows")

    async def work(storage: Storage) -> tuple[RetentionRule | None, Policy]:
        user = await storage.get_user(name)
        if user is None:
            raise UserNotFound(name)
        rule = (await storage.retention_rules()).get(user.id)
        if age is not False or rows is not False:
            new_age = (rule.max_age_seconds if rule else None) if age is False else age
            new_rows = (rule.max_rows if rule else None) if rows is False else rows
            await storage.set_retention(user.id, new_age, new_rows)  # type: ignore[arg-type]
            rule = (await storage.retention_rules()).get(user.id)
        return rule, Policy.defaults(config).for_user(rule)

    rule, policy = with_storage(config, work)
    click.echo(f"retention of {name!r}: {policy.describe()}")
    own_age = None if rule is None else rule.max_age_seconds
    own_rows = None if rule is None else rule.max_rows
    click.echo(
        "  own values: max age "
        + ("default" if own_age is None else format_duration(own_age) if own_age else "none")
        + ", max rows "
        + ("default" if own_rows is None else str(own_rows) if own_rows else "none")
    )
