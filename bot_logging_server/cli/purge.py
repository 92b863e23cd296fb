"""``purge``: apply retention by hand (or delete records older than an age), then count."""

from __future__ import annotations

from datetime import timedelta

import click

from bot_logging_server.cli.common import existing_name, with_storage
from bot_logging_server.config import Config
from bot_logging_server.retention import Policy, Purger, PurgeReport, parse_duration
from bot_logging_server.storage import Storage

__all__ = ["PURGE_LOCK_WAIT", "purge"]

#: How long ``purge`` waits for a background purge of a running server to finish its pass.
PURGE_LOCK_WAIT = 60.0


@click.command("purge")
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
        existing_name(click.get_current_context(), None, username)  # type: ignore[arg-type]

    async def work(storage: Storage) -> PurgeReport | None:
        purger = Purger(storage, Policy.defaults(config), config.purge_batch)
        return await purger.run(
            username=username, older_than=age, dry_run=dry_run, wait=PURGE_LOCK_WAIT
        )

    report = with_storage(config, work)
    if report is None:
        raise click.ClickException(
            f"another process kept purging for {PURGE_LOCK_WAIT:g} s; try again later"
        )
    verb = "would delete" if dry_run else "deleted"
    for name, count in sorted(report.deleted.items()):
        click.echo(f"{name}: {verb} {count} records")
    click.echo(f"total: {verb} {report.total} records in {report.seconds:.1f} s")
