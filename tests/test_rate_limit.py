"""Per-user rate limits: 429 ``TooManyRequests`` with ``Retry-After``, off by default.

``--rate-limit-requests`` and ``--rate-limit-records`` (per second, per user, per process);
a refused batch stores nothing, one user's traffic never uses another's allowance, and a batch
bigger than the record limit is let through when the window is empty instead of never.
"""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

from support import assert_added, assert_error, client_body, post_logs

from bot_logging_server.config import build_config
from bot_logging_server.storage import Storage, get_storage
from bot_logging_server.users import create_user


async def _account(storage: Storage) -> SimpleNamespace:
    new = await create_user(storage, f"rl_{uuid.uuid4().hex[:8]}")
    return SimpleNamespace(name=new.user.username, token=new.token, id=new.user.id)


async def test_no_limit_by_default(client, storage, user):
    for _ in range(40):
        await assert_added(await post_logs(client, user), 1)
    assert await storage.count_logs(user.id) == 40


async def test_over_the_requests_limit_is_429_with_retry_after_and_stores_nothing(make_app):
    async with make_app(rate_limit_requests=5) as app:
        storage = get_storage(app.app)
        client = app.test_client()
        a, b = await _account(storage), await _account(storage)
        for _ in range(5):
            await assert_added(await post_logs(client, a), 1)
        refused = await post_logs(client, a)
        await assert_error(refused, 429, "TooManyRequests")
        wait = int(refused.headers["Retry-After"])
        assert wait == 1  # a one-second window
        assert await storage.count_logs(a.id) == 5
        await assert_added(await post_logs(client, b), 1)  # bob has his own allowance
        await asyncio.sleep(wait + 0.05)
        await assert_added(await post_logs(client, a), 1)
        assert await storage.count_logs(a.id) == 6


async def test_over_the_records_limit_is_429_and_a_huge_batch_still_gets_through(make_app):
    async with make_app(rate_limit_records=10) as app:
        storage = get_storage(app.app)
        client = app.test_client()
        c = await _account(storage)
        await assert_added(await post_logs(client, c, client_body(c.name, 6)), 6)
        refused = await post_logs(client, c, client_body(c.name, 6))
        await assert_error(refused, 429, "TooManyRequests")
        assert int(refused.headers["Retry-After"]) >= 1
        await assert_added(await post_logs(client, c, client_body(c.name, 4)), 4)
        assert await storage.count_logs(c.id) == 10
        await asyncio.sleep(1.05)
        # 50 records > 10 per second: admitted on an empty window, not refused forever.
        await assert_added(await post_logs(client, c, client_body(c.name, 50)), 50)
        await assert_error(await post_logs(client, c), 429, "TooManyRequests")
        assert await storage.count_logs(c.id) == 60


def test_limits_come_from_flags_or_environment_and_are_off_by_default():
    assert build_config({}, environ={}).rate_limit_requests == 0
    assert build_config({}, environ={}).rate_limit_records == 0
    env = {"LOGGER_RATE_LIMIT_REQUESTS": "7", "LOGGER_RATE_LIMIT_RECORDS": "700"}
    config = build_config({}, environ=env)
    assert (config.rate_limit_requests, config.rate_limit_records) == (7, 700)
    assert build_config({"rate_limit_requests": 3}, environ=env).rate_limit_requests == 3
