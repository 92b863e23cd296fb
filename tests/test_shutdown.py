"""Stopping the server, gently (SIGTERM) or not (kill -9), never loses an acknowledged batch.

SIGTERM under load: the server stops accepting, finishes the requests it accepted (even one
whose body is still arriving), commits, answers, closes its storage and exits 0. kill -9 in
the middle of a load: every batch answered 200 is stored, and no batch is stored in part
(each batch has its own ``p_name``: 0 or all of its rows).
"""

from __future__ import annotations

import asyncio
import signal

import pytest
from support import (
    Load,
    ServerProcess,
    add_user,
    batch_body,
    client_headers,
    half_sent_request,
    parse_reply,
    rows_per_batch,
)

pytestmark = pytest.mark.slow


async def test_sigterm_under_load_finishes_accepted_requests_commits_and_exits_0(
    fresh_database_url, tmp_path
):
    user = await add_user(fresh_database_url)
    with ServerProcess(fresh_database_url, tmp_path) as server:
        await server.wait_ready()
        load = Load(server.port, user, workers=6, records=20, pause=0.01).start()
        await asyncio.sleep(1.5)
        # A request the server has accepted but whose body is only half here yet.
        slow_body = batch_body(user.name, "slow", 500)
        finish = await half_sent_request(server.port, slow_body, client_headers(user.token))
        await asyncio.sleep(0.2)
        server.signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        slow_reply = parse_reply(await finish())
        code = await server.wait_exit(timeout=15)
        await load.stop()
        output = server.output()
    assert code == 0, output
    assert slow_reply.status == 200 and slow_reply.json()["added"] == 500
    assert "Traceback" not in output and " ERROR " not in output, output[-2000:]
    stored = await asyncio.to_thread(rows_per_batch, fresh_database_url, user.id)
    assert stored.pop("slow") == 500
    result = load.check_database(stored)
    statuses = load.statuses()
    assert statuses.get(200, 0) > 0
    # After the signal: answers, or connections refused; never a 5xx.
    assert not {s for s in statuses if isinstance(s, int) and s != 200}, statuses
    # hypercorn closes connections it considers idle the moment it is told to stop: those
    # still queued, or whose request it has not parsed yet, end unanswered and undone (the
    # client retries). A request parsed in that very instant is still served but its answer
    # is lost (hypercorn's idle-close and its new stream race: the retry then stores it
    # twice). Measured 0-1 per SIGTERM; more would be a regression.
    assert result["unacked_batches_stored_whole"] <= 2, (statuses, result)
    assert not load.bad_replies, load.bad_replies[:5]
    print(f"\nSIGTERM figures: statuses {statuses} {result}")


async def test_kill_9_mid_load_leaves_no_partial_batch(fresh_database_url, tmp_path):
    user = await add_user(fresh_database_url)
    loads = []
    for round_ in range(3):
        with ServerProcess(fresh_database_url, tmp_path) as server:
            await server.wait_ready()
            load = Load(server.port, user, workers=4, records=200, prefix=f"k{round_}-")
            load.pause = 0.01
            load.start()
            await asyncio.sleep(1.0 + 0.3 * round_)
            server.signal(signal.SIGKILL)
            await server.wait_exit(timeout=10)
            await load.stop()
            loads.append(load)
    stored = await asyncio.to_thread(rows_per_batch, fresh_database_url, user.id)
    figures = []
    for load in loads:
        mine = {p: n for p, n in stored.items() if p.startswith(load.prefix)}
        figures.append(load.check_database(mine))
    assert sum(f["batches_acked"] for f in figures) > 0
    print(f"\nkill -9 figures: {figures}")
