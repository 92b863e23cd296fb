"""Unauthenticated abuse against a real server process: memory and latency stay bounded.

docs/API.md, "Limits and their flags": a hundred uploads that each send 15 MiB of a 16 MiB
body and stall cannot take the server's memory (request bodies held at once are bounded by
``--max-buffered-bytes``; the rest are answered 503 before they are read), and a client
looping bodies that are slow to parse cannot stall the others (large bodies are parsed in a
helper process). Meanwhile an honest client's requests are answered as usual. A body without
a usable token is refused 403 before it is sent.

Latency bounds hold on a busy shared 2-core machine yet still mean something: 100 ms (250 ms
for the slow bodies), or three times the same client's p99 measured alone just before, when
the machine is so loaded that this is more (`bound`); before these defences the figures were
3 s and 1.3 s. Each figure is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Account, ServerProcess, add_user, batch_body, http, parse_reply

pytestmark = pytest.mark.slow

MIB = 1024 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, Account, Account]]:
    """A server with the default limits, an honest user and a second one.

    The database is in memory-backed storage when the machine has it: what is measured is
    the server's memory and event loop, not the disk's fsync time under other test runs.
    """
    shm = Path("/dev/shm")
    where = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp_path
    url = f"sqlite:///{where / 'abuse.db'}"
    try:
        honest = asyncio.run(add_user(url))
        other = asyncio.run(add_user(url))
        with ServerProcess(url, tmp_path) as proc:
            asyncio.run(proc.wait_ready())
            yield proc, honest, other
    finally:
        if where != tmp_path:
            shutil.rmtree(where, ignore_errors=True)


def rss(proc: ServerProcess) -> int:
    """Resident memory of the server's processes together (the helper process included)."""
    assert proc.proc is not None
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError):
            if os.getpgid(int(entry.name)) != proc.proc.pid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def head(port: int, token: str, length: int) -> bytes:
    return (
        f"POST //send_logs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nX-User-Token: {token}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


#: `first_answer` when the server closed (or reset) the connection without an answer read:
#: a close with the client's bytes unread resets it, which may drop an answer in flight.
CLOSED = 0


async def first_answer(reader: asyncio.StreamReader) -> int:
    """The status of the answer the server sends (`CLOSED`: closed without one read)."""
    raw = b""
    with contextlib.suppress(ConnectionError):
        while b"\r\n\r\n" not in raw:
            data = await reader.read(65536)
            if not data:
                break
            raw += data
    return parse_reply(raw).status if b"\r\n\r\n" in raw else CLOSED


class Honest:
    """An honest client posting small batches one after another, timing each answer."""

    def __init__(self, port: int, user: Account) -> None:
        self.port, self.user = port, user
        self.took: list[float] = []
        self.statuses: list[int] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def one(self, name: str) -> None:
        headers = {"Content-Type": "application/json", "X-User-Token": self.user.token}
        started = time.perf_counter()
        reply = await http(
            self.port, "POST", "//send_logs", batch_body(self.user.name, name, 5), headers
        )
        self.took.append(time.perf_counter() - started)
        self.statuses.append(reply.status)

    def start(self) -> Honest:
        async def run() -> None:
            n = 0
            while not self._stop.is_set():
                n += 1
                await self.one(f"honest-{n}")
                await asyncio.sleep(0.02)

        self._task = asyncio.ensure_future(run())
        return self

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    def p99(self) -> float:
        return statistics.quantiles(self.took, n=100)[98]

    async def quiet_p99(self, seconds: float = 2.0) -> float:
        """The p99 of this client alone for `seconds` (after a first, cached-token request):
        how fast this machine answers it right now, with nothing else asked of the server."""
        await self.one("warm-up")  # the token is checked (and cached) once
        self.took.clear()
        self.start()
        await asyncio.sleep(seconds)
        await self.stop()
        quiet = self.p99()
        self.took.clear()
        self.statuses.clear()
        self._stop = asyncio.Event()
        return quiet


def bound(quiet: float, floor: float) -> float:
    """A latency bound that holds on a busy shared machine yet still means something: `floor`,
    or three times the quiet p99 when the machine is so loaded that this is more."""
    return max(floor, 3 * quiet)


async def test_100_stalled_uploads_keep_memory_bounded_and_honest_clients_fast(server):
    proc, honest, _ = server
    limit = 300 * MIB
    client = Honest(proc.port, honest)
    quiet = await client.quiet_p99()
    baseline = rss(proc)
    peak = baseline
    over = asyncio.Event()
    chunk = b" " * 65536

    async def upload(k: int) -> tuple[int | None, int]:
        """Send 15 MiB of a declared 16 MiB body, then stall; the answer and bytes sent."""
        reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
        answer = asyncio.ensure_future(first_answer(reader))
        sent = 0
        try:
            writer.write(head(proc.port, "0" * 32, 16 * MIB))
            while sent < 15 * MIB and not answer.done() and not over.is_set():
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        except ConnectionError:
            pass
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(answer), 0.5)
        uploads_done.append(k)
        await stop_uploads.wait()  # stalled, connection open
        writer.close()
        answer.cancel()
        return (answer.result() if answer.done() and not answer.cancelled() else None), sent

    async def monitor() -> None:
        nonlocal peak
        while not stop_uploads.is_set():
            peak = max(peak, rss(proc))
            if peak > limit:
                over.set()  # stop feeding a server that keeps everything
            await asyncio.sleep(0.05)

    uploads_done: list[int] = []
    stop_uploads = asyncio.Event()
    watcher = asyncio.ensure_future(monitor())
    client.start()
    uploads = [asyncio.ensure_future(upload(k)) for k in range(100)]
    while len(uploads_done) < 100 and not over.is_set():
        await asyncio.sleep(0.1)
    during_uploads = len(client.took)
    await asyncio.sleep(4.0)  # 100 uploads stalled (or refused); the honest client goes on
    await client.stop()
    stop_uploads.set()
    results = await asyncio.gather(*uploads)
    await watcher
    statuses = [status for status, _ in results]
    whole = [sent for _, sent in results if sent >= 15 * MIB]
    offered = sum(sent for _, sent in results)
    stalled_p99 = statistics.quantiles(client.took[during_uploads:], n=100)[98]
    print(
        f"\nhonest p99 alone {quiet * 1000:.0f} ms; RSS {baseline / MIB:.0f} MiB before, "
        f"peak {peak / MIB:.0f} MiB with 100 uploads "
        f"({len(whole)} sent their 15 MiB and stalled, {offered / MIB:.0f} MiB sent in all); "
        f"answers {{status: count}} { {s: statuses.count(s) for s in set(statuses)} } "
        f"(None: still waiting; {CLOSED}: closed or reset before an answer was read); "
        f"honest requests: "
        f"{len(client.took)} (200: {client.statuses.count(200)}), p99 "
        f"{stalled_p99 * 1000:.0f} ms while the uploads stalled, max "
        f"{max(client.took[:during_uploads] or [0]) * 1000:.0f} ms while they were sent "
        f"and refused"
    )
    assert peak < limit
    assert len(whole) <= 4  # 64 MiB of bodies at once: the rest refused early
    # Refused: answered 503, or closed by the server after its 503 (a reset can drop it).
    assert statuses.count(503) >= 10
    assert statuses.count(503) + statuses.count(CLOSED) >= 90
    assert set(client.statuses) == {200}
    # 3 s before the fix (the event loop receiving 1.5 GB); 16-31 ms measured after it.
    assert stalled_p99 < bound(quiet, 0.1)


