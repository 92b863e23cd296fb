"""Nothing is stored for a user removed or disabled meanwhile, on both backends.

A batch is authenticated (and the pair cached for ``--auth-cache-seconds``) before it is
written, and ``users remove`` may run in another process in between. The group-commit
transaction reads its users again, first, so a batch of a user who is gone is answered 403
and none of its rows is stored under a dangling ``user_id``; the other batches of the same
group are stored as usual.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from datetime import datetime

import pytest
from support import (
    CLIENT_PATH,
    ROOT,
    assert_added,
    assert_error,
    client_body,
    client_headers,
    post_logs,
)

from bot_logging_server.accounts import create_user
from bot_logging_server.storage import LogRow, UserNotActive


def _cli(database_url: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--database-url", database_url, *args],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    )


async def _rows_of(storage, user_id: int) -> int:
    rows = await storage.db.fetch("SELECT COUNT(*) FROM user_logs WHERE user_id = ?", (user_id,))
    return int(rows[0][0])


async def _orphans(storage) -> int:
    """Rows whose ``user_id`` names no user."""
    rows = await storage.db.fetch(
        "SELECT COUNT(*) FROM user_logs WHERE user_id NOT IN (SELECT id FROM users)"
    )
    return int(rows[0][0])


@pytest.mark.parametrize("command", ["remove", "disable"])
async def test_a_batch_for_a_user_gone_since_its_token_was_cached_is_403_and_stores_nothing(
    make_app, database_url, command
):
    # The pair stays cached for 5 s: only the write itself can notice the change.
    async with make_app(auth_cache_seconds=5) as app:
        from bot_logging_server.storage import get_storage

        storage = get_storage(app.app)
        client = app.test_client()
        new = await create_user(storage, f"u_{uuid.uuid4().hex[:10]}")
        account = type("A", (), {"name": new.user.username, "token": new.token})
        await assert_added(await post_logs(client, account, client_body(account.name, 2)), 2)
        extra = ("--yes",) if command == "remove" else ()
        await asyncio.to_thread(_cli, database_url, "users", command, account.name, *extra)
        response = await post_logs(client, account, client_body(account.name, 3))
        body = await assert_error(response, 403, "Forbidden")
        assert "detail" not in body
        expected = 0 if command == "remove" else 2  # the removal took the first two with it
        assert await _rows_of(storage, new.user.id) == expected
        assert await _orphans(storage) == 0


async def test_a_gone_users_batch_sent_with_an_idempotency_key_records_no_key(
    make_app, database_url
):
    async with make_app(auth_cache_seconds=5) as app:
        from bot_logging_server.storage import get_storage

        storage = get_storage(app.app)
        client = app.test_client()
        new = await create_user(storage, f"u_{uuid.uuid4().hex[:10]}")
        account = type("A", (), {"name": new.user.username, "token": new.token})
        await assert_added(await post_logs(client, account), 1)
        await asyncio.to_thread(_cli, database_url, "users", "disable", account.name)
        response = await client.post(
            CLIENT_PATH,
            json=client_body(account.name, 3),
            headers={**client_headers(account.token), "Idempotency-Key": uuid.uuid4().hex},
        )
        await assert_error(response, 403, "Forbidden")
        # The refused batch left no key behind (a retry after re-enabling is a new batch).
        assert await storage.count_idempotency_keys(new.user.id) == 0
        assert await _rows_of(storage, new.user.id) == 1


async def test_a_gone_users_batch_does_not_fail_the_others_in_its_group(storage):
    users = [await create_user(storage, f"u_{uuid.uuid4().hex[:10]}") for _ in range(4)]
    first, alive, gone, disabled = (u.user.id for u in users)
    # Removed and disabled by "another process": straight in the table, no cache involved.
    async with storage.db.transaction() as tx:
        await tx.execute("DELETE FROM users WHERE id = ?", (gone,))
        await tx.execute("UPDATE users SET disabled = 1 WHERE id = ?", (disabled,))
    at = datetime(2026, 1, 1)
    rows = [LogRow(1, "p", "d", 40, f"m{i}", False, 2, at, at) for i in range(5)]
    # The first calls take every writer at once; the last three wait and form one group.
    leading = [first] * storage.db.writers
    results = await asyncio.gather(
        *(storage.insert_logs(u, rows, at) for u in (*leading, alive, gone, disabled)),
        return_exceptions=True,
    )
    *written, of_gone, of_disabled = results
    assert written == [5] * (len(leading) + 1)
    assert isinstance(of_gone, UserNotActive)
    assert isinstance(of_disabled, UserNotActive)
    assert storage._group.stats.largest_group >= 3, "the batches were not written as one group"
    stored = [await _rows_of(storage, user_id) for user_id in (first, alive, gone, disabled)]
    assert stored == [5 * len(leading), 5, 0, 0]


async def test_ingest_running_while_users_remove_runs_in_another_process_leaves_no_orphans(
    make_app, database_url
):
    async with make_app(auth_cache_seconds=5) as app:
        from bot_logging_server.storage import get_storage

        storage = get_storage(app.app)
        client = app.test_client()
        new = await create_user(storage, f"u_{uuid.uuid4().hex[:10]}")
        account = type("A", (), {"name": new.user.username, "token": new.token})
        await assert_added(await post_logs(client, account), 1)
        removed = asyncio.Event()
        answers: list[tuple[bool, int]] = []  # (sent after the removal returned, status)

        async def ingest(worker: int) -> None:
            while True:
                sent_after = removed.is_set()
                response = await post_logs(client, account, client_body(account.name, 5))
                answers.append((sent_after, response.status_code))
                if sent_after and len([a for a in answers if a[0]]) >= 20:
                    return

        clients = [asyncio.ensure_future(ingest(w)) for w in range(4)]
        await asyncio.sleep(0.3)
        await asyncio.to_thread(_cli, database_url, "users", "remove", account.name, "--yes")
        removed.set()
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*clients), 30)
        assert time.monotonic() - started < 30
        before = [status for after, status in answers if not after]
        after = [status for after, status in answers if after]
        assert 200 in before, "no batch was accepted before the removal"
        assert set(after) == {403}, after
        assert await _rows_of(storage, new.user.id) == 0
        assert await _orphans(storage) == 0
