"""``alerts ...``: a user's alert rules (Telegram or a signed webhook): add, list, remove."""

from __future__ import annotations

import click

from bot_logging_server.alerts.rules import NewRule, RuleRefused, add_rule, describe
from bot_logging_server.cli.common import existing_name, optional_name, with_storage
from bot_logging_server.config import Config
from bot_logging_server.schemas.alerts import ALERT_CHANNELS, load_alert_rule
from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.storage import AlertRule, AlertRuleLimit, Storage, UserNotFound

__all__ = ["alerts"]


@click.group()
def alerts() -> None:
    """Manage alert rules: add, list, remove.

    A rule sends one message per --alert-window (60 s) with the count and the first records
    of a user's records that match it, to Telegram (the user's tel_id) or to a webhook
    (signed with a secret shown once). A running server picks up a change within 2 s.
    """


@alerts.command("add")
@click.argument("user", callback=existing_name)
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

    new = with_storage(config, work)
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
@click.argument("user", required=False, callback=optional_name)
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

    rows = with_storage(config, work)
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
    if not with_storage(config, lambda storage: storage.remove_alert_rule(rule_id)):
        raise click.ClickException(f"no alert rule {rule_id}")
    click.echo(f"removed alert rule {rule_id}")
