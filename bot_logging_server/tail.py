"""The live tail: follow a user's new records by polling the database, in any worker.

Several worker processes (and several servers) may store records, so a tail never relies on
one process's memory: it polls ``user_logs`` for ``id > floor`` every `POLL_SECONDS`.

Why a floor and not just "the last id sent": ids are handed out when a transaction inserts,
not when it commits, so with several writers a row may become visible *after* a row with a
higher id. On a Galera cluster with servers writing through different nodes this is the
rule, not the exception: each node hands out its own interleaved ids
(``auto_increment_increment``), so id order is not commit order across nodes. The follower
therefore reads again every row of the last `SETTLE_SECONDS` (those it already sent are
skipped); only an id seen that long ago moves the floor past it. The limit: a row whose
commit comes more than `SETTLE_SECONDS` after a higher id became visible (a transaction held
up that long, e.g. by a cluster's membership change) is not sent by a live tail; it is in
``/api/logs`` as always.

A stream ends when the client goes away (the task is cancelled), when the user's token stops
working (disabled, rotated, removed), after `MAX_STREAM_SECONDS` (the client reconnects
with ``Last-Event-ID`` and loses nothing), or when the app is stopping (`stop_streams`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta

from quart import Quart

from bot_logging_server.auth import Authenticator
from bot_logging_server.errors import APIError
from bot_logging_server.lograte import RateLimitedLog
from bot_logging_server.records import sse
from bot_logging_server.storage import LogQuery, Storage, StorageUnavailable, StoredLog, utc_now

__all__ = [
    "MAX_STREAM_SECONDS",
    "POLL_SECONDS",
    "SETTLE_SECONDS",
    "Follower",
    "event_stream",
    "init_app",
    "stop_streams",
]

log = logging.getLogger(__name__)
# Every open tail meets the same outage: one line per fault per interval, not one per poll.
_faults = RateLimitedLog(log)

#: How often a tail asks the database for new records.
POLL_SECONDS = 0.5
#: Rows younger than this (since first seen) are read again: a lower id may still commit.
SETTLE_SECONDS = 2.0
#: A comment line is sent after this long without an event (keeps proxies from closing).
HEARTBEAT_SECONDS = 15.0
#: A stream ends after this long; the client reconnects with ``Last-Event-ID``.
MAX_STREAM_SECONDS = 300.0
#: How long a client waits before reconnecting (the SSE ``retry:`` field), milliseconds.
RETRY_MS = 1000
_BATCH = 500
_MAX_BATCHES = 4
_OLD_SECONDS = 60.0
_EXTENSION = "bot_logging_server.tail"


class Follower:
    """Finds a user's rows matching a query that have not been handed out yet.

    `after_id` is where to start (the ``Last-Event-ID``, or the newest id at connection).
    """

    def __init__(self, storage: Storage, user_id: int, query: LogQuery, after_id: int) -> None:
        """Follow `user_id`'s rows matching `query` with ids above `after_id`."""
        self._storage = storage
        self._user_id = user_id
        # Arrival order, whatever the listing's: a tail hands out what was stored since.
        self._query = dataclasses.replace(
            query, sort="id", oldest_first=True, limit=_BATCH, before_id=None
        )
        self._floor = after_id
        #: Where this follower started.
        self.start_id = after_id
        self._seen: dict[int, float] = {}  # ids above the floor already handed out

    async def poll(self) -> list[StoredLog]:
        """The new matching rows, oldest first (each row is returned once).

        At most `_MAX_BATCHES` batches are read per poll, so a long backlog (a client
        resuming far behind) is sent in slices instead of all at once.
        """
        now = time.monotonic()
        # A row received long ago cannot have a lower id still uncommitted: settle it at once.
        old = utc_now() - timedelta(seconds=_OLD_SECONDS)
        fresh: list[StoredLog] = []
        after = self._floor
        for _ in range(_MAX_BATCHES):
            query = dataclasses.replace(self._query, after_id=after)
            rows = await self._storage.query_logs(self._user_id, query)
            for row in rows:
                if row.id not in self._seen:
                    self._seen[row.id] = now - SETTLE_SECONDS if row.received_at < old else now
                    fresh.append(row)
            if len(rows) < _BATCH:
                break
            after = rows[-1].id
        settled = [i for i, seen_at in self._seen.items() if now - seen_at >= SETTLE_SECONDS]
        if settled:
            self._floor = max(self._floor, *settled)
            self._seen = {i: t for i, t in self._seen.items() if i > self._floor}
        fresh.sort(key=lambda row: row.id)
        return fresh


def init_app(app: Quart) -> None:
    """Give `app` the event that `stop_streams` sets."""
    app.extensions[_EXTENSION] = asyncio.Event()


def stop_streams(app: Quart) -> None:
    """End every live tail of `app` at its next poll (call it when shutdown begins)."""
    app.extensions[_EXTENSION].set()


async def event_stream(
    app: Quart,
    follower: Follower,
    authenticator: Authenticator,
    username: str,
    token: str | None,
) -> AsyncIterator[bytes]:
    """The body of ``GET /api/tail``: SSE events for `follower`'s rows until the stream ends.

    The (`username`, `token`) pair is checked again before every poll (the authenticator's
    cache keeps that cheap), so a disabled or rotated user's stream ends within seconds.
    """
    stopping: asyncio.Event = app.extensions[_EXTENSION]
    started = last_sent = time.monotonic()
    # The event id is the highest id sent so far: a late lower id must not move a
    # reconnecting client's Last-Event-ID backwards.
    event_id = follower.start_id
    yield b"retry: %d\n: connected\n\n" % RETRY_MS
    try:
        while not stopping.is_set() and time.monotonic() - started < MAX_STREAM_SECONDS:
            try:
                await authenticator.authenticate(username, token, reading=True)
                rows = await follower.poll()
            except APIError:
                return  # the token stopped working
            except StorageUnavailable as exc:
                _faults.log(
                    logging.WARNING, str(exc), "tail: database unavailable, retrying: %s", exc
                )
                rows = []
            if rows:
                events = []
                for row in rows:
                    event_id = max(event_id, row.id)
                    events.append(sse(row, event_id))
                yield b"".join(events)
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent >= HEARTBEAT_SECONDS:
                yield b": keep-alive\n\n"
                last_sent = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), POLL_SECONDS)
    finally:
        log.debug("tail of %s ended", username)
