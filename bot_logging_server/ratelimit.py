"""Per-user rate limits on ``/send_logs``: requests and log records per second.

Off by default (``--rate-limit-requests`` / ``--rate-limit-records``, 0 = no limit). Over a
limit, the answer is 429 ``TooManyRequests`` with ``Retry-After`` (seconds until the window
has room again); the real client keeps the batch and retries, so nothing is lost. The counting
is the ``limits`` library's moving window, in memory, so each worker process counts on its
own: with ``--workers N`` a user gets up to N times the limit.

A batch bigger than the per-second record limit costs the whole limit (it is let through when
the window is empty) instead of being refused forever.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from quart import Quart, current_app

from bot_logging_server.config import Config
from bot_logging_server.errors import TooManyRequests

__all__ = ["RateLimiter", "check_rate_limit", "get_rate_limiter", "init_app"]

_EXTENSION = "bot_logging_server.ratelimit"


class RateLimiter:
    """Counts requests and records per user over a moving one-second window."""

    def __init__(self, requests_per_second: int, records_per_second: int) -> None:
        """Limit each user to these many per second; 0 switches that limit off."""
        self._storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._limits: list[tuple[str, RateLimitItem, int]] = []
        if requests_per_second:
            item = RateLimitItemPerSecond(requests_per_second)
            self._limits.append(("requests", item, requests_per_second))
        if records_per_second:
            item = RateLimitItemPerSecond(records_per_second)
            self._limits.append(("records", item, records_per_second))

    async def check(self, user_id: int, records: int) -> None:
        """Count one request of `records` records for `user_id`; raise `TooManyRequests` if over.

        Nothing is counted for a refused request.
        """
        who = str(user_id)
        costs = []
        for kind, item, most in self._limits:
            cost = 1 if kind == "requests" else min(records, most)
            if cost and not await self._limiter.test(item, kind, who, cost=cost):
                stats = await self._limiter.get_window_stats(item, kind, who)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                raise TooManyRequests(f"over the {kind} per second limit", retry_after=wait)
            costs.append((kind, item, cost))
        for kind, item, cost in costs:
            if cost:
                await self._limiter.hit(item, kind, who, cost=cost)

    async def close(self) -> None:
        """Forget every count (and stop the library's expiry task)."""
        await self._storage.reset()
        timer = getattr(self._storage, "timer", None)
        if timer is not None:
            timer.cancel()


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
