"""``search-index on|off|status``: the word index of messages behind fast long searches."""

from __future__ import annotations

import time

import click

from bot_logging_server.cli.common import with_storage
from bot_logging_server.config import Config
from bot_logging_server.storage import Storage

__all__ = ["search_index"]


@click.command("search-index")
@click.argument("state", type=click.Choice(["on", "off", "status"]), default="status")
@click.pass_obj
def search_index(config: Config, state: str) -> None:
    """Turn the word index of log messages on or off, or say whether it is on (the default).

    With it on, a search over a long range finds a rare word without reading every record
    (at a million records: a quarter of a second instead of seconds); every record stored
    costs the database more (15-35 % fewer records a second at peak on MariaDB). Building
    it reads every record once, and writes wait meanwhile (about 7 s per 2 million records
    on MariaDB). Running servers use the change from their next search.
    """

    async def work(storage: Storage) -> tuple[bool, float]:
        started = time.monotonic()
        if state == "status":
            return await storage.search_index_on(), 0.0
        changed = await storage.set_search_index(state == "on")
        return changed, time.monotonic() - started

    answer, seconds = with_storage(config, work)
    where = config.database.masked()
    if state == "status":
        click.echo(f"search index: {'on' if answer else 'off'} ({where})")
    elif answer:
        done = "built" if state == "on" else "dropped"
        click.echo(f"search index: {state} ({where}); {done} in {seconds:.1f} s")
    else:
        click.echo(f"search index: {state} already ({where})")
