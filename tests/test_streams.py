"""Long responses run as long as the client reads them, and a cut one is visibly cut.

Against a real server process with ``--read-timeout 2`` (the same rule as the default 30 s,
made quick): an export that takes longer than that to read, for a client that keeps reading,
arrives whole, its chunked body terminated; a live tail outlives it too, sends keep-alive
comments and still delivers new records. A client that stops reading altogether has its
response cut after ``--read-timeout``: the connection closes without the final empty chunk,
so the client can tell the body is incomplete, and the server goes on serving others.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator

import orjson
import pytest
from support import Account, ServerProcess, add_user, client_headers, http

pytestmark = pytest.mark.slow

READ_TIMEOUT = 2
#: Records in the export and the size of each message: about 10 MB of NDJSON, more than the
#: socket buffers between server and client hold (about 4 MB here).
EXPORT_RECORDS = 8000
MSG = "x" * 1000


def _read_headers(user: Account) -> dict[str, str]:
    return {"X-User": user.name, "X-User-Token": user.token}


async def _fill(port: int, user: Account, records: int) -> None:
    """Store `records` records through the API, 1000 per batch."""
    now = "2026-01-01T00:00:00"
    for start in range(0, records, 1000):
        logs = [
            {"level": 40, "msg": f"{i} {MSG}", "event_at": now, "p_description": "stream"}
            for i in range(start, min(records, start + 1000))
        ]
        data = {"user": user.name, "pid": 1, "p_name": "stream", "post_time": now, "logs": logs}
        body = orjson.dumps({"data": data})
        reply = await http(port, "POST", "//send_logs", body, client_headers(user.token), 60)
        assert reply.status == 200, reply.body


class StreamReader:
    """A raw HTTP/1.1 client with a small receive buffer that reads at the pace it is told.

    `head` is the response head; `body` the de-chunked body read so far; `terminated` says
    whether the final empty chunk arrived (the server said the body is complete).
    """

    def __init__(self, port: int, path: str, headers: dict[str, str]) -> None:
        self.sock = socket.socket()
        # A small window: the server can only be as far ahead as the buffers let it.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        self.sock.connect(("127.0.0.1", port))
        head = f"GET {path} HTTP/1.1\r\nHost: x\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        self.sock.sendall(head.encode() + b"\r\n")
        self.raw = b""
        self.head = b""
        self.body = bytearray()
        self.terminated = False
        self.closed = False
        self._pending = b""

    def read_some(self, size: int = 16 * 1024, timeout: float = 10.0) -> bytes:
        """Read up to `size` bytes (b"" once the server closed)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(size)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return b""
        self._feed(data)
        return data

    def _feed(self, data: bytes) -> None:
        if not self.head:
            self._pending += data
            head, sep, rest = self._pending.partition(b"\r\n\r\n")
            if not sep:
                return
            self.head, self._pending = head, b""
            data = rest
        self._pending += data
        while not self.terminated:
            size_line, sep, rest = self._pending.partition(b"\r\n")
            if not sep:
                return
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                self.terminated = True
                return
            if len(rest) < size + 2:
                return
            self.body += rest[:size]
            self._pending = rest[size + 2 :]

    @property
    def status(self) -> int:
        """The response status."""
        return int(self.head.split(b" ", 2)[1])

    def read_to_end(self, pace: float = 0.0, timeout: float = 10.0) -> None:
        """Read until the body is complete or the server closes, sleeping `pace` between reads."""
        while not self.terminated and not self.closed:
            self.read_some(timeout=timeout)
            if pace:
                time.sleep(pace)

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()


@contextlib.contextmanager
def _reader(port: int, path: str, user: Account) -> Iterator[StreamReader]:
    reader = StreamReader(port, path, _read_headers(user))
    try:
        yield reader
    finally:
        reader.close()


@pytest.fixture(params=["hypercorn", "uvicorn"])
def http_server(request: pytest.FixtureRequest) -> str:
    """Which HTTP server runs the app."""
    if request.param == "uvicorn":
        pytest.importorskip("uvicorn")
    return request.param