async def test_a_16_mib_body_without_a_usable_token_is_403_before_it_is_sent(server):
    proc, _, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
    try:
        started = time.perf_counter()
        writer.write(head(proc.port, "not-a-token", 16 * MIB))
        await writer.drain()  # not one byte of the body
        status = await asyncio.wait_for(first_answer(reader), 5)
        assert status == 403
        assert time.perf_counter() - started < 1.0
    finally:
        writer.close()


def slow_body(user: str, size: int) -> bytes:
    """A body that is costly to parse: millions of empty records, and a ``NaN`` at the end
    (orjson refuses it, so the slower standard parser reads it all again)."""
    start = b'{"data": {"user": "%s", "logs": [' % user.encode()
    end = b']}, "x": NaN}'
    count = (size - len(start) - len(end)) // 3
    return start + b"{}," * count + b"{}" + end


async def test_a_client_looping_slow_to_parse_bodies_does_not_stall_the_others(server):
    proc, honest, other = server
    client = Honest(proc.port, honest)
    quiet = await client.quiet_p99()
    body = slow_body(other.name, 8 * MIB)
    headers = {"Content-Type": "application/json", "X-User-Token": other.token}
    answers: list[int] = []
    stop = asyncio.Event()

    async def flood() -> None:
        while not stop.is_set():
            reply = await http(proc.port, "POST", "//send_logs", body, headers, timeout=60)
            answers.append(reply.status)

    flooder = asyncio.ensure_future(flood())
    await asyncio.sleep(1.0)
    client.start()
    await asyncio.sleep(6.0)
    await client.stop()
    stop.set()
    await flooder
    print(
        f"\nhonest p99 alone {quiet * 1000:.0f} ms; 8 MiB slow bodies answered: {answers}; "
        f"honest requests meanwhile: {len(client.took)}, "
        f"p99 {client.p99() * 1000:.0f} ms, max {max(client.took) * 1000:.0f} ms"
    )
    assert answers and set(answers) == {413}  # read to the end, refused for its size
    assert set(client.statuses) == {200}
    # Parsed on the event loop, each body stalls it for about a second (p99 1.3 s measured);
    # in the helper process, receiving and handing over 8 MiB still costs the loop a little
    # (p99 56-117 ms measured here, with the load of other test runs): a bound with room.
    assert client.p99() < bound(quiet, 0.25)
