"""``GET /api/tail`` (docs/API.md): Server-Sent Events of new records, on both backends.

The tail polls the database, so a record stored by another process (here: another app on the
same database) arrives too; ``Last-Event-ID`` resumes without loss or repetition; a stream
ends cleanly when the client goes away, when the server stops, and when the token is revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time

import aiomysql
import orjson
import pytest
from support import (
    ServerProcess,
    client_body,
    client_record,
    new_account,
    post_logs,
    read_headers,
    run_app,
)

from bot_logging_server.config import DatabaseURL
from bot_logging_server.storage import get_storage
from bot_logging_server.tail import stop_streams


class Events:
    """Reads Server-Sent Events from a streaming test connection."""

    def __init__(self, connection):
        self.connection = connection
        self.buffer = b""
        self.retry = None

    async def next(self, timeout: float = 5.0) -> tuple[int, dict]:
        """The next event as (id, record); fail after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while True:
                block, sep, rest = self.buffer.partition(b"\n\n")
                if sep:
                    self.buffer = rest
                    fields = dict(
                        line.split(b": ", 1) for line in block.split(b"\n") if b": " in line
                    )
                    if b"retry" in fields:
                        self.retry = int(fields[b"retry"])
                    if b"data" in fields:
                        return int(fields[b"id"]), orjson.loads(fields[b"data"])
                    continue
                self.buffer += await self.connection.receive()

    async def take(self, count: int, timeout: float = 5.0) -> list[tuple[int, dict]]:
        """The next `count` events."""
        return [await self.next(timeout) for _ in range(count)]

    async def none_within(self, seconds: float) -> None:
        """Assert that no event arrives within `seconds`."""
        with contextlib.suppress(TimeoutError):
            event = await self.next(seconds)
            raise AssertionError(f"unexpected event {event}")


@contextlib.asynccontextmanager
async def tail(client, account, params=None, headers=None, limit: float = 20.0):
    """Open ``/api/tail`` as `account`; the whole stream, its end included, must fit `limit`."""
    async with asyncio.timeout(limit):
        connection = client.request(
            "/api/tail",
            query_string=params or {},
            headers={**read_headers(account), **(headers or {})},
        )
        async with connection:
            await connection.send_complete()
            events = Events(connection)
            # The stream starts with a comment once the starting point is fixed: records
            # stored from then on are "after connecting".
            while b": connected" not in events.buffer:
                events.buffer += await connection.receive()
            yield events
            await connection.disconnect()


def messages(events):
    return [record["msg"] for _, record in events]


async def send(client, account, *msgs, level=40):
    body = client_body(account.name, [client_record(level=level, msg=m) for m in msgs])
    assert (await post_logs(client, account, body)).status_code == 200


async def test_records_stored_after_connecting_arrive_as_events(client, user):
    await send(client, user, "before")
    async with tail(client, user) as events:
        await events.none_within(0.8)
        await send(client, user, "one", "two")
        received = await events.take(2)
        assert events.retry == 1000
    assert messages(received) == ["one", "two"]
    (first_id, first), (second_id, _) = received
    assert first_id == first["id"] and second_id > first_id
    assert first["level_name"] == "ERROR" and first["event_at"].endswith("Z")


async def test_the_tail_applies_the_filters(client, user):
    async with tail(client, user, {"level": "error", "q": "disk"}) as events:
        await send(client, user, "disk warning", level=30)
        await send(client, user, "disk error", "net error", level=40)
        received = await events.take(1)
        await events.none_within(1.0)
    assert messages(received) == ["disk error"]


async def test_another_users_records_never_arrive(client, user, make_user):
    other = await make_user()
    async with tail(client, user) as events:
        await send(client, other, "not yours")
        await send(client, user, "yours")
        received = await events.take(1)
        await events.none_within(1.0)
    assert messages(received) == ["yours"]


async def test_last_event_id_resumes_without_loss_or_repetition(client, user):
    async with tail(client, user) as events:
        await send(client, user, "a", "b")
        (last_id, _), _ = (await events.take(2))[1], None
    await send(client, user, "c", "d")  # while disconnected
    async with tail(client, user, headers={"Last-Event-ID": str(last_id)}) as events:
        received = await events.take(2)
        await events.none_within(1.0)
    assert messages(received) == ["c", "d"]


async def test_a_bad_last_event_id_is_400(client, user):
    response = await client.get("/api/tail", headers={**read_headers(user), "Last-Event-ID": "x1"})
    assert response.status_code == 400
    assert (await response.get_json())["detail"].startswith("Last-Event-ID")


@pytest.mark.parametrize("last_id", [str(2**63), str(2**64 - 1), "9" * 20])
async def test_a_last_event_id_beyond_any_record_id_is_400(client, user, last_id):
    headers = {**read_headers(user), "Last-Event-ID": last_id}
    async with asyncio.timeout(10):  # a stream that started would never end
        response = await client.get("/api/tail", headers=headers)
    assert response.status_code == 400
    assert (await response.get_json())["detail"] == "Last-Event-ID: must be a record id"


async def test_the_largest_record_id_is_a_valid_last_event_id(client, user):
    async with tail(client, user, headers={"Last-Event-ID": str(2**63 - 1)}) as events:
        await send(client, user, "not after the largest id")
        await events.none_within(1.0)


