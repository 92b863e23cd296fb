"""Per-user rate limits: 429 ``TooManyRequests`` with ``Retry-After``, off by default.

``--rate-limit-requests`` and ``--rate-limit-records`` (per second, per user, per process);
a refused batch stores nothing, one user's traffic never uses another's allowance, and a batch
bigger than the record limit is let through when the window is empty instead of never.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import limits.aio.storage.memory
import pytest
from support import assert_added, assert_error, client_body, post_logs

import bot_logging_server.ratelimit
from bot_logging_server.accounts import create_user
from bot_logging_server.config import build_config
from bot_logging_server.errors import TooManyRequests
from bot_logging_server.ratelimit import RateLimiter
from bot_logging_server.storage import Storage, get_storage


class Clock:
    """A clock that moves only when the test says so: it stands in for the ``time`` module
    of the ``limits`` library's memory storage and of `bot_logging_server.ratelimit`, so the
    library's own moving window runs on it (nothing sleeps)."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The limiter's clock, moved by the test."""
    fake = Clock()
    monkeypatch.setattr(limits.aio.storage.memory, "time", fake)
    monkeypatch.setattr(bot_logging_server.ratelimit, "time", fake)
    return fake


async def _account(storage: Storage) -> SimpleNamespace:
    new = await create_user(storage, f"rl_{uuid.uuid4().hex[:8]}")
    return SimpleNamespace(name=new.user.username, token=new.token, id=new.user.id)


@pytest.fixture
def limited_app(make_app: Callable[..., Any], clock: Clock) -> Callable[..., Any]:
    """``async with limited_app(**limits) as (client, storage, clock)``: on the test's clock."""

    @contextlib.asynccontextmanager
    async def make(**limits: int) -> AsyncIterator[tuple[Any, Storage, Clock]]:
        async with make_app(**limits) as app:
            yield app.test_client(), get_storage(app.app), clock

    return make


async def test_no_limit_by_default(client, storage, user):
    for _ in range(40):
        await assert_added(await post_logs(client, user), 1)
    assert await storage.count_logs(user.id) == 40


async def test_over_the_requests_limit_is_429_with_retry_after_and_stores_nothing(limited_app):
    async with limited_app(rate_limit_requests=5) as (client, storage, clock):
        a, b = await _account(storage), await _account(storage)
        for _ in range(5):
            await assert_added(await post_logs(client, a), 1)
        refused = await post_logs(client, a)
        await assert_error(refused, 429, "TooManyRequests")
        assert refused.headers["Retry-After"] == "1"  # a one-second window
        assert await storage.count_logs(a.id) == 5
        await assert_added(await post_logs(client, b), 1)  # bob has his own allowance
        clock.advance(0.999)
        await assert_error(await post_logs(client, a), 429, "TooManyRequests")
        clock.advance(0.002)  # Retry-After later: the window has room again
        await assert_added(await post_logs(client, a), 1)
        assert await storage.count_logs(a.id) == 6


async def test_over_the_records_limit_is_429_and_a_huge_batch_still_gets_through(limited_app):
    async with limited_app(rate_limit_records=10) as (client, storage, clock):
        c = await _account(storage)
        await assert_added(await post_logs(client, c, client_body(c.name, 6)), 6)
        refused = await post_logs(client, c, client_body(c.name, 6))
        await assert_error(refused, 429, "TooManyRequests")
        assert refused.headers["Retry-After"] == "1"
        await assert_added(await post_logs(client, c, client_body(c.name, 4)), 4)
        assert await storage.count_logs(c.id) == 10
        clock.advance(1.001)
        # 50 records > 10 per second: admitted on an empty window, not refused forever.
        await assert_added(await post_logs(client, c, client_body(c.name, 50)), 50)
        await assert_error(await post_logs(client, c), 429, "TooManyRequests")
        assert await storage.count_logs(c.id) == 60


# -- the limiter on its own, on a clock the test moves ---------------------------------------


async def _admitted(limiter: RateLimiter, user_id: int = 1, records: int = 1) -> bool:
    try:
        await limiter.check(user_id, records)
    except TooManyRequests:
        return False
    return True


async def test_the_window_moves_with_each_hit_instead_of_resetting_each_second(clock):
    limiter = RateLimiter(5, 0)
    assert [await _admitted(limiter) for _ in range(3)] == [True] * 3  # at 0.0
    clock.advance(0.6)
    assert [await _admitted(limiter) for _ in range(3)] == [True, True, False]  # at 0.6
    # just past 1.0 the three hits of 0.0 have left the window (the library counts a hit until
    # a whole window after it, inclusive), not those of 0.6
    clock.advance(0.401)
    assert [await _admitted(limiter) for _ in range(4)] == [True, True, True, False]
    clock.advance(0.5)
    assert not await _admitted(limiter)  # at 1.5 the hits of 0.6 still count
    clock.advance(0.1)
    assert await _admitted(limiter)  # just past 1.6 they have left


async def test_a_refused_request_counts_against_no_limit(clock):
    limiter = RateLimiter(2, 10)
    assert await _admitted(limiter, records=10)
    assert not await _admitted(limiter, records=5)  # over the records limit
    assert await _admitted(limiter, records=0)  # the refused one took no request slot


def test_limits_come_from_flags_or_environment_and_are_off_by_default():
    assert build_config({}, environ={}).rate_limit_requests == 0
    assert build_config({}, environ={}).rate_limit_records == 0
    env = {"LOGGER_RATE_LIMIT_REQUESTS": "7", "LOGGER_RATE_LIMIT_RECORDS": "700"}
    config = build_config({}, environ=env)
    assert (config.rate_limit_requests, config.rate_limit_records) == (7, 700)
    assert build_config({"rate_limit_requests": 3}, environ=env).rate_limit_requests == 3
