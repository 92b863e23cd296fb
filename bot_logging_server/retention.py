"""Retention: old records are deleted in small batches, in the background or by hand.

Each user keeps records for a maximum age (by ``event_at``) and up to a maximum number of rows
(the newest kept): the server's defaults (``--retention-days``, ``--retention-rows``; 0: no
limit), or the user's own values in the ``retention`` table (``users set-retention``).

`Purger.run` makes one pass over every user (or one): it pages through the ids to delete and
deletes ``--purge-batch`` rows per transaction, then pauses as long as that transaction took,
so that a purge holds the writer at most half of the time and an ingest never waits for more
than one small batch. Only one process purges at a time: the pass runs under
`Storage.purge_lock` (MySQL ``GET_LOCK``; SQLite a file lock), and a worker that finds it
taken skips its pass. `init_app` runs a pass every ``--purge-interval`` seconds while the app
serves; ``python3 app.py purge`` runs one by hand. A pass also deletes the idempotency keys
older than their 24 hours (``Idempotency-Key``), which nothing answers from any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from quart import Quart

from bot_logging_server.config import Config
from bot_logging_server.storage import (
    KEY_LIFETIME,
    RetentionRule,
    Storage,
    StorageError,
    User,
    UserNotFound,
    get_storage,
    utc_now,
)

__all__ = [
    "Policy",
    "PurgeReport",
    "Purger",
    "format_duration",
    "init_app",
    "parse_duration",
]

log = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
#: The shortest pause between two batches (the writer is given back even to a fast delete).
_MIN_PAUSE = 0.005
#: Seconds after start-up before the first background pass.
_FIRST_PASS_DELAY = 5.0
#: Seconds a stopping server gives the current purge batch to finish.
_STOP_SECONDS = 5.0


def parse_duration(text: str) -> int:
    """Seconds in ``30d``, ``12h``, ``90m``, ``45s`` or ``2w``; ``0`` is 0 (no limit).

    Raises `ValueError` with a message fit for the user on anything else.
    """
    text = text.strip().lower()
    if text == "0":
        return 0
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: a number and a unit, s m h d w (30d)")
    seconds = round(float(match.group(1)) * _UNITS[match.group(2)])
    if seconds < 1:
        raise ValueError(f"{text!r} is shorter than a second")
    return seconds


def format_duration(seconds: int) -> str:
    """``30d`` for 2592000: the largest unit that divides `seconds` evenly."""
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Policy:
    """What one user keeps: records younger than `max_age` and the `max_rows` newest.

    ``None`` in either: no limit of that kind.
    """

    max_age: timedelta | None = None
    max_rows: int | None = None

    @classmethod
    def defaults(cls, config: Config) -> Policy:
        """The server's default policy (``--retention-days``, ``--retention-rows``)."""
        return cls(
            timedelta(days=config.retention_days) if config.retention_days else None,
            config.retention_rows or None,
        )

    def for_user(self, rule: RetentionRule | None) -> Policy:
        """This default, overridden by a user's own `rule` where it has a value."""
        if rule is None:
            return self
        age = self.max_age
        if rule.max_age_seconds is not None:
            age = timedelta(seconds=rule.max_age_seconds) if rule.max_age_seconds else None
        rows = self.max_rows
        if rule.max_rows is not None:
            rows = rule.max_rows or None
        return Policy(age, rows)

    def describe(self) -> str:
        """``max age 30d, max rows 1000000`` (or ``keep everything``)."""
        parts = []
        if self.max_age is not None:
            parts.append(f"max age {format_duration(int(self.max_age.total_seconds()))}")
        if self.max_rows is not None:
            parts.append(f"max rows {self.max_rows}")
        return ", ".join(parts) or "keep everything"


@dataclass
class PurgeReport:
    """What one pass did (or, dry, would do): rows per user name, and how it went."""

    deleted: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    transactions: int = 0
    #: The longest single delete transaction, in seconds: how long ingest could wait.
    longest_transaction: float = 0.0
    #: Seconds spent inside delete transactions, all of them.
    busy_seconds: float = 0.0
    seconds: float = 0.0
    #: Idempotency keys older than their lifetime deleted (every pass that is not dry and
    #: not for one user deletes them).
    idempotency_keys: int = 0

    @property
    def total(self) -> int:
        """Rows deleted (or that would be) over every user."""
        return sum(self.deleted.values())


