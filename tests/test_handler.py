"""`bot_logging_server.handler.Handler`: Python's logging shipping records to the server.

What the handler stores is checked against a real server process (``python3 app.py``, both
backends), read back through ``GET /api/logs``. What it does when the server misbehaves (503
with ``Retry-After``, 429, 400, 413, dropped connections, no answer at all) is checked against
`FakeServer`, a local HTTP server answering from a script and recording every request. Exit
behaviour is checked in child processes that log and exit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, Account, ServerProcess, add_user, free_port

from bot_logging_server.handler import Handler


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll `predicate` until it is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


@pytest.fixture
def attach() -> Iterator[Callable[..., tuple[Handler, logging.Logger]]]:
    """``handler, log = attach(url, user, token, **settings)`` on a fresh logger; closed after."""
    made: list[tuple[Handler, logging.Logger]] = []

    def make(url: str, user: str, token: str, **settings: Any) -> tuple[Handler, logging.Logger]:
        handler = Handler(url, user, token, **settings)
        log = logging.getLogger(f"handler_test.{uuid.uuid4().hex[:8]}")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)
        made.append((handler, log))
        return handler, log

    yield make
    for handler, log in made:
        log.removeHandler(handler)
        handler.close()


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
        query = urllib.parse.urlencode({"p_description": logger, "limit": 1000})
        request = urllib.request.Request(
            f"{self.url}/api/logs?{query}",
            headers={"X-User": self.user.name, "X-User-Token": self.user.token},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return sorted(json.loads(response.read())["logs"], key=lambda row: row["id"])


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


EXIT_SCRIPT = """
import logging, sys
from bot_logging_server.handler import Handler

url, user, token, count, close_timeout = sys.argv[1:6]
handler = Handler(url, user, token, batch_size=1000, flush_interval=300, timeout=30,
                  close_timeout=float(close_timeout))
log = logging.getLogger("exiting")
log.addHandler(handler)
for i in range(int(count)):
    log.warning("at exit %d", i)
