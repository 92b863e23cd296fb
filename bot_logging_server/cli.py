"""The command line: ``python3 app.py`` (or ``bot-logging-server``).

Without a subcommand it serves; ``users ...`` manages users, ``keys ...`` their ingest
keys, ``alerts ...`` their alert rules, and ``purge`` applies retention by hand. Database
options come first and apply to all::

    python3 app.py                                    # serve on SQLite ./bot_logging.db
    python3 app.py --host 0.0.0.0 --port 5000 --user DBUSER --password DBPASS   # on MySQL
    python3 app.py users add alice --password secret  # prints md5("alice" + "secret")
    python3 app.py keys add alice shop-site           # prints a new ingest key, once
    python3 app.py --database-url mysql://u:p@db:3306/logs users list
    python3 app.py users set-retention alice --max-age 30d --max-rows 1000000
    python3 app.py purge --older-than 90d --dry-run   # counts what would go
    python3 app.py alerts add alice --channel telegram --level error --process billing

Every option has an environment fallback (see ``--help``); flags win over the environment.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import click

from bot_logging_server import accounts as user_admin
from bot_logging_server import server
from bot_logging_server.alerts.rules import NewRule, RuleRefused, add_rule, describe
from bot_logging_server.config import SETTINGS, Config, ConfigError, Setting, build_config
from bot_logging_server.retention import (
    Policy,
    Purger,
    PurgeReport,
    format_duration,
    parse_duration,
)
from bot_logging_server.schemas.alerts import ALERT_CHANNELS, load_alert_rule
from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.storage import (
    AlertRule,
    AlertRuleLimit,
    KeyExists,
    KeyNotFound,
    RetentionRule,
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
    elif setting.kind is str or setting.words:
        kind = None  # text; words such as "auto" are turned into numbers by build_config
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
    """Run `work` on the opened storage; a failure is one ``Error:`` line and exit 1.

    When the storage cannot be opened, a driver may leave a thread behind that would keep
    the process alive for ever (`server.exit_process` ends it regardless).
    """

    async def run() -> T:
        storage = make_storage(config)
        await storage.open()
        try:
            return await work(storage)
        finally:
            await storage.close()

    threads_before = set(threading.enumerate())
    try:
        return asyncio.run(run())
    except UserExists as exc:
        message = f"user {exc.args[0]!r} exists already"
    except UserNotFound as exc:
        message = f"no user named {exc.args[0]!r}"
    except KeyExists as exc:
        message = f"key {exc.args[0]!r} exists already"
    except KeyNotFound as exc:
        message = f"no key named {exc.args[0]!r}"
    except StorageError as exc:
        message = f"storage: {server.failure_reason(exc)} ({config.database.masked()})"
    click.echo(f"Error: {message}", err=True)
    server.exit_process(1, threads_before)


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
    new = _with_storage(
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


# A group chat's id is negative: "-100200" is the id, not an option.
@users.command("set-tel-id", context_settings={"ignore_unknown_options": True})
@click.argument("name", callback=_existing_name)
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
    _with_storage(config, lambda storage: user_admin.set_tel_id(storage, name, value))
    click.echo(f"tel_id of {name!r}: {'none' if value is None else value}")


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
    """Remove NAME and all of its logs, usage events, sessions and ingest keys."""
    if not yes and sys.stdin.isatty():
        click.confirm(f"remove user {name!r} and all its logs, events and keys?", abort=True)
    deleted = _with_storage(config, lambda storage: user_admin.remove_user(storage, name))
    click.echo(f"removed user {name!r} and {deleted} log records")


#: How long ``purge`` waits for a background purge of a running server to finish its pass.
PURGE_LOCK_WAIT = 60.0


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
@click.argument("name", callback=_existing_name)
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

    rule, policy = _with_storage(config, work)
    click.echo(f"retention of {name!r}: {policy.describe()}")
    own_age = None if rule is None else rule.max_age_seconds
    own_rows = None if rule is None else rule.max_rows
    click.echo(
        "  own values: max age "
        + ("default" if own_age is None else format_duration(own_age) if own_age else "none")
        + ", max rows "
        + ("default" if own_rows is None else str(own_rows) if own_rows else "none")
    )


@main.command("purge")
@click.option(
    "--older-than",
    help="Delete records older than this (30d, 12h, 2w) instead of "
    "applying the retention settings.",
)
@click.option("--user", "username", help="Only this user's records.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.pass_obj
def purge(config: Config, older_than: str | None, username: str | None, dry_run: bool) -> None:
    """Apply retention now (or delete records older than --older-than) and print the counts.

    Deletes in small transactions, like the server's background purge, and waits for a
    running server's pass to finish first (one purge at a time).
    """
    age = None
    if older_than is not None:
        try:
            seconds = parse_duration(older_than)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--older-than") from None
        if seconds == 0:
            raise click.BadParameter("must be longer than 0", param_hint="--older-than")
        age = timedelta(seconds=seconds)
    if username is not None:
        _existing_name(click.get_current_context(), None, username)  # type: ignore[arg-type]

    async def work(storage: Storage) -> PurgeReport | None:
        purger = Purger(storage, Policy.defaults(config), config.purge_batch)
        return await purger.run(
            username=username, older_than=age, dry_run=dry_run, wait=PURGE_LOCK_WAIT
        )

    report = _with_storage(config, work)
    if report is None:
        raise click.ClickException(
            f"another process kept purging for {PURGE_LOCK_WAIT:g} s; try again later"
        )
    verb = "would delete" if dry_run else "deleted"
    for name, count in sorted(report.deleted.items()):
        click.echo(f"{name}: {verb} {count} records")
    click.echo(f"total: {verb} {report.total} records in {report.seconds:.1f} s")


def _key_name(ctx: click.Context, param: click.Parameter, name: str) -> str:
    """A key NAME that follows the rule (that of user names); anything else is a usage error."""
    try:
        return user_admin.check_key_name(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _optional_name(ctx: click.Context, param: click.Parameter, name: str | None) -> str | None:
    """`_existing_name` for an optional argument."""
    return None if name is None else _existing_name(ctx, param, name)


@main.group()
def keys() -> None:
    """Manage ingest keys: add, list, disable, enable, remove.

    An ingest key may only write usage events (POST /api/events and the event interfaces):
    it never reads anything and never writes logs, so it may be embedded in a web page. Key
    names are unique across the server.
    """


@keys.command("add")
@click.argument("user", callback=_existing_name)
@click.argument("name", callback=_key_name)
@click.pass_obj
def keys_add(config: Config, user: str, name: str) -> None:
    """Create key NAME for USER and print it (shown this once; only a hash is stored)."""
    new = _with_storage(config, lambda storage: user_admin.create_key(storage, user, name))
    click.echo(f"created key {name!r} for user {user!r}; the key (shown once):", err=True)
    click.echo(new.value)


@keys.command("list")
@click.argument("user", required=False, callback=_optional_name)
@click.pass_obj
def keys_list(config: Config, user: str | None) -> None:
    """List keys (of USER only, when given): name, owner, state, creation time (never keys)."""
    rows = _with_storage(config, lambda storage: user_admin.list_keys(storage, user))
    click.echo(f"{'name':<24} {'user':<24} {'state':<8} created (UTC)")
    for k in rows:
        state = "disabled" if k.disabled else "user-off" if k.owner_disabled else "active"
        click.echo(f"{k.name:<24} {k.username:<24} {state:<8} {k.created_at:%Y-%m-%d %H:%M:%S}")


@keys.command("disable")
@click.argument("name", callback=_key_name)
@click.pass_obj
def keys_disable(config: Config, name: str) -> None:
    """Disable key NAME: refused within --auth-cache-seconds in a running server."""
    _with_storage(config, lambda storage: user_admin.set_key_disabled(storage, name, True))
    click.echo(f"disabled key {name!r}")


@keys.command("enable")
@click.argument("name", callback=_key_name)
@click.pass_obj
def keys_enable(config: Config, name: str) -> None:
    """Enable key NAME again."""
    _with_storage(config, lambda storage: user_admin.set_key_disabled(storage, name, False))
    click.echo(f"enabled key {name!r}")


@keys.command("remove")
@click.argument("name", callback=_key_name)
@click.pass_obj
def keys_remove(config: Config, name: str) -> None:
    """Remove key NAME (the events it wrote stay with its user)."""
    _with_storage(config, lambda storage: user_admin.remove_key(storage, name))
    click.echo(f"removed key {name!r}")


@main.group()
def alerts() -> None:
    """Manage alert rules: add, list, remove.

    A rule sends one message per --alert-window (60 s) with the count and the first records
    of a user's records that match it, to Telegram (the user's tel_id) or to a webhook
    (signed with a secret shown once). A running server picks up a change within 2 s.
    """


@alerts.command("add")
@click.argument("user", callback=_existing_name)
@click.option("--channel", required=True, type=click.Choice(ALERT_CHANNELS), help="Where to.")
@click.option("--url", help="The webhook's http(s) URL (webhook only).")
@click.option("--level", help="Minimum level, a name or a number (default: error).")
@click.option("--process", "--p-name", "p_name", help="Only this process name (p_name).")
@click.option(
    "--logger",
    "--p-description",
    "p_description",
    help="Only this logger (p_description) and its children.",
)
@click.option("--text", help="Only messages holding this text (any letter case).")
@click.pass_obj
def alerts_add(config: Config, user: str, **options: str | None) -> None:
    """Add an alert rule for USER; a webhook's signing secret is printed this once."""
    try:
        spec = load_alert_rule(options, "option")
    except ValidationFailed as exc:
        raise click.UsageError(exc.detail) from None

    async def work(storage: Storage) -> NewRule | str:
        account = await storage.get_user(user)
        if account is None:
            raise UserNotFound(user)
        try:
            return await add_rule(storage, account, **spec)
        except (RuleRefused, AlertRuleLimit) as exc:
            return str(exc) if isinstance(exc, RuleRefused) else f"at most {exc} rules per user"

    new = _with_storage(config, work)
    if isinstance(new, str):
        raise click.ClickException(new)
    where = new.rule.url if new.rule.channel == "webhook" else "the user's tel_id"
    summary = f"alert {new.rule.id} for {user!r}: {describe(new.rule)} -> {new.rule.channel}"
    if new.secret is None:
        click.echo(f"created {summary} ({where})")
        return
    click.echo(f"created {summary} {where}; its signing secret (shown once):", err=True)
    click.echo(new.secret)


