"""Several workers: ``python3 app.py --workers N`` starts safely and behaves the same.

N hypercorn worker processes start at once on a database nobody has used yet, so they race
to create it (MySQL) and its schema (both backends); the named lock (MySQL) and
``BEGIN IMMEDIATE`` (SQLite) must serialise them. Then the server answers as one process does,
stores every acknowledged batch exactly once, and stops gracefully on SIGTERM with exit code 0,
whether the signal goes to the parent only (docker) or to every process (systemd): a request
whose body is still arriving is finished and answered.
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
    http,
    parse_reply,
    rows_per_batch,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("signal_to", ["parent", "group"])
async def test_workers_start_on_a_fresh_database_serve_and_stop_cleanly(
    fresh_database_url, tmp_path, signal_to
):
    with ServerProcess(fresh_database_url, tmp_path, "--workers", "3") as server:
        await server.wait_ready(timeout=60)
        assert server.processes() >= 4  # the parent and 3 workers
        user = await add_user(fresh_database_url)
        load = Load(server.port, user, workers=6, records=10).start()
        await asyncio.sleep(2.0)
        missing = await http(server.port, "GET", "/nowhere")
        refused = await http(
            server.port,
            "POST",
            "//send_logs",
            b'{"data": {"user": "%s"}}' % user.name.encode(),
            {"X-User-Token": "0" * 32},
        )
        slow_body = batch_body(user.name, "slow", 300)
        finish = await half_sent_request(server.port, slow_body, client_headers(user.token))
        await asyncio.sleep(0.3)
        if signal_to == "parent":
            server.proc.send_signal(signal.SIGTERM)
        else:
            server.signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        slow_reply = parse_reply(await finish())
        # Bounded by hypercorn's graceful timeout (10 s) plus a write still waiting for the
        # database (--db-timeout, 10 s): three SQLite workers share one write lock.
        code = await server.wait_exit(timeout=45)
        await load.stop()
        output = server.output()
    assert code == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert (missing.status, missing.json()) == (404, {"code": 404, "message": "NotFound"})
    assert (refused.status, refused.json()) == (403, {"code": 403, "message": "Forbidden"})
    assert (slow_reply.status, slow_reply.json()["added"]) == (200, 300)
    statuses = load.statuses()
    assert not {s for s in statuses if isinstance(s, int) and s != 200}, statuses
    stored = await asyncio.to_thread(rows_per_batch, fresh_database_url, user.id)
    assert stored.pop("slow") == 300
    result = load.check_database(stored)
    # Connections the kernel had queued are reset unanswered (nothing done: the client
    # retries); a few requests racing the signal are done but unanswered (a hypercorn race,
    # see test_shutdown): measured 0-3 with 3 workers.
    assert result["unacked_batches_stored_whole"] <= 6, (statuses, result)
    print(f"\nworkers figures ({signal_to}): statuses {statuses} {result}")