async def test_an_export_longer_than_the_read_timeout_arrives_whole(fresh_database_url, tmp_path):
    flags = ["--read-timeout", str(READ_TIMEOUT)]
    with ServerProcess(fresh_database_url, tmp_path, *flags) as server:
        await server.wait_ready()
        user = await add_user(fresh_database_url)
        await _fill(server.port, user, EXPORT_RECORDS)
        started = time.monotonic()
        with _reader(server.port, "/api/logs/export?format=ndjson", user) as reader:
            # A pause shorter than the read timeout, then about 3 MB/s: the export is still
            # being produced well after the read timeout (the client sends nothing meanwhile).
            await asyncio.to_thread(reader.read_some)
            await asyncio.sleep(READ_TIMEOUT * 0.6)
            await asyncio.to_thread(reader.read_to_end, 0.005)
        took = time.monotonic() - started
        health = await http(server.port, "GET", "/healthz")
    lines = bytes(reader.body).splitlines()
    print(f"\nexport: {len(lines)} records, {len(reader.body)} bytes in {took:.1f} s")
    assert reader.status == 200
    assert took > READ_TIMEOUT + 0.5, "the export was read too fast to prove anything"
    assert len(lines) == EXPORT_RECORDS
    assert reader.terminated, "the chunked body did not end with its final chunk"
    assert {orjson.loads(line)["msg"].split()[0] for line in lines} == {
        str(i) for i in range(EXPORT_RECORDS)
    }
    assert health.status == 200


async def test_a_client_that_stops_reading_gets_a_visibly_cut_export(tmp_path, http_server):
    url = f"sqlite:///{tmp_path / 'cut.db'}"
    flags = ["--read-timeout", str(READ_TIMEOUT), "--http-server", http_server]
    with ServerProcess(url, tmp_path, *flags) as server:
        await server.wait_ready()
        user = await add_user(url)
        await _fill(server.port, user, EXPORT_RECORDS)
        with _reader(server.port, "/api/logs/export?format=ndjson", user) as reader:
            await asyncio.to_thread(reader.read_some)
            assert reader.status == 200
            await asyncio.sleep(READ_TIMEOUT + 3)  # reading nothing
            # Meanwhile the server serves others.
            assert (await http(server.port, "GET", "/healthz")).status == 200
            await asyncio.to_thread(reader.read_to_end)
        output = server.output()
    lines = bytes(reader.body).splitlines()
    print(f"\ncut export ({http_server}): {len(lines)} of {EXPORT_RECORDS} records, then closed")
    assert reader.closed and not reader.terminated, "a cut body must not look complete"
    assert len(lines) < EXPORT_RECORDS
    assert "response cut" in output
    assert "Traceback" not in output, output[-2000:]


async def test_a_tail_outlives_the_read_timeout_with_keep_alive_comments(tmp_path, http_server):
    url = f"sqlite:///{tmp_path / 'tail.db'}"
    flags = ["--read-timeout", str(READ_TIMEOUT), "--http-server", http_server]
    with ServerProcess(url, tmp_path, *flags) as server:
        await server.wait_ready()
        user = await add_user(url)
        opened = time.monotonic()
        with _reader(server.port, "/api/tail", user) as reader:
            await asyncio.to_thread(reader.read_some)
            await asyncio.sleep(READ_TIMEOUT + 1.5)
            await _fill(server.port, user, 1)
            deadline = time.monotonic() + 20
            # A record stored after the read timeout arrives, then a keep-alive comment.
            while b"keep-alive" not in reader.body and time.monotonic() < deadline:
                await asyncio.to_thread(reader.read_some, 4096, 20)
                assert not reader.closed, f"the tail was closed: {bytes(reader.body)!r}"
            lived = time.monotonic() - opened
    text = bytes(reader.body).decode()
    print(f"\ntail ({http_server}) open {lived:.0f} s: {text.count('data:')} event(s)")
    assert text.count("data:") == 1 and '"0 x' in text
    assert ": keep-alive" in text
    assert not reader.terminated


async def test_an_export_whose_database_goes_away_ends_visibly_cut(
    mysql_database, mysql_proxy, tmp_path
):
    from bot_logging_server.config import DatabaseURL

    real = DatabaseURL.parse(mysql_database)
    url = f"mysql://{real.user}@127.0.0.1:{mysql_proxy.port}/{real.name}"
    with ServerProcess(url, tmp_path, "--read-timeout", "30", "--db-timeout", "2") as server:
        await server.wait_ready()
        user = await add_user(url)
        await _fill(server.port, user, EXPORT_RECORDS)
        with _reader(server.port, "/api/logs/export?format=ndjson", user) as reader:
            await asyncio.to_thread(reader.read_some)
            assert reader.status == 200
            await asyncio.sleep(1.0)  # the server is blocked mid-export on the full buffers
            await mysql_proxy.cut()
            await asyncio.to_thread(reader.read_to_end)
        output = server.output()
    lines = bytes(reader.body).splitlines()
    print(f"\nexport with the database cut: {len(lines)} of {EXPORT_RECORDS} records, then closed")
    assert reader.closed and not reader.terminated, "a cut body must not look complete"
    assert 0 < len(lines) < EXPORT_RECORDS
    assert "export cut after" in output and "response cut" in output
    assert "Traceback" not in output, output[-3000:]
