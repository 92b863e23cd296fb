"""Failed token checks are throttled; a flood of wrong tokens never locks out honest clients.

docs/API.md, "Users and tokens", the lockout: past ``--auth-failures-per-source`` failed
checks a minute from one address, or ``--auth-failures-per-user`` for one user name, a check
that would need a slow hash is answered 429 with ``Retry-After`` before hashing; a pair
verified before is never locked out; and a client that is not cached yet, from an address
without failures, is checked ahead of a flood.
"""

from __future__ import annotations

import asyncio
import secrets
import time

import orjson
from support import (
    CLIENT_PATH,
    assert_added,
    assert_error,
    client_body,
    client_headers,
    new_account,
    post_logs,
)

from bot_logging_server import auth
from bot_logging_server.storage import get_storage
from bot_logging_server.tokens import verify_token


def source(address: str) -> dict:
    """The keyword arguments that make a test request come from `address`."""
    return {"scope_base": {"client": (address, 40000)}}


async def wrong_try(client, name: str, address: str):
    """One request for `name` with a well-formed token that is not its own."""
    return await client.post(
        CLIENT_PATH,
        json=client_body(name),
        headers=client_headers(secrets.token_hex(16)),
        **source(address),
    )


async def test_a_flood_of_wrong_tokens_leaves_a_new_legitimate_user_answered_promptly(
    make_app, production_hash_cost
):
    async with make_app() as app:  # the default limits
        storage = get_storage(app.app)
        client = app.test_client()
        # Never authenticated: not in any cache, as every user is after a restart.
        honest = [await new_account(storage) for _ in range(5)]
        bodies = [orjson.dumps(client_body(f"guess_{k}")) for k in range(100)]
        statuses: list[int] = []
        stop = asyncio.Event()

        async def flood(k: int) -> None:
            while not stop.is_set():
                answer = await client.post(
                    CLIENT_PATH,
                    data=bodies[k],
                    headers=client_headers(secrets.token_hex(16)),
                    **source("10.66.0.1"),
                )
                statuses.append(answer.status_code)

        flooders = [asyncio.create_task(flood(k)) for k in range(100)]
        try:
            await asyncio.sleep(1.0)  # the flood is on: the hashing queue is full of it
            took = []
            for account in honest:
                started = time.perf_counter()
                answer = await post_logs(client, account, **source("10.0.0.7"))
                took.append(time.perf_counter() - started)
                await assert_added(answer, 1)  # at the first try: never a 503
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            await asyncio.gather(*flooders)
    print(
        f"\nhonest first requests during the flood: {[round(t * 1000) for t in took]} ms; "
        f"flood answers: { {s: statuses.count(s) for s in sorted(set(statuses))} }"
    )
    assert 503 in statuses  # the queue of token checks was full meanwhile
    assert 200 not in statuses
    # Not behind the flood's queue of hashes (64 waiting: seconds on this machine), only
    # behind the event loop's share of its requests (measured 0.13-0.45 s here).
    assert max(took) < 1.0


async def test_a_user_name_is_locked_after_its_failures_and_others_are_not(make_app):
    async with make_app(auth_failures_per_user=3, auth_failures_per_source=0) as app:
        storage = get_storage(app.app)
        client = app.test_client()
        alice, bob = await new_account(storage), await new_account(storage)
        for k in range(3):  # from three addresses: only the name is counted here
            await assert_error(await wrong_try(client, alice.name, f"10.1.0.{k}"), 403, "Forbidden")
        # Alice's own token, not verified before, from a fresh address: locked.
        locked = await post_logs(client, alice, **source("10.1.0.99"))
        await assert_error(locked, 429, "TooManyRequests")
        assert 1 <= int(locked.headers["Retry-After"]) <= 60
        # A look-alike spelling of the name is the same name.
        spelled = client_body("\uff55" + alice.name[1:])  # a full-width "u" first
        refused = await post_logs(client, alice, spelled, **source("10.1.0.98"))
        await assert_error(refused, 429, "TooManyRequests")
        await assert_added(await post_logs(client, bob, **source("10.1.0.0")), 1)
        assert await storage.count_logs(alice.id) == 0


async def test_an_address_is_locked_after_its_failures_and_others_are_not(make_app, monkeypatch):
    hashes = []
    monkeypatch.setattr(auth, "verify_token", lambda *a: hashes.append(1) or verify_token(*a))
    async with make_app(auth_failures_per_source=4, auth_failures_per_user=0) as app:
        storage = get_storage(app.app)
        client = app.test_client()
        carol = await new_account(storage)
        for k in range(4):
            await assert_error(await wrong_try(client, f"nobody_{k}", "10.2.0.1"), 403, "Forbidden")
        assert len(hashes) == 4
        started = time.perf_counter()
        locked = await post_logs(client, carol, **source("10.2.0.1"))
        await assert_error(locked, 429, "TooManyRequests")
        assert len(hashes) == 4  # refused before any slow hash
        assert 0.9 < time.perf_counter() - started < 3  # after a pause: no busy loop
        # Reading is locked out from there as well.
        headers = {"X-User": carol.name, "X-User-Token": carol.token}
        read = await client.get("/api/logs", headers=headers, **source("10.2.0.1"))
        await assert_error(read, 429, "TooManyRequests")
        await assert_added(await post_logs(client, carol, **source("10.2.0.2")), 1)


async def test_a_pair_verified_before_is_never_locked_out(make_app):
    # No cache time: every request reads the user's row again, as after the cache expired.
    settings = {"auth_cache_seconds": 0, "auth_failures_per_user": 2}
    async with make_app(auth_failures_per_source=2, **settings) as app:
        storage = get_storage(app.app)
        client = app.test_client()
        dave = await new_account(storage)
        await assert_added(await post_logs(client, dave, **source("10.3.0.1")), 1)
        for _ in range(3):
            await wrong_try(client, dave.name, "10.3.0.1")
        assert (await wrong_try(client, dave.name, "10.3.0.1")).status_code == 429
        await assert_added(await post_logs(client, dave, **source("10.3.0.1")), 1)
