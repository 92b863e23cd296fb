"""The Stats_usage WebSocket on a real server: 200 sockets at once, SIGTERM with open
sockets, keep-alive, frame size and ``--stats-port`` (docs/API.md, "Usage events: the Stats
WebSocket")."""

from __future__ import annotations

import asyncio
import json
import signal
import socket as stdlib_socket
import time
from typing import Any

import pytest
from support import (
    ServerProcess,
    free_port,
    new_account,
    new_key,
    stored_events,
)
from support.stats_ws import (
    HOME,
    NO_VISIT,
    PING,
    PONG,
    SAMPLES,
    SUCCESS,
    action,
    click,
    session_reply,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bot_logging_server.config import build_config
from bot_logging_server.storage import make_storage

# -- a real server ---------------------------------------------------------------------------


async def user_and_key(database_url: str) -> tuple[int, str]:
    """A user with an ingest key in the (fresh) database at `database_url`."""
    store = make_storage(build_config({"database_url": database_url}, environ={}))
    await store.open()
    try:
        account = await new_account(store)
        return account.id, await new_key(store, account.id)
    finally:
        await store.close()


async def stored_in(database_url: str, user_id: int) -> list[dict[str, Any]]:
    store = make_storage(build_config({"database_url": database_url}, environ={}))
    await store.open()
    try:
        return await stored_events(store, user_id)
    finally:
        await store.close()


async def open_session(ws: Any, user_id: int = 1) -> str:
    """ping, session, visit home, visit samples; the session key."""
    await ws.send(PING)
    assert await ws.recv() == PONG
    await ws.send(action("session", user_id=user_id, site="s"))
    session = session_reply(await ws.recv())
    for visit in (HOME, SAMPLES):
        await ws.send(visit)
        assert await ws.recv() == SUCCESS
    return session


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


SOCKETS, CLICKS_EACH, STORM = 200, 10, 2000


@pytest.mark.slow
async def test_two_hundred_sockets_at_once_each_get_replies_fast_beside_a_click_storm(
    fresh_database_url, tmp_path
):
    user_id, key = await user_and_key(fresh_database_url)
    stats_port = free_port()
    with ServerProcess(fresh_database_url, tmp_path, "--stats-port", str(stats_port)) as server:
        await server.wait_ready()
        ready = asyncio.Barrier(SOCKETS + 2)
        latencies: list[float] = []
        sessions: dict[str, int] = {}

        async def one(i: int) -> None:
            port = stats_port if i % 2 else server.port  # half of them on --stats-port
            async with connect(f"ws://127.0.0.1:{port}/?key={key}", open_timeout=60) as ws:
                sessions[await open_session(ws, i)] = CLICKS_EACH
                await ready.wait()
                for n in range(CLICKS_EACH):
                    started = time.perf_counter()
                    await ws.send(click(n))
                    assert await ws.recv() == SUCCESS
                    latencies.append(time.perf_counter() - started)

        async def storm() -> None:
            # One client sends a storm without reading a reply until it has sent them all.
            async with connect(f"ws://127.0.0.1:{server.port}/ws?key={key}") as ws:
                sessions[await open_session(ws)] = STORM
                await ready.wait()
                for n in range(STORM):
                    await ws.send(click(n))
                assert [await ws.recv() for _ in range(STORM)] == [SUCCESS] * STORM

        try:
            await asyncio.wait_for(
                asyncio.gather(*(one(i) for i in range(SOCKETS)), storm(), ready.wait()), 240
            )
        finally:
            output = server.output()
            print(output[-5000:])
    assert "Traceback" not in output, output[-3000:]
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(f"\n{SOCKETS} sockets, reply time: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    assert len(latencies) == SOCKETS * CLICKS_EACH
    # Measured on a busy 2-core machine, clients and server sharing it: p99 0.2-1.2 s
    # (p50 0.1-0.3 s: 200 clients in a closed loop, a commit per reply). The bound leaves
    # room for a loaded machine; a socket waiting behind another's storm would take longer.
    assert p99 < 3.0, f"p99 {p99:.3f} s"
    stored: dict[str, int] = {}
    for row in await stored_in(fresh_database_url, user_id):
        if row["name"] == "click":
            stored[row["session_key"]] = stored.get(row["session_key"], 0) + 1
    assert stored == sessions


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"], ids=["one-process", "two-workers"])
@pytest.mark.parametrize("http_server", ["hypercorn", "uvicorn"])
async def test_sigterm_stores_every_acknowledged_frame_and_closes_open_sockets_with_1001(
    fresh_database_url, tmp_path, http_server, workers
):
    user_id, key = await user_and_key(fresh_database_url)
    args = ("--http-server", http_server, "--workers", workers)
    with ServerProcess(fresh_database_url, tmp_path, *args) as server:
        await server.wait_ready()
        acked: dict[str, int] = {}
        codes: list[int | None] = []
        url = f"ws://127.0.0.1:{server.port}/?key={key}"

        async def steady() -> None:
            """One click at a time, each after the previous reply."""
            async with connect(url) as ws:
                session = await open_session(ws)
                acked[session] = 0
                try:
                    while True:
                        await ws.send(click(acked[session]))
                        assert await ws.recv() == SUCCESS
                        acked[session] += 1
                except ConnectionClosed as closed:
                    codes.append(closed.rcvd.code if closed.rcvd else None)

        async def pipelined() -> None:
            """Twenty clicks at a time, then their twenty replies."""
            async with connect(url) as ws:
                session = await open_session(ws)
                acked[session] = 0
                try:
                    while True:
                        for n in range(20):
                            await ws.send(click(n))
                        for _ in range(20):
                            assert await ws.recv() == SUCCESS
                            acked[session] += 1
                except ConnectionClosed as closed:
                    codes.append(closed.rcvd.code if closed.rcvd else None)

        clients = [asyncio.ensure_future(steady()) for _ in range(20)]
        clients += [asyncio.ensure_future(pipelined()) for _ in range(5)]
        await asyncio.sleep(1.5)
        server.signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*clients), 30)
        code = await server.wait_exit(30)
        output = server.output()
    assert code == 0, output[-3000:]
    assert codes == [1001] * 25
    assert "Traceback" not in output and " ERROR " not in output, output[-3000:]
    assert key not in output  # uvicorn logs each socket's target: the key is masked
    rows = await stored_in(fresh_database_url, user_id)
    clicks: dict[str, int] = {}
    scenarios: dict[str, dict] = {}
    for row in rows:
        if row["name"] == "click":
            clicks[row["session_key"]] = clicks.get(row["session_key"], 0) + 1
        elif row["name"] == "scenario":
            scenarios[row["session_key"]] = json.loads(row["data"])
    assert sum(acked.values()) > 100
    for session, count in acked.items():
        assert clicks.get(session, 0) >= count, (session, clicks.get(session), count)
    path = {"app": "ecolentomo", "path": ["home", "samples"], "ended": "close"}
    assert scenarios == {session: path for session in acked}