@alerts.command("list")
@click.argument("user", required=False, callback=_optional_name)
@click.pass_obj
def alerts_list(config: Config, user: str | None) -> None:
    """List alert rules (of USER only, when given) with their last delivery and pending count."""

    async def work(storage: Storage) -> list[tuple[str, AlertRule]]:
        users = {u.id: u.username for u in await storage.list_users()}
        account = None if user is None else await storage.get_user(user)
        if user is not None and account is None:
            raise UserNotFound(user)
        rules = await storage.alert_rules(None if account is None else account.id)
        return [(users.get(rule.user_id, "?"), rule) for rule in rules]

    rows = _with_storage(config, work)
    click.echo(f"{'id':>5}  {'user':<20} {'channel':<8} {'last':<9} {'pending':>7}  rule")
    for name, rule in rows:
        target = f" -> {rule.url}" if rule.url else ""
        click.echo(
            f"{rule.id:>5}  {name:<20} {rule.channel:<8} {rule.last_status or '-':<9} "
            f"{rule.pending:>7}  {describe(rule)}{target}"
        )
        if rule.last_error:
            click.echo(f"{'':>7}last error: {rule.last_error}")


@alerts.command("remove")
@click.argument("rule_id", metavar="ID", type=int)
@click.pass_obj
def alerts_remove(config: Config, rule_id: int) -> None:
    """Remove alert rule ID (see list) and its messages not sent yet."""
    if not _with_storage(config, lambda storage: storage.remove_alert_rule(rule_id)):
        raise click.ClickException(f"no alert rule {rule_id}")
    click.echo(f"removed alert rule {rule_id}")
