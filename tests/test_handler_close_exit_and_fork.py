"""The logging handler never holds the application up: close, process exit, fork.

Logging never waits or raises when the server is silent; the queue holds at most
``max_queue`` records; ``close()`` delivers what is queued, within ``close_timeout``; a
process exits within ``close_timeout`` when the server is down; a forked child sends its
own records and not its parent's.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Any

import pytest
from support import ROOT, TOKEN, FakeServer, free_port, run_and_exit, wait_for


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