print("logged", flush=True)
"""


def run_and_exit(url: str, user: str, token: str, count: int, close_timeout: float) -> float:
    """Run `EXIT_SCRIPT` (log `count` records, exit); seconds from "logged" to its exit."""
    args = [url, user, token, str(count), str(close_timeout)]
    proc = subprocess.Popen(
        [sys.executable, "-c", EXIT_SCRIPT, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline() == "logged\n", proc.stderr.read()
        logged = time.monotonic()
        assert proc.wait(timeout=90) == 0, proc.stderr.read()
        return time.monotonic() - logged
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


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


# -- a scripted fake server ---------------------------------------------------------------


@dataclass
class Seen:
    """One request the fake server received."""

    at: float
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def msgs(self) -> list[str]:
        return [record["msg"] for record in self.body["data"]["logs"]]


#: An answer: a status, (status, headers), "drop" (close without answering), "hang" (answer
#: 200 only once released), or a function of the request body giving one of those.
Answer = Any


class FakeServer:
    """A local HTTP server answering POSTs from `script`, then 200; records every request."""

    def __init__(self, *script: Answer) -> None:
        self.script: deque[Answer] = deque(script)
        self.always: Answer = 200
        self.seen: list[Seen] = []
        self.release = threading.Event()
        fake = self

        class Reply(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.seen.append(Seen(time.monotonic(), headers, body))
                answer = fake.script.popleft() if fake.script else fake.always
                if callable(answer):
                    answer = answer(body)
                if answer == "drop":
                    return
                if answer == "hang":
                    fake.release.wait(60)
                    answer = 200
                status, extra = answer if isinstance(answer, tuple) else (answer, {})
                reply = json.dumps({"code": status, "message": "scripted", "detail": "why"})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Reply)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def msgs(self) -> list[str]:
        """Every message received, in order, retries included."""
        return [msg for seen in self.seen for msg in seen.msgs]


TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("status", [503, 429])
def test_503_and_429_are_retried_after_retry_after_with_the_same_idempotency_key(status, attach):
    with FakeServer((status, {"Retry-After": "1"})) as fake:
        handler, log = attach(fake.url, "alice", TOKEN)
        log.warning("sku %s", "A-17")
        handler.flush()
        wait_for(lambda: handler.stats.sent == 1, what="the retry accepted")
    first, second = fake.seen
    assert first.body == second.body and first.msgs == ["sku A-17"]
    key = first.headers["idempotency-key"]
    assert uuid.UUID(key).version == 4 and second.headers["idempotency-key"] == key
    assert first.headers["x-user-token"] == TOKEN
    assert second.at - first.at >= 0.95  # Retry-After: 1, not the 0.25-0.5 s first back-off
    stats = handler.stats
    assert (stats.requests, stats.retries, stats.dropped) == (2, 1, 0)
    assert f"HTTP {status}" in stats.last_error


def test_a_dropped_connection_is_retried_with_the_same_key(attach):
    with FakeServer("drop", "drop") as fake:
        handler, log = attach(fake.url, "alice", TOKEN, flush_interval=0.1)
        log.warning("through")
        wait_for(lambda: handler.stats.sent == 1, what="delivered on the third attempt")
    assert [seen.msgs for seen in fake.seen] == [["through"]] * 3
    assert len({seen.headers["idempotency-key"] for seen in fake.seen}) == 1


def test_each_batch_has_its_own_idempotency_key(attach):
    with FakeServer() as fake:
        handler, log = attach(fake.url, "alice", TOKEN, batch_size=2)
        for i in range(6):
            log.warning("r%d", i)
        wait_for(lambda: handler.stats.sent == 6)
    assert len({seen.headers["idempotency-key"] for seen in fake.seen}) == 3


def test_a_400_drops_the_batch_counts_it_and_the_sender_keeps_going(attach, capsys):
    with FakeServer(400) as fake:
        handler, log = attach(fake.url, "alice", TOKEN)
        log.warning("refused")
        handler.flush()
        log.warning("after")
        handler.flush()
        assert fake.msgs() == ["refused", "after"]
    stats = handler.stats
    assert (stats.sent, stats.dropped_rejected, stats.requests, stats.queued) == (1, 1, 2, 0)
    assert stats.last_error == "HTTP 400 scripted: why"
    assert "refused a batch of 1 records (HTTP 400 scripted: why)" in capsys.readouterr().err


def test_a_413_splits_the_batch_until_it_fits(attach):
    def too_large(body: dict[str, Any]) -> int:
        return 413 if len(body["data"]["logs"]) > 2 else 200

    with FakeServer() as fake:
        fake.always = too_large
        handler, log = attach(fake.url, "alice", TOKEN, batch_size=5)
        for i in range(5):
            log.warning("big %d", i)
        wait_for(lambda: handler.stats.sent == 5)
    accepted = [msg for seen in fake.seen if len(seen.msgs) <= 2 for msg in seen.msgs]
    assert accepted == [f"big {i}" for i in range(5)]
    assert [len(seen.msgs) for seen in fake.seen] == [5, 2, 3, 1, 2]


def test_a_bad_format_string_is_sent_raw_instead_of_lost(attach):
    with FakeServer() as fake:
        handler, log = attach(fake.url, "alice", TOKEN)
        log.warning("sku %d", "A-17")  # a TypeError in logging's own formatting
        handler.flush()
    [msg] = fake.msgs()
    assert msg.startswith("sku %d (arguments ('A-17',)") and "TypeError" in msg


def silent_port() -> tuple[socket.socket, int]:
    """A port that accepts connections (the kernel's backlog) but never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, sock.getsockname()[1]


def test_the_application_never_waits_or_sees_an_error_when_the_server_is_silent(attach):
    sock, port = silent_port()
    try:
        handler, log = attach(
            f"http://127.0.0.1:{port}", "alice", TOKEN, batch_size=10, timeout=30, close_timeout=1
        )
        slowest = 0.0
        for i in range(2000):
            started = time.perf_counter()
            log.error("lost %d", i)  # would raise or hang if sent from the caller's thread
            slowest = max(slowest, time.perf_counter() - started)
        assert slowest < 0.25
        started = time.monotonic()
        handler.close()
        assert time.monotonic() - started < 3  # close_timeout 1 s (+1 s grace), not timeout 30
        stats = handler.stats  # the sender is still stuck in its request: close counted it
        assert stats.sent == 0 and stats.queued == 0
        assert stats.dropped_full + stats.dropped_unsent == 2000
    finally:
        sock.close()


def test_close_alone_delivers_what_is_queued_before_it_returns(attach):
    def slowly(body: dict[str, Any]) -> int:
        time.sleep(0.5)
        return 200

    with FakeServer() as fake:
        fake.always = slowly
        handler, log = attach(fake.url, "alice", TOKEN, flush_interval=300)
        for i in range(3):
            log.warning("closing %d", i)
        handler.close()
        assert handler.stats.sent == 3
        assert fake.msgs() == ["closing 0", "closing 1", "closing 2"]


def test_close_cuts_a_request_to_what_is_left_of_close_timeout(attach):
    sock, port = silent_port()
    try:
        handler, log = attach(
            f"http://127.0.0.1:{port}",
            "alice",
            TOKEN,
            flush_interval=300,
            timeout=30,
            close_timeout=1.5,
        )
        log.warning("never answered")
        started = time.monotonic()
        handler.close()  # the batch's request starts now, with 1.5 s left, not 30
        took = time.monotonic() - started
    finally:
        sock.close()
    assert "timed out" in handler.stats.last_error  # the request's own timeout, cut to 1.5 s
    assert took < 2.4  # the deadline, not the deadline plus close's 1 s grace
    assert handler.stats.dropped_unsent == 1


def test_the_queue_never_holds_more_than_max_queue_records(attach):
    with FakeServer() as fake:
        fake.always = "hang"
        handler, log = attach(fake.url, "alice", TOKEN, batch_size=10, max_queue=50)
        for i in range(500):
            log.warning("q %d", i)
        stats = handler.stats
        assert (stats.queued, stats.dropped_full) == (50, 450)
        fake.always = 200
        fake.release.set()
        wait_for(lambda: handler.stats.sent == 50, what="the 50 held records delivered")
    assert sorted(set(fake.msgs())) == sorted(f"q {i}" for i in range(50))


@pytest.mark.parametrize("server", ["refused", "silent"])
def test_a_process_exits_within_close_timeout_when_the_server_is_down(server):
    sock = None
    if server == "refused":
        port = free_port()
    else:
        sock, port = silent_port()
    try:
        took = run_and_exit(f"http://127.0.0.1:{port}", "alice", TOKEN, 50, close_timeout=1)
    finally:
        if sock is not None:
            sock.close()
    assert took < 6  # flush (<= 1 s) + close (<= 1 s + 1 s grace) + interpreter teardown


FORK_SCRIPT = """
import logging, os, sys
from bot_logging_server.handler import Handler

handler = Handler(sys.argv[1], "alice", "0" * 32, batch_size=100, flush_interval=300)
log = logging.getLogger("forking")
log.addHandler(handler)
log.warning("before fork")  # queued, not sent: the parent's to send
pid = os.fork()
if pid == 0:
    log.warning("in child")
    handler.flush()
    os._exit(0)
os.waitpid(pid, 0)
print(pid, flush=True)
log.warning("parent after")
"""


def test_a_forked_child_sends_its_own_records_and_not_the_parents():
    with FakeServer() as fake:
        result = subprocess.run(
            [sys.executable, "-c", FORK_SCRIPT, fake.url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
    child = int(result.stdout)
    assert sorted(fake.msgs()) == ["before fork", "in child", "parent after"]
    [from_child] = [seen for seen in fake.seen if seen.msgs == ["in child"]]
    assert from_child.body["data"]["pid"] == child


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
