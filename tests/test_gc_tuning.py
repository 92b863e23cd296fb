"""A server process tunes its garbage collector once it has started.

Every request allocates hundreds of objects; with CPython's defaults the collector walked the
app's own long-lived objects again and again under load. A served process (alone, or each
worker) collects once it has started, freezes what it holds and raises the youngest
generation's threshold to `GC_THRESHOLD`; an app used in-process (the tests) is left alone.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from bot_logging_server.gc_tuning import GC_THRESHOLD

WORKER = textwrap.dedent(
    """
    import asyncio, gc, json
    from bot_logging_server.server import worker_app

    app = worker_app()
    before = (gc.get_threshold()[0], gc.get_freeze_count())

    async def main():
        async with app.test_app():
            return (gc.get_threshold()[0], gc.get_freeze_count())

    print(json.dumps([before, asyncio.run(main())]))
    """
)


def test_a_worker_freezes_its_objects_and_raises_the_threshold_once_started(tmp_path):
    env = {"LOGGER_DATABASE_URL": f"sqlite:///{tmp_path / 'gc.db'}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", WORKER],
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    before, started = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == [gc.get_threshold()[0], 0]  # nothing tuned before the start
    assert started[0] == GC_THRESHOLD
    assert started[1] > 10_000  # the app's modules, routes and schemas: frozen


def test_an_app_in_process_leaves_the_collector_alone(app):
    # The `app` fixture has started the app in this process (the tests' way).
    assert gc.get_threshold()[0] != GC_THRESHOLD
    assert gc.get_freeze_count() == 0
