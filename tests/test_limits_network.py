"""Limits hold before a body is in memory, and slow clients are timed out.

Against a real server process over raw sockets, on hypercorn and on uvicorn (what the HTTP
server and Quart do on the network is the point): a ``Content-Length`` over
``--max-body-bytes`` is answered 413 at once, without the body being sent; a chunked body is
cut off with 413 while the client is still sending; a batch over ``--max-records`` is 413;
headers that trickle in are dropped after ``--keep-alive-timeout``, a body that trickles in
is answered 408 after ``--body-timeout``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from support import HTTP_SERVERS, Account, ServerProcess, add_user, batch_body, http, parse_reply

pytestmark = pytest.mark.slow

LIMIT = 100_000
MAX_RECORDS = 50


@pytest.fixture(scope="module", params=HTTP_SERVERS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, Account]]:
    """One server per HTTP server with small limits and short timeouts, and a user on it."""
    if request.param == "uvicorn":
        pytest.importorskip("uvicorn")
    tmp = tmp_path_factory.mktemp(f"limits-{request.param}")
    url = f"sqlite:///{tmp / 'limits.db'}"
    user = asyncio.run(add_user(url))
    flags = ["--http-server", request.param]
    flags += ["--max-body-bytes", str(LIMIT), "--max-records", str(MAX_RECORDS)]
    flags += ["--keep-alive-timeout", "1", "--body-timeout", "1", "--read-timeout", "5"]
    with ServerProcess(url, tmp, *flags) as proc:
        proc.wait_ready_blocking()
        yield proc, user


def _head(port: int, user: Account, extra: str) -> bytes:
    return (
        f"POST //send_logs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nX-User-Token: {user.token}\r\n{extra}\r\n"
    ).encode()


async def _read_reply(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Read one answer as it arrives (head, then Content-Length bytes of body).

    Reads eagerly, chunk by chunk, so that an answer followed by a reset of the connection
    (the server closing while the client still sends) is not lost.
    """
    raw = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        head, sep, body = bytes(raw).partition(b"\r\n\r\n")
        if sep:
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if len(body) >= length:
                return bytes(raw)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no whole answer within {timeout} s: {bytes(raw)[:200]!r}")
        try:
            data = await asyncio.wait_for(reader.read(65536), remaining)
        except ConnectionError:
            data = b""
        if not data:
            if raw:
                return bytes(raw)
            raise ConnectionError("closed without an answer")
        raw += data


def _check_error(raw: bytes, status: int, message: str) -> None:
    reply = parse_reply(raw)
    assert reply.status == status, raw[:300]
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"code": status, "message": message}


async def test_content_length_over_the_limit_is_refused_at_once_without_the_body(server):
    proc, user = server
    reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
    try:
        started = time.monotonic()
        writer.write(_head(proc.port, user, f"Content-Length: {10**12}\r\n"))
        await writer.drain()  # not one byte of the (terabyte) body is sent
        raw = await _read_reply(reader, timeout=5)
        assert time.monotonic() - started < 1.0
        _check_error(raw, 413, "PayloadTooLarge")
    finally:
        writer.close()


async def test_a_chunked_body_is_cut_off_at_the_limit_while_the_client_still_sends(server):
    proc, user = server
    reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
    chunk = b"x" * 8192
    sent = 0
    answer: asyncio.Task[bytes] = asyncio.ensure_future(_read_reply(reader, timeout=10))
    try:
        writer.write(_head(proc.port, user, "Transfer-Encoding: chunked\r\n"))
        # Offer up to 200 times the limit; the answer must come long before.
        while not answer.done() and sent < 200 * LIMIT:
            try:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await asyncio.wait_for(writer.drain(), 2)
            except (ConnectionError, TimeoutError):
                break  # the server stopped reading: it has refused the body
            sent += len(chunk)
            await asyncio.sleep(0)
        assert sent < 200 * LIMIT, "the whole oversized body was read"
        try:
            raw = await answer
        except ConnectionError:
            # The server answered 413 and closed while we were still sending: TCP then
            # resets the connection, and the reset may discard the answer before we read
            # it. The body was still refused early (above); the server must be up.
            health = await http(proc.port, "GET", "/healthz", None, {})
            assert health.status == 200
        else:
            _check_error(raw, 413, "PayloadTooLarge")
        print(f"\nchunked body answered 413 after {sent} bytes sent (limit {LIMIT})")
    finally:
        answer.cancel()
        writer.close()


