"""The command line: ``python3 app.py`` (or ``bot-logging-server``).

Without a subcommand it serves; ``users ...`` manages users, ``keys ...`` their ingest
keys, ``alerts ...`` their alert rules, ``purge`` applies retention by hand, and
``search-index`` turns the word index of messages on or off. Database
options come first and apply to all::

    python3 app.py                                    # serve on SQLite ./bot_logging.db
    python3 app.py --host 0.0.0.0 --port 5000 --user DBUSER --password DBPASS   # on MySQL
    python3 app.py users add alice --password secret  # prints md5("alice" + "secret")
    python3 app.py keys add alice shop-site           # prints a new ingest key, once
    python3 app.py --database-url mysql://u:p@db:3306/logs users list
    python3 app.py users set-retention alice --max-age 30d --max-rows 1000000
    python3 app.py purge --older-than 90d --dry-run   # counts what would go
    python3 app.py search-index on                    # fast searches over long ranges
    python3 app.py alerts add alice --channel telegram --level error --process billing

Every option has an environment fallback (see ``--help``); flags win over the environment.

This module holds `main` (serving, and the options every subcommand shares); each command
family is a module of its own: `users`, `keys`, `alerts`, `purge` and `search_index`, on
the helpers of `common` (the storage opened for one command, the check of a user name).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from bot_logging_server import server
from bot_logging_server.cli import alerts, keys, purge, search_index, users
from bot_logging_server.config import SETTINGS, ConfigError, Setting, build_config

__all__ = ["main"]


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


# The command families, each defined in its own module.
main.add_command(users.users)
main.add_command(purge.purge)
main.add_command(keys.keys)
main.add_command(alerts.alerts)
main.add_command(search_index.search_index)
