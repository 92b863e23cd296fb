"""Group commit: concurrent inserts share one transaction, each still answered after its commit.

Under load many requests arrive while a transaction is being written. Instead of one
transaction (one INSERT round trip, one commit, one fsync) per request, `GroupCommit` lets
requests that arrive while the writers are busy wait in a queue; the next free writer takes
everything queued and writes it as one transaction. A lone request on an idle server is
written at once: there is no timer and no added delay.

The rules (docs/API.md, ``POST /send_logs``, "Order of checks": the batch is committed in one
transaction, all or nothing, and 200 is sent only after that commit):

* `GroupCommit.submit` returns only after the commit that holds its rows succeeded;
* if that shared transaction fails, every member of the group gets the error, and none of the
  group's rows is stored (the members' rows are in one transaction: all or nothing);
* a shared transaction rolled back by a deadlock or a certification conflict (`Conflict`:
  nothing of it was stored) is written again, whole, up to ``conflict_retries`` times after
  a short random pause; only then do the members get the error;
* callers validate before they submit, so one invalid batch never joins a group;
* ``write`` may leave out whole members it refuses (say, a user removed meanwhile) and store
  the others: it then returns a function telling, for a member's rows, the exception that
  member gets instead of success;
* a member that is cancelled before its group is taken is dropped from the queue, so its
  rows are not written.

A table family (`storage.logs`) builds the row tuples and gives `GroupCommit` a ``write``
coroutine that inserts a list of them in one transaction (`Database.insert_many`).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from bot_logging_server.storage.base import Conflict

__all__ = ["CONFLICT_RETRIES", "GroupCommit", "GroupStats", "Refusals"]

Row = TypeVar("Row")
#: What ``write`` may return: for a member's rows, the exception it gets (None: stored).
Refusals = Callable[[Sequence[Row]], BaseException | None]

log = logging.getLogger(__name__)

#: How many times a group's transaction is written again after a `Conflict`.
CONFLICT_RETRIES = 4
#: The longest random pause, in seconds, before the first retry (doubled at each one): two
#: servers whose transactions met should not meet again at once.
_CONFLICT_PAUSE = 0.02


@dataclass
class GroupStats:
    """Counters for tests and benchmarks: requests submitted, transactions written, rows,
    and transactions written again after a `Conflict`."""

    requests: int = 0
    transactions: int = 0
    rows: int = 0
    largest_group: int = 0
    conflict_retries: int = 0


@dataclass
class _Member(Generic[Row]):
    rows: Sequence[Row]
    done: asyncio.Future[None] = field(repr=False)
    size: int = 0


class GroupCommit(Generic[Row]):
    """Coalesce concurrent `submit` calls into shared transactions.

    Args:
        write: inserts a list of rows in ONE transaction and commits, or raises (and then
            nothing of the list is stored). It may leave out whole members' rows, and then
            returns `Refusals` naming them; else None.
        writers: how many transactions may be in flight at once (1 for SQLite's single
            writer; a few for a MySQL pool).
        max_rows: a group stops growing at this many rows (a single larger batch still goes,
            alone), which bounds statement size and the wait of the group's members.
        conflict_retries: how many times a group's transaction rolled back by a `Conflict`
            is written again before its members get the error.
        max_bytes: likewise, a group stops growing at this many bytes (the sizes given to
            `submit`); None: no such bound. A member larger than the database takes in one
            packet then goes alone, and whatever happens to it happens to it alone.
    """

    def __init__(
        self,
        write: Callable[[list[Row]], Awaitable[Refusals[Row] | None]],
        *,
        writers: int = 1,
        max_rows: int = 5000,
        conflict_retries: int = CONFLICT_RETRIES,
        max_bytes: int | None = None,
    ) -> None:
        """Create an idle committer; nothing runs until the first `submit`."""
        if writers < 1:
            raise ValueError("writers must be at least 1")
        self._write = write
        self._writers = writers
        self._max_rows = max_rows
        self._conflict_retries = conflict_retries
        #: The ``max_bytes`` bound; may be set later (a backend knows it once connected).
        self.max_bytes = max_bytes
        self._queue: deque[_Member[Row]] = deque()
        self._in_flight: set[asyncio.Task[None]] = set()
        self.stats = GroupStats()
        #: Called as ``on_commit(batches, rows)`` after each committed transaction (metrics);
        #: what it raises is logged, never given to the group's members.
        self.on_commit: Callable[[int, int], None] | None = None

    async def submit(self, rows: Sequence[Row], size: int = 0) -> None:
        """Write `rows` in a transaction shared with concurrent callers; return after commit.

        `size` is what the rows weigh against ``max_bytes`` (bytes, roughly). Raises whatever
        the shared ``write`` raised (a copy per member) when it failed, or the exception
        ``write`` refused these rows with.
        """
        if not rows:
            return
        member = _Member(rows, asyncio.get_running_loop().create_future(), size)
        self._queue.append(member)
        self.stats.requests += 1
        if len(self._in_flight) < self._writers:
            self._start_writer()
        # If this caller is cancelled, the future is cancelled with it: a member still in the
        # queue is then skipped; one already taken is written with its group regardless.
        await member.done

    async def drain(self) -> None:
        """Wait until every queued and in-flight group is written (call before closing)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _take_group(self) -> list[_Member[Row]]:
        group: list[_Member[Row]] = []
        size = weight = 0
        while self._queue:
            member = self._queue[0]
            if member.done.done():  # cancelled while queued: never written
                self._queue.popleft()
                continue
            if group and (
                size + len(member.rows) > self._max_rows
                or (self.max_bytes is not None and weight + member.size > self.max_bytes)
            ):
                break
            group.append(self._queue.popleft())
            size += len(member.rows)
            weight += member.size
        return group

    def _start_writer(self) -> None:
        group = self._take_group()
        if not group:
            return
        task = asyncio.get_running_loop().create_task(self._write_group(group))
        self._in_flight.add(task)
        task.add_done_callback(self._writer_done)

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        # Whatever queued up while this transaction ran is the next group.
        while self._queue and len(self._in_flight) < self._writers:
            before = len(self._in_flight)
            self._start_writer()
            if len(self._in_flight) == before:
                break

    async def _write_group(self, group: list[_Member[Row]]) -> None:
        rows: list[Row] = []
        for member in group:
            rows.extend(member.rows)
        try:
            refusals = await self._write_retrying(rows)
        except BaseException as exc:
            for member in group:
                if member.done.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    member.done.cancel()
                else:
                    # A copy each: one exception object raised in many tasks would collect
                    # every task's traceback.
                    member.done.set_exception(_copy(exc))
            if not isinstance(exc, Exception):
                raise
            return
        self.stats.transactions += 1
        self.stats.largest_group = max(self.stats.largest_group, len(group))
        for member in group:
            refused = refusals(member.rows) if refusals is not None else None
            if refused is None:
                self.stats.rows += len(member.rows)
            if member.done.done():
                continue
            if refused is None:
                member.done.set_result(None)
            else:
                member.done.set_exception(refused)
        if self.on_commit is not None:
            try:
                self.on_commit(len(group), len(rows))
            except Exception:
                log.exception("group commit: the on_commit hook failed")

    async def _write_retrying(self, rows: list[Row]) -> Refusals[Row] | None:
        """``write(rows)``; after a `Conflict` (rolled back whole) again, a bounded number
        of times, each after a random pause that doubles. Returns what ``write`` refused."""
        for attempt in range(self._conflict_retries + 1):
            try:
                return await self._write(rows)
            except Conflict:
                if attempt == self._conflict_retries:
                    raise
                self.stats.conflict_retries += 1
                await asyncio.sleep(random.uniform(0, _CONFLICT_PAUSE * 2**attempt))
        raise AssertionError("unreachable")  # the last attempt returns or raises


def _copy(exc: BaseException) -> BaseException:
    try:
        clone = copy.copy(exc)
    except Exception:
        return exc
    clone.__cause__ = exc.__cause__
    clone.__traceback__ = None
    return clone