async def test_records_stored_by_another_process_arrive(make_app, client, user):
    # A second app on the same database stands for another worker process: the tail
    # learns about records only from the database.
    async with make_app() as writer_app:
        writer = writer_app.test_client()
        async with tail(client, user) as events:
            await send(writer, user, "from the other worker")
            received = await events.take(1)
    assert messages(received) == ["from the other worker"]


async def test_the_stream_ends_when_the_client_disconnects(app, client, user):
    # The `tail` helper disconnects at the end; its time limit fails the test if the
    # server's side of the stream kept running.
    async with tail(client, user, limit=5) as events:
        await send(client, user, "x")
        await events.take(1)


async def test_stop_streams_ends_every_tail(app, client, user):
    async with asyncio.timeout(5):
        connection = client.request("/api/tail", headers=read_headers(user))
        async with connection:
            await connection.send_complete()
            await asyncio.sleep(0.3)
            stop_streams(app.app)
            # No disconnect: leaving the block waits for the server to end the stream.


async def test_the_stream_ends_when_the_user_is_disabled(make_app):
    async with make_app(auth_cache_seconds=0) as app:
        client, storage = app.test_client(), get_storage(app.app)
        account = await new_account(storage)

        async with asyncio.timeout(5):
            connection = client.request("/api/tail", headers=read_headers(account))
            async with connection:
                await connection.send_complete()
                await asyncio.sleep(0.3)
                await storage.set_disabled(account.name, True)
                # Leaving the block waits for the server to end the stream by itself.


# MySQL only: SQLite has one writer, so its ids become visible in order.
@pytest.mark.parametrize("database_url", ["mysql"], indirect=True)
async def test_a_record_committed_late_with_a_lower_id_still_arrives(client, user, database_url):
    url = DatabaseURL.parse(database_url)
    slow = await aiomysql.connect(
        host=url.host, port=url.port, user=url.user, password=url.password, db=url.name
    )
    try:
        async with tail(client, user) as events:
            async with slow.cursor() as cur:
                # A transaction takes an id, then commits after a later one is visible.
                await cur.execute(
                    "INSERT INTO user_logs (user_id, pid, p_name, p_description, level, msg, "
                    "truncated, msg_length, event_at, post_time, received_at) VALUES "
                    "(%s, 1, 'p', 'd', 40, 'late', 0, 4, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), "
                    "UTC_TIMESTAMP(6))",
                    (user.id,),
                )
                late_id = cur.lastrowid
            await send(client, user, "early")
            first = await events.take(1)
            await slow.commit()
            second = await events.take(1)
            await events.none_within(2.5)
    finally:
        slow.close()
    assert messages(first + second) == ["early", "late"]
    assert second[0][1]["id"] == late_id < first[0][1]["id"]
    # The event id never goes backwards: a reconnection resumes after the highest id sent.
    assert second[0][0] == first[0][0]


def test_sigterm_ends_open_tails_and_the_server_promptly(tmp_path):
    url = f"sqlite:///{tmp_path / 'tail.db'}"
    token = run_app("--database-url", url, "users", "add", "bob", check=True).stdout.strip()
    with ServerProcess(url, tmp_path) as server:
        port = server.wait_ready_blocking().port
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(
            b"GET /api/tail HTTP/1.1\r\nHost: x\r\nX-User: bob\r\nX-User-Token: "
            + token.encode()
            + b"\r\n\r\n"
        )
        received = b""
        while b": connected" not in received:
            received += sock.recv(4096)
        assert received.startswith(b"HTTP/1.1 200")
        assert b"text/event-stream" in received
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        while chunk := sock.recv(4096):  # the server ends the stream, then closes
            received += chunk
        assert server.wait_exit_blocking(timeout=5) == 0
        assert time.monotonic() - started < 3
        assert received.endswith(b"0\r\n\r\n")  # the chunked body was finished, not cut
        sock.close()


def test_with_two_worker_processes_every_record_reaches_the_tail(tmp_path):
    import http.client
    import json

    url = f"sqlite:///{tmp_path / 'workers.db'}"
    token = run_app("--database-url", url, "users", "add", "bob", check=True).stdout.strip()
    with ServerProcess(url, tmp_path, "--workers", "2") as server:
        port = server.wait_ready_blocking().port
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(
            b"GET /api/tail HTTP/1.1\r\nHost: x\r\nX-User: bob\r\nX-User-Token: "
            + token.encode()
            + b"\r\n\r\n"
        )
        received = b""
        while b": connected" not in received:
            received += sock.recv(4096)
        for i in range(12):  # a new connection each: the workers share them
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            body = client_body("bob", [client_record(i, msg=f"batch {i}")])
            conn.request("POST", "//send_logs", json.dumps(body), {"X-User-Token": token})
            assert conn.getresponse().status == 200
            conn.close()
        deadline = time.monotonic() + 10
        while received.count(b"data: ") < 12 and time.monotonic() < deadline:
            received += sock.recv(65536)
        sock.close()
    messages = [
        json.loads(line[6:])["msg"] for line in received.split(b"\n") if line.startswith(b"data: ")
    ]
    assert messages == [f"batch {i}" for i in range(12)]
