"""Per-user rate limits on ``/send_logs``: requests and log records per second.

Off by default (``--rate-limit-requests`` / ``--rate-limit-records``, 0 = no limit). Over a
limit, the answer is 429 ``TooManyRequests`` with ``Retry-After`` (seconds until the window
has room again); the real client keeps the batch and retries, so nothing is lost. The counting
is a moving one-second window, in memory, so each worker process counts on its own: with
``--workers N`` a user gets up to N times the limit.

A batch bigger than the per-second record limit costs the whole limit (it is let through when
the window is empty) instead of being refused forever.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from quart import Quart, current_app

from bot_logging_server.config import Config
from bot_logging_server.errors import TooManyRequests

__all__ = ["WINDOW_SECONDS", "RateLimiter", "check_rate_limit", "get_rate_limiter", "init_app"]

_EXTENSION = "bot_logging_server.ratelimit"

#: The length of the moving window: a hit counts until this many seconds after it.
WINDOW_SECONDS = 1.0


class _Window:
    """One user's hits of one kind: (time, cost) oldest first, and their total cost."""

    __slots__ = ("hits", "used")

    def __init__(self) -> None:
        self.hits: deque[tuple[float, int]] = deque()
        self.used = 0

    def forget_until(self, moment: float) -> None:
        """Drop the hits made at or before `moment`."""
        while self.hits and self.hits[0][0] <= moment:
            self.used -= self.hits.popleft()[1]


class RateLimiter:
    """Counts requests and records per user over a moving one-second window.

    `clock` is the time source in seconds (``time.monotonic``); tests pass their own to move
    time on without sleeping.
    """

    def __init__(
        self,
        requests_per_second: int,
        records_per_second: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Limit each user to these many per second; 0 switches that limit off."""
        self.clock = clock
        self._limits = [
            (kind, most)
            for kind, most in (("requests", requests_per_second), ("records", records_per_second))
            if most
        ]
        self._windows: dict[tuple[str, int], _Window] = {}
        self._swept = clock()

    async def check(self, user_id: int, records: int) -> None:
        """Count one request of `records` records for `user_id`; raise `TooManyRequests` if over.

        Nothing is counted for a refused request.
        """
        now = self.clock()
        self._sweep(now)
        costs = []
        for kind, most in self._limits:
            cost = 1 if kind == "requests" else min(records, most)
            if not cost:
                continue
            window = self._windows.setdefault((kind, user_id), _Window())
            window.forget_until(now - WINDOW_SECONDS)
            if window.used + cost > most:
                wait = max(1, math.ceil(window.hits[0][0] + WINDOW_SECONDS - now))
                raise TooManyRequests(f"over the {kind} per second limit", retry_after=wait)
            costs.append((window, cost))
        for window, cost in costs:
            window.hits.append((now, cost))
            window.used += cost

    def _sweep(self, now: float) -> None:
        """Forget the windows of users idle for a whole window (at most once per window)."""
        if now - self._swept < WINDOW_SECONDS:
            return
        self._swept = now
        idle = [
            key
            for key, window in self._windows.items()
            if not window.hits or window.hits[-1][0] <= now - WINDOW_SECONDS
        ]
        for key in idle:
            del self._windows[key]

    async def close(self) -> None:
        """Forget every count."""
        self._windows.clear()


def init_app(app: Quart, config: Config) -> None:
    """Give `app` a `RateLimiter` when a limit is configured."""
    if not (config.rate_limit_requests or config.rate_limit_records):
        return
    limiter = RateLimiter(config.rate_limit_requests, config.rate_limit_records)
    app.extensions[_EXTENSION] = limiter

    @app.after_serving
    async def _close_rate_limiter() -> None:
        await limiter.close()


def get_rate_limiter() -> RateLimiter | None:
    """The current app's `RateLimiter`, or None when no limit is configured."""
    return current_app.extensions.get(_EXTENSION)


async def check_rate_limit(user_id: int, records: int) -> None:
    """Count one request of `records` records for `user_id` against the app's limits.

    Raises `TooManyRequests` (with ``Retry-After``) when over a limit; does nothing when no
    limit is configured.
    """
    limiter = get_rate_limiter()
    if limiter is not None:
        await limiter.check(user_id, records)
