"""What the command families share: running one command's work on the storage, and names.

`with_storage` opens the storage, runs the work and closes it; the storage's known failures
(no such user, a name taken, the database away) become one ``Error:`` line and exit status 1.
`existing_name` and `optional_name` are argument callbacks: a name no user could have is a
usage error before anything is opened.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from bot_logging_server import accounts as user_admin
from bot_logging_server import server
from bot_logging_server.config import Config
from bot_logging_server.storage import (
    KeyExists,
    KeyNotFound,
    Storage,
    StorageError,
    UserExists,
    UserNotFound,
    make_storage,
)

__all__ = ["existing_name", "optional_name", "with_storage"]

T = TypeVar("T")


def with_storage(config: Config, work: Callable[[Storage], Awaitable[T]]) -> T:
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


def existing_name(ctx: click.Context, param: click.Parameter, name: str) -> str:
    """A NAME that some user could have; anything else is a usage error.

    On MySQL the name column ignores trailing spaces in comparisons: without this check
    ``users disable "alice "`` would disable alice.
    """
    try:
        return user_admin.check_username(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def optional_name(ctx: click.Context, param: click.Parameter, name: str | None) -> str | None:
    """`existing_name` for an optional argument."""
    return None if name is None else existing_name(ctx, param, name)
