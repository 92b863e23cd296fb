"""Several workers: ``python3 app.py --workers N`` starts safely and behaves the same.

N hypercorn worker processes start at once on a database nobody has used yet, so they race
to create it (MySQL) and its schema (both backends); the named lock (MySQL) and
``BEGIN IMMEDIATE`` (SQLite) must serialise them. Then the server answers as one process does,
stores every acknowledged batch exactly once, and stops on SIGTERM with exit code 0.
"""

from __future__ import annotations

import asyncio
import signal

import pytest
from realserver import Load, ServerProcess, add_user, http, rows_per_batch

pytestmark = pytest.mark.slow


async def test_workers_start_on_a_fresh_database_serve_and_stop_cleanly(
    fresh_database_url, tmp_path
):
    with ServerProcess(fresh_database_url, tmp_path, "--workers", "3") as server:
        await server.wait_ready(timeout=60)
        assert server.processes() >= 4  # the parent and 3 workers
        user = await add_user(fresh_database_url)
        load = Load(server.port, user, workers=6, records=10).start()
        await asyncio.sleep(2.0)
        await load.stop()
        missing = await http(server.port, "GET", "/nowhere")
        refused = await http(
            server.port,
            "POST",
            "//send_logs",
            b'{"data": {"user": "%s"}}' % user.name.encode(),
            {"X-User-Token": "0" * 32},
        )
        server.signal(signal.SIGTERM)
        code = await server.wait_exit(timeout=20)
        output = server.output()
    assert code == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert (missing.status, missing.json()) == (404, {"code": 404, "message": "NotFound"})
    assert (refused.status, refused.json()) == (403, {"code": 403, "message": "Forbidden"})
    assert load.statuses() == {200: len(load.results)}, load.statuses()
    stored = await asyncio.to_thread(rows_per_batch, fresh_database_url, user.id)
    result = load.check_database(stored)
    assert result["records_in_table"] == result["records_acked"]
    print(f"\nworkers figures: {result}")