@pytest.mark.slow
@pytest.mark.parametrize("http_server", ["hypercorn", "uvicorn"])
async def test_an_idle_socket_outlives_the_keep_alive_timeout(tmp_path, http_server):
    database = f"sqlite:///{tmp_path / 'x.db'}"
    _, key = await user_and_key(database)
    args = ("--http-server", http_server, "--keep-alive-timeout", "1")
    with ServerProcess(database, tmp_path, *args) as server:
        await server.wait_ready()
        url = f"ws://127.0.0.1:{server.port}/ws?key={key}"
        async with connect(url, ping_interval=None) as ws:
            await ws.send(PING)
            assert await ws.recv() == PONG
            await asyncio.sleep(2.5)  # silent: no frame, no WebSocket ping
            await ws.send(PING)
            assert await ws.recv() == PONG


@pytest.mark.slow
@pytest.mark.parametrize("http_server", ["hypercorn", "uvicorn"])
async def test_a_frame_over_one_mib_closes_the_socket_1009(tmp_path, http_server):
    database = f"sqlite:///{tmp_path / 'x.db'}"
    _, key = await user_and_key(database)
    with ServerProcess(database, tmp_path, "--http-server", http_server) as server:
        await server.wait_ready()
        url = f"ws://127.0.0.1:{server.port}/ws?key={key}"
        async with connect(url, max_size=None) as ws:
            await ws.send(action("click", loc_x=1, loc_y=1, el="x" * 200_000))
            assert await ws.recv() == NO_VISIT  # a large frame is read (and answered)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.send(action("click", loc_x=1, loc_y=1, el="x" * 1_100_000))
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


@pytest.mark.slow
async def test_a_stats_port_in_use_fails_start_up_in_one_line(tmp_path):
    with stdlib_socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        database = f"sqlite:///{tmp_path / 'x.db'}"
        with ServerProcess(database, tmp_path, "--stats-port", str(port)) as server:
            code = await server.wait_exit(30)
            output = server.output()
    assert code == 1, output
    assert (
        output.strip()
        .splitlines()[-1]
        .endswith(f"start-up failed: cannot listen on 127.0.0.1:{port}: address already in use")
    ), output
