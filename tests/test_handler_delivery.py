"""The logging handler stores what the application logs: checked against ``python3 app.py``
on both backends, read back through ``GET /api/logs``.

Arguments are formatted and tracebacks kept (a bad format string is sent raw, not lost);
records go in batches of ``batch_size``, or after ``flush_interval``; a process that logs
and exits delivers what it queued; the README's snippet stores what it says; the handler
needs only the standard library.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support import (
    ROOT,
    TOKEN,
    Account,
    FakeServer,
    ServerProcess,
    add_user,
    logger_rows,
    run_and_exit,
    wait_for,
)

# -- a real server process, on both backends ----------------------------------------------


@dataclass
class Live:
    """A running server and a user of it."""

    port: int
    user: Account

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rows(self, logger: str) -> list[dict[str, Any]]:
        """The user's stored records from logger `logger`, oldest first (``GET /api/logs``)."""
        return logger_rows(self.port, self.user, logger)


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """``python3 app.py`` on SQLite, then on MySQL, with one user (once per backend)."""
    if request.param == "sqlite":
        database_url = f"sqlite:///{tmp_path_factory.mktemp('handler-db') / 'logs.db'}"
    else:
        database_url = request.getfixturevalue("mysql_database")
    user = asyncio.run(add_user(database_url))
    with ServerProcess(database_url, tmp_path_factory.mktemp("handler-server")) as server:
        server.wait_ready_blocking()
        yield Live(server.port, user)


def test_arguments_are_formatted_and_a_traceback_follows_the_message(live, attach):
    handler, log = attach(live.url, live.user.name, live.user.token)
    log.warning("sku %s", "A-17")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.exception("charge %d failed", 42)
    handler.flush()
    rows = live.rows(log.name)
    assert [row["msg"].splitlines()[0] for row in rows] == ["sku A-17", "charge 42 failed"]
    assert "Traceback (most recent call last):" in rows[1]["msg"]
    assert rows[1]["msg"].rstrip().endswith("ZeroDivisionError: division by zero")
    assert [row["level"] for row in rows] == [logging.WARNING, logging.ERROR]
    comm = Path("/proc/self/comm").read_text().strip()
    for row in rows:
        assert (row["pid"], row["p_name"], row["p_description"]) == (os.getpid(), comm, log.name)
        event_at = datetime.fromisoformat(row["event_at"].replace("Z", "+00:00"))
        assert abs((datetime.now(UTC) - event_at).total_seconds()) < 60
    assert handler.stats.sent == 2 and handler.stats.dropped == 0


def test_records_go_in_batches_of_batch_size_without_a_flush(live, attach):
    handler, log = attach(
        live.url, live.user.name, live.user.token, batch_size=25, flush_interval=300
    )
    for i in range(100):
        log.warning("record %d", i)
    wait_for(lambda: handler.stats.sent == 100, what="100 records sent in full batches")
    assert handler.stats.requests == 4
    assert [row["msg"] for row in live.rows(log.name)] == [f"record {i}" for i in range(100)]


def test_a_lone_record_is_sent_after_flush_interval(live, attach):
    handler, log = attach(live.url, live.user.name, live.user.token, flush_interval=0.3)
    log.error("alone")
    wait_for(lambda: live.rows(log.name), timeout=10, what="the record stored without a flush")
    assert handler.stats.requests == 1


def test_a_process_that_logs_and_exits_delivers_its_queued_records(live):
    run_and_exit(live.url, live.user.name, live.user.token, 30, close_timeout=10)
    rows = live.rows("exiting")
    assert sorted(row["msg"] for row in rows) == sorted(f"at exit {i}" for i in range(30))


def test_the_readme_snippet_stores_what_it_says(live):
    readme = (ROOT / "README.md").read_text()
    snippet = readme.split("**From Python's logging**", 1)[1].split("```python\n", 1)[1]
    snippet = snippet.split("```", 1)[0]
    snippet = snippet.replace("http://127.0.0.1:5000", live.url)
    snippet = snippet.replace('"alice"', repr(live.user.name))
    snippet = snippet.replace('"c4e31313222cf05fcdd1fc068af5570e"', repr(live.user.token))
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    first, second = live.rows("billing")[-2:]
    assert first["msg"] == "sku A-17 out of stock"
    assert second["msg"].startswith("charge failed\nTraceback (most recent call last):")


def test_a_bad_format_string_is_sent_raw_instead_of_lost(attach):
    with FakeServer() as fake:
        handler, log = attach(fake.url, "alice", TOKEN)
        log.warning("sku %d", "A-17")  # a TypeError in logging's own formatting
        handler.flush()
    [msg] = fake.msgs()
    assert msg.startswith("sku %d (arguments ('A-17',)") and "TypeError" in msg


STDLIB_ONLY_SCRIPT = """
import logging, sys

sys.path.insert(0, sys.argv[1])  # the repository root, and nothing else besides the stdlib
from bot_logging_server.handler import Handler

handler = Handler(sys.argv[2], "alice", "0" * 32)
logging.getLogger("plain").addHandler(handler)
logging.getLogger("plain").warning("no %s needed", "dependencies")
handler.close()
outside = {name.split(".")[0] for name in sys.modules} - set(sys.stdlib_module_names)
print(handler.stats.sent, sorted(outside - {"bot_logging_server", "__main__"}))
"""


def test_the_handler_needs_only_the_standard_library():
    with FakeServer() as fake:
        result = subprocess.run(
            # -I -S: no site-packages, no current directory: only the standard library
            [sys.executable, "-I", "-S", "-c", STDLIB_ONLY_SCRIPT, str(ROOT), fake.url],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(maxsplit=1) == ["1", "[]\n"]
    assert fake.msgs() == ["no dependencies needed"]