class Purger:
    """Deletes what each user's `Policy` no longer keeps, `batch` rows per transaction."""

    def __init__(self, storage: Storage, default: Policy, batch: int) -> None:
        """Purge `storage` with `default` (overridden per user) in batches of `batch` rows."""
        self._storage = storage
        self._default = default
        self._batch = batch
        #: Set by `stop`: the pass ends after its current batch (nothing is cut mid-statement).
        self.stopping = asyncio.Event()

    def stop(self) -> None:
        """Ask a running pass to end after its current batch, and the background loop to end."""
        self.stopping.set()

    async def pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less when `stop` is called meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def run(
        self,
        *,
        username: str | None = None,
        older_than: timedelta | None = None,
        dry_run: bool = False,
        wait: float = 0.0,
    ) -> PurgeReport | None:
        """One pass under the purge lock; None when another process held it for `wait` s.

        `username`: only that user (`UserNotFound` when there is none). `older_than`: instead
        of the policies, delete every record older than this. `dry_run`: count, delete nothing.
        """
        async with self._storage.purge_lock(wait) as got:
            if not got:
                return None
            return await self._pass(username, older_than, dry_run)

    async def _pass(
        self, username: str | None, older_than: timedelta | None, dry_run: bool
    ) -> PurgeReport:
        started = time.perf_counter()
        report = PurgeReport(dry_run=dry_run)
        users = await self._users(username)
        rules = await self._storage.retention_rules() if older_than is None else {}
        if older_than is None and self._default == Policy():
            # No default limit: only users with a rule of their own can lose records.
            users = [user for user in users if user.id in rules]
        now = utc_now()
        for user in users:
            if self.stopping.is_set():
                break
            if older_than is not None:
                policy = Policy(max_age=older_than)
            else:
                policy = self._default.for_user(rules.get(user.id))
            before = now - policy.max_age if policy.max_age is not None else None
            if dry_run:
                count = await self._count(user.id, before, policy.max_rows)
            else:
                count = await self._purge_user(user.id, before, policy.max_rows, report)
            if count:
                report.deleted[user.username] = count
        if not dry_run and username is None:
            await self._purge_keys(now, report)
        report.seconds = time.perf_counter() - started
        return report

    async def _purge_keys(self, now: datetime, report: PurgeReport) -> None:
        """Delete the idempotency keys past `KEY_LIFETIME`, in batches, pausing like rows."""
        while not self.stopping.is_set():
            started = time.perf_counter()
            count = await self._storage.purge_idempotency_keys(now - KEY_LIFETIME, self._batch)
            if not count:
                return
            report.idempotency_keys += count
            await self.pause(max(_MIN_PAUSE, time.perf_counter() - started))

    async def _users(self, username: str | None) -> list[User]:
        if username is None:
            return await self._storage.list_users()
        user = await self._storage.get_user(username)
        if user is None:
            raise UserNotFound(username)
        return [user]

    async def _count(self, user_id: int, before: datetime | None, max_rows: int | None) -> int:
        last_id = None
        if max_rows is not None:
            last_id = await self._storage.newest_id_beyond(user_id, max_rows)
        return await self._storage.count_purgeable(user_id, before, last_id)

    async def _purge_user(
        self, user_id: int, before: datetime | None, max_rows: int | None, report: PurgeReport
    ) -> int:
        storage, batch, deleted = self._storage, self._batch, 0
        if before is not None:
            deleted += await self._delete_pages(
                user_id, lambda: storage.ids_older_than(user_id, before, batch), report
            )
        if max_rows is not None:
            last_id = await storage.newest_id_beyond(user_id, max_rows)
            if last_id is not None:
                deleted += await self._delete_pages(
                    user_id, lambda: storage.ids_up_to(user_id, last_id, batch), report
                )
        return deleted

    async def _delete_pages(
        self, user_id: int, next_page: Callable[[], Awaitable[list[int]]], report: PurgeReport
    ) -> int:
        """Delete page after page of ids until `next_page` finds none."""
        deleted = 0
        while not self.stopping.is_set() and (ids := await next_page()):
            deleted += await self._delete(user_id, ids, report)
        return deleted

    async def _delete(self, user_id: int, ids: list[int], report: PurgeReport) -> int:
        started = time.perf_counter()
        count = await self._storage.delete_log_ids(user_id, ids)
        took = time.perf_counter() - started
        report.transactions += 1
        report.longest_transaction = max(report.longest_transaction, took)
        report.busy_seconds += took
        # Give the writer back for as long as this batch held it: ingest never queues
        # behind more than one batch, and a purge takes at most half of the writer's time.
        await self.pause(max(_MIN_PAUSE, took))
        return count


def init_app(app: Quart, config: Config) -> None:
    """While `app` serves, run a purge pass every ``--purge-interval`` seconds (0: never).

    The task starts after the storage opens and ends before it closes: asked to stop, it
    finishes its current batch (never cancelled in the middle of a statement), and is
    cancelled only if that takes longer than `_STOP_SECONDS`.
    """
    if not config.purge_interval:
        return
    purger = Purger(get_storage(app), Policy.defaults(config), config.purge_batch)

    @app.while_serving
    async def _purge_in_background() -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(_purge_forever(purger, config.purge_interval))
        yield
        purger.stop()
        try:
            await asyncio.wait_for(task, _STOP_SECONDS)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("retention: the purge did not stop in %g s; cancelled", _STOP_SECONDS)


async def _purge_forever(purger: Purger, interval: float) -> None:
    await purger.pause(min(interval, _FIRST_PASS_DELAY))
    while not purger.stopping.is_set():
        try:
            report = await purger.run()
        except StorageError as exc:
            log.warning("retention: purge pass failed (%s); next in %g s", exc, interval)
        else:
            if report is not None and report.total:
                log.info(
                    "retention: deleted %d records (%s) in %.1f s, %d transactions, longest %.3f s",
                    report.total,
                    ", ".join(f"{name} {n}" for name, n in sorted(report.deleted.items())),
                    report.seconds,
                    report.transactions,
                    report.longest_transaction,
                )
        await purger.pause(interval)
