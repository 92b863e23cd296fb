"""Protocol edges, over raw sockets against a real server process, hypercorn and uvicorn.

* A request with both ``Content-Length`` and ``Transfer-Encoding: chunked`` (the classic
  request-smuggling ambiguity) is refused with a contract-JSON 400 and the connection closed.
* Header limits hold however the client writes: a head over 16 KiB is refused (431) whether it
  comes in one write or in 4 KiB pieces, one under it is served either way, and more than 100
  header fields are refused.
* ``Expect: 100-continue`` with a ``Content-Length`` over ``--max-body-bytes`` is answered
  413 at once, without ``100 Continue``; a small one still gets ``100 Continue``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import orjson
import pytest
from support import Account, ServerProcess, add_user

pytestmark = pytest.mark.slow

LIMIT = 100_000


@pytest.fixture(scope="module", params=["hypercorn", "uvicorn"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, Account]]:
    """One server per HTTP server, and a user on it."""
    if request.param == "uvicorn":
        pytest.importorskip("uvicorn")
    tmp = tmp_path_factory.mktemp(f"edges-{request.param}")
    url = f"sqlite:///{tmp / 'edges.db'}"
    user = asyncio.run(add_user(url))
    flags = ["--http-server", request.param, "--max-body-bytes", str(LIMIT)]
    with ServerProcess(url, tmp, *flags) as proc:
        proc.wait_ready_blocking()
        yield proc, user


async def exchange(
    port: int, data: bytes, piece: int | None = None, wait: float = 3.0
) -> tuple[bytes, bool]:
    """Send `data` (in pieces of `piece` bytes, each read by the server on its own), read
    what comes back within `wait` seconds; return it and whether the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if piece is None:
            writer.write(data)
            await writer.drain()
        else:
            for start in range(0, len(data), piece):
                writer.write(data[start : start + piece])
                try:
                    await writer.drain()
                except ConnectionError:
                    break
                await asyncio.sleep(0.02)  # the server reads each piece separately
        received = b""
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except TimeoutError:
                return received, False
            except ConnectionError:
                return received, True
            if not chunk:
                return received, True
            received += chunk
        return received, False
    finally:
        writer.close()


def statuses(raw: bytes) -> list[int]:
    """The status of every response in `raw` (interim ones included)."""
    return [
        int(line.split(b" ", 2)[1])
        for line in raw.split(b"\r\n")
        if line.startswith(b"HTTP/1.1 ") and line[9:12].isdigit()
    ]


def json_body(raw: bytes) -> dict:
    """The JSON body of the last response in `raw`."""
    return orjson.loads(raw.rpartition(b"\r\n\r\n")[2])


def head(method: str, path: str, *fields: str) -> bytes:
    """A request head without its final empty line."""
    lines = [f"{method} {path} HTTP/1.1", "Host: x", *fields]
    return "".join(line + "\r\n" for line in lines).encode()


async def test_content_length_with_transfer_encoding_is_refused_and_closed(server):
    proc, user = server
    body = orjson.dumps({"data": {"user": user.name}})
    request = head(
        "POST", "//send_logs", f"X-User-Token: {user.token}", "Content-Type: application/json",
        "Content-Length: 5", "Transfer-Encoding: chunked",
    ) + b"\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)  # fmt: skip
    # A second request pipelined behind it must never be served.
    request += head("GET", "/healthz") + b"\r\n"
    raw, closed = await exchange(proc.port, request)
    assert statuses(raw) == [400], raw
    assert json_body(raw)["code"] == 400 and json_body(raw)["message"] == "BadRequest"
    assert b"application/json" in raw
    assert closed, "the connection must be closed after a CL+TE request"


@pytest.mark.parametrize("piece", [None, 4096], ids=["one write", "4 KiB writes"])
async def test_a_head_over_16_kib_is_refused_however_it_is_written(server, piece):
    proc, _user = server
    fields = [f"X-Filler-{i}: {'v' * 200}" for i in range(90)]  # about 19 KB
    raw, _closed = await exchange(proc.port, head("GET", "/healthz", *fields) + b"\r\n", piece)
    assert statuses(raw) == [431], raw[:300]


@pytest.mark.parametrize("piece", [None, 4096], ids=["one write", "4 KiB writes"])
async def test_a_head_under_16_kib_is_served_however_it_is_written(server, piece):
    proc, _user = server
    fields = [f"X-Filler-{i}: {'v' * 200}" for i in range(60)]  # about 13 KB
    raw, _closed = await exchange(
        proc.port, head("GET", "/healthz", *fields, "Connection: close") + b"\r\n", piece
    )
    assert statuses(raw) == [200], raw[:300]


async def test_more_than_100_header_fields_are_refused(server):
    proc, _user = server
    many = head("GET", "/healthz", *[f"X{i}: v" for i in range(101)]) + b"\r\n"
    raw, _closed = await exchange(proc.port, many)
    assert statuses(raw) == [431], raw[:300]
    assert json_body(raw)["message"] == "RequestHeaderFieldsTooLarge"
    enough = head("GET", "/healthz", *[f"X{i}: v" for i in range(90)], "Connection: close")
    raw, _closed = await exchange(proc.port, enough + b"\r\n")
    assert statuses(raw) == [200], raw[:300]


async def test_expect_continue_over_the_limit_gets_413_without_100_continue(server):
    proc, user = server
    request = head(
        "POST", "//send_logs", f"X-User-Token: {user.token}", "Content-Type: application/json",
        f"Content-Length: {LIMIT + 1}", "Expect: 100-continue",
    ) + b"\r\n"  # fmt: skip
    started = time.monotonic()
    raw, closed = await exchange(proc.port, request, wait=3)
    assert statuses(raw) == [413], raw
    assert time.monotonic() - started < 1.0
    assert json_body(raw) == {
        "code": 413,
        "message": "PayloadTooLarge",
        "detail": f"the body is over {LIMIT} bytes",
    }
    assert closed


async def test_expect_continue_within_the_limit_gets_100_continue_then_the_answer(server):
    proc, user = server
    now = "2026-01-01T00:00:00"
    logs = [{"level": 40, "msg": "m", "event_at": now, "p_description": "d"}]
    data = {"user": user.name, "pid": 1, "p_name": "p", "post_time": now, "logs": logs}
    body = orjson.dumps({"data": data})
    request = head(
        "POST", "//send_logs", f"X-User-Token: {user.token}", "Content-Type: application/json",
        f"Content-Length: {len(body)}", "Expect: 100-continue", "Connection: close",
    ) + b"\r\n"  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
    try:
        writer.write(request)
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert statuses(interim) == [100], interim
        writer.write(body)
        await writer.drain()
        rest = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    assert statuses(rest) == [200], rest
    assert json_body(rest)["added"] == 1