async def test_a_batch_over_max_records_is_413_and_at_max_records_is_stored(server):
    proc, user = server
    headers = {"Content-Type": "application/json", "X-User-Token": user.token}
    over = await http(proc.port, "POST", "//send_logs", batch_body(user.name, "o", 51), headers)
    assert over.status == 413 and over.json()["message"] == "PayloadTooLarge"
    at = await http(proc.port, "POST", "//send_logs", batch_body(user.name, "a", 50), headers)
    assert at.status == 200 and at.json()["added"] == 50


async def test_headers_sent_too_slowly_get_the_connection_closed(server):
    proc, user = server
    reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
    started = time.monotonic()
    closed_after = None
    try:
        for byte in _head(proc.port, user, "Content-Length: 2\r\n"):
            writer.write(bytes([byte]))
            try:
                await writer.drain()
            except ConnectionError:
                break
            try:
                if await asyncio.wait_for(reader.read(1024), 0.25) == b"":
                    break  # closed by the server
            except TimeoutError:
                continue
        closed_after = time.monotonic() - started
    finally:
        writer.close()
    # keep-alive-timeout is 1 s: the connection is gone long before all headers are in.
    assert closed_after is not None and closed_after < 4


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection within `seconds` (reading what it sends)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
        return True
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def test_a_connection_that_sends_nothing_is_closed_after_the_keep_alive_timeout(server):
    proc, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
    try:
        assert await _closed_within(reader, 4)
    finally:
        writer.close()


async def test_the_next_head_sent_too_slowly_after_an_answer_gets_the_connection_closed(server):
    proc, user = server
    reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
    try:
        body = batch_body(user.name, "first", 1)
        writer.write(_head(proc.port, user, f"Content-Length: {len(body)}\r\n") + body)
        first = parse_reply(await _read_reply(reader, timeout=10))
        assert first.status == 200
        # The next request's head, a byte every 0.2 s: never whole within the timeout.
        closed = False
        for byte in _head(proc.port, user, "Content-Length: 2\r\n")[:20]:
            writer.write(bytes([byte]))
            if await _closed_within(reader, 0.2):
                closed = True
                break
        assert closed
    finally:
        writer.close()


async def test_a_body_sent_too_slowly_is_answered_408(server):
    proc, user = server
    reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
    started = time.monotonic()
    answer: asyncio.Task[bytes] = asyncio.ensure_future(_read_reply(reader, timeout=10))
    try:
        writer.write(_head(proc.port, user, "Content-Length: 1000\r\n"))
        for _ in range(50):  # one byte every 0.2 s: 1000 bytes would take 200 s
            if answer.done():
                break
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.2)
        raw = await answer
    finally:
        answer.cancel()
        writer.close()
    _check_error(raw, 408, "RequestTimeout")
    assert time.monotonic() - started < 4  # body-timeout is 1 s


@pytest.mark.parametrize("http_server", HTTP_SERVERS)
async def test_a_connection_past_max_connections_is_answered_503_and_closed_at_once(
    tmp_path, http_server
):
    url = f"sqlite:///{tmp_path / 'cap.db'}"
    await add_user(url)
    flags = ["--http-server", http_server, "--max-connections", "3", "--keep-alive-timeout", "60"]
    with ServerProcess(url, tmp_path, *flags) as proc:
        await proc.wait_ready()
        held = [await asyncio.open_connection("127.0.0.1", proc.port) for _ in range(3)]
        await asyncio.sleep(0.5)  # accepted: three idle connections are open
        # The fourth is answered before it sends anything, and closed.
        reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
        raw = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        reply = parse_reply(raw)
        assert reply.status == 503
        assert reply.headers["retry-after"] == "1"
        assert reply.json() == {
            "code": 503,
            "message": "ServiceUnavailable",
            "detail": "too many connections at once",
        }
        # The open ones are served as before.
        held_reader, held_writer = held[0]
        held_writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert parse_reply(await asyncio.wait_for(held_reader.read(), 5)).status == 200
        held_writer.close()
        await asyncio.sleep(0.5)  # the server has seen it close: room for one more
        assert (await http(proc.port, "GET", "/healthz")).status == 200
        for _, other in held[1:]:
            other.close()
    assert "Traceback" not in proc.output()
