"""Failed token checks: who may try again, and in which order the slow hashes run.

Checking a token that is not in the cache costs a slow hash (`bot_logging_server.tokens`,
about 50 ms), so token checks are what a flood of well-formed wrong tokens, or an online
guesser, spends. Two defences, used by `bot_logging_server.auth`:

* `FailureThrottle` counts failed checks over a moving one-minute window (the ``limits``
  library, in this process's memory), per client address and per user name (in NFKC form).
  Past either limit the check is refused with 429 ``TooManyRequests`` and a ``Retry-After``
  (seconds until the window has room) before any hash is computed: the **lockout**. A pair
  this process has verified before is never locked out.
* `HashQueue` runs at most a few hashes at once and lets the others wait in two lanes: a
  pair verified before, and the first checks of an address with no recent failure, go ahead
  of everyone else; past a bound on the waiting, the answer is 503 (retry) instead of an
  unbounded queue. So a legitimate client that is not cached yet (after a restart every
  client is) is checked promptly while a flood from elsewhere waits, or is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from bot_logging_server.errors import ServiceUnavailable, TooManyRequests

__all__ = ["FailureThrottle", "HashQueue"]

#: When a limit is off, failures are still counted (up to this) to tell clean addresses.
_UNLIMITED = 1_000_000


class FailureThrottle:
    """Failed token checks per client address and per user name, over one minute.

    Args:
        per_source: failures allowed per address per minute; 0: no such limit.
        per_user: failures allowed per user name per minute; 0: no such limit.
    """

    def __init__(self, per_source: int, per_user: int) -> None:
        """Count failures; refuse past `per_source` / `per_user` (0: that limit is off)."""
        self._storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._source = RateLimitItemPerMinute(per_source or _UNLIMITED)
        self._user = RateLimitItemPerMinute(per_user or _UNLIMITED)
        self._limits = [
            (kind, item)
            for kind, item, on in (
                ("source", self._source, per_source),
                ("user", self._user, per_user),
            )
            if on
        ]

    async def check_source(self, source: str | None) -> None:
        """Raise `TooManyRequests` (with ``Retry-After``) when `source` is locked out: as many
        failures in the last minute as its limit allows. None: never locked."""
        await self._check("source", source)

    async def check_user(self, username: str | None) -> None:
        """Raise `TooManyRequests` (with ``Retry-After``) when `username` is locked out."""
        await self._check("user", username)

    async def _check(self, kind: str, who: str | None) -> None:
        for locked_kind, item in self._limits:
            if locked_kind != kind or who is None or await self._limiter.test(item, kind, who):
                continue
            stats = await self._limiter.get_window_stats(item, kind, who)
            wait = max(1, math.ceil(stats.reset_time - time.time()))
            raise TooManyRequests("too many failed token checks", retry_after=wait)

    async def failed(self, source: str | None, username: str | None) -> None:
        """Count one failed check from `source` for `username` (None: not counted there)."""
        if source is not None:
            await self._limiter.hit(self._source, "source", source)
        if username is not None:
            await self._limiter.hit(self._user, "user", username)

    async def is_clean(self, source: str | None) -> bool:
        """Whether `source` has no failed check in the last minute."""
        if source is None:
            return False
        stats = await self._limiter.get_window_stats(self._source, "source", source)
        return stats.remaining >= self._source.amount

    async def close(self) -> None:
        """Forget every count (and stop the library's expiry task)."""
        await self._storage.reset()
        timer = getattr(self._storage, "timer", None)
        if timer is not None:
            timer.cancel()


class HashQueue:
    """At most `at_once` slow hashes at a time; waiting checks in two lanes, ahead first.

    Args:
        at_once: hashes computed at the same time.
        most_waiting: checks that may wait in each lane; past it `slot` raises
            `ServiceUnavailable` (503, the client retries).
    """

    def __init__(self, at_once: int, most_waiting: int) -> None:
        """An idle queue."""
        self._free = at_once
        self._most_waiting = most_waiting
        self._lanes: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())

    @property
    def waiting(self) -> int:
        """How many checks wait for a slot, both lanes together."""
        return sum(len(lane) for lane in self._lanes)

    def check_room(self, ahead: bool) -> None:
        """Raise `ServiceUnavailable` when a check in that lane would be refused now."""
        if len(self._lanes[0 if ahead else 1]) >= self._most_waiting:
            raise ServiceUnavailable("too many token checks at once")

    @contextlib.asynccontextmanager
    async def slot(self, ahead: bool) -> AsyncIterator[None]:
        """Hold one hashing slot; wait in the front lane when `ahead`, else the other."""
        lane = self._lanes[0 if ahead else 1]
        if self._free > 0 and not self.waiting:
            self._free -= 1
        else:
            if len(lane) >= self._most_waiting:
                raise ServiceUnavailable("too many token checks at once")
            turn = asyncio.get_running_loop().create_future()
            lane.append(turn)
            try:
                await turn  # the slot is handed over by `_release`
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._release()  # handed over just as the caller went away
                else:
                    lane.remove(turn)
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        """Hand the slot to the first waiting check (front lane first), else free it."""
        for lane in self._lanes:
            while lane:
                turn = lane.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self._free += 1
