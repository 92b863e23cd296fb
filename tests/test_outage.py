"""Database outages: 503 with Retry-After while the database is away, recovery without a restart.

docs/API.md, "Order of checks": 503 ``ServiceUnavailable`` with ``Retry-After`` when the
database is unreachable (the real client retries anything that is not 200 or 400); 200 only
after the commit. The MySQL tests put a `faults.TCPProxy` between a real server process and
MariaDB, cut it, kill the server's connections and freeze the network while a load runs, and
check afterwards that every batch answered 200 is in the table exactly once and no batch is
partial.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from urllib.parse import urlsplit

import pymysql
import pytest
from support import (
    Load,
    ServerProcess,
    add_user,
    assert_error,
    batch_body,
    client_body,
    client_headers,
    http,
    post_logs,
    rows_per_batch,
)

pytestmark = pytest.mark.slow


def _through(proxy_port: int, direct_url: str) -> str:
    """`direct_url` with its host and port replaced by the proxy's."""
    parts = urlsplit(direct_url)
    auth = parts.netloc.rsplit("@", 1)[0]
    return f"mysql://{auth}@127.0.0.1:{proxy_port}{parts.path}"


async def _status(port: int, method: str, path: str, **kwargs: object) -> int | str:
    try:
        return (await http(port, method, path, timeout=15, **kwargs)).status  # type: ignore[arg-type]
    except (TimeoutError, OSError) as exc:
        return type(exc).__name__


async def _wait_status(port: int, path: str, want: int, within: float) -> float:
    """Poll GET `path` until it answers `want`; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if await _status(port, "GET", path) == want:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} did not answer {want} within {within} s")


async def _expect_503(port: int, user, name: str) -> None:
    reply = await http(
        port, "POST", "/send_logs", batch_body(user.name, name, 3), client_headers(user.token)
    )
    assert reply.status == 503, reply
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"code": 503, "message": "ServiceUnavailable"}
    assert int(reply.headers["retry-after"]) >= 1


def _kill_connections(direct_url: str) -> int:
    """KILL every MariaDB connection using the test's database; return how many."""
    parts = urlsplit(direct_url)
    name = parts.path.lstrip("/")
    conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user="root")
    killed = 0
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> "
                "CONNECTION_ID()",
                (name,),
            )
            for (ident,) in cur.fetchall():
                try:
                    cur.execute(f"KILL CONNECTION {int(ident)}")
                    killed += 1
                except pymysql.err.OperationalError:
                    pass  # ended on its own meanwhile
    finally:
        conn.close()
    return killed


@pytest.mark.parametrize("fresh_database_url", ["mysql"], indirect=True)
async def test_mysql_outages_under_load_answer_503_recover_and_lose_nothing_acknowledged(
    fresh_database_url, mysql_proxy, tmp_path
):
    user = await add_user(fresh_database_url)
    url = _through(mysql_proxy.port, fresh_database_url)
    figures: dict[str, object] = {"recovery_seconds": []}
    with ServerProcess(url, tmp_path, "--db-timeout", "2", "--pool-size", "4") as server:
        await server.wait_ready()
        load = Load(server.port, user, workers=4, records=5).start()
        await asyncio.sleep(1.0)

        async def recovered(kind: str) -> None:
            took = await _wait_status(server.port, "/healthz", 200, within=5)
            before = len(load.acked())
            deadline = time.monotonic() + 5
            while len(load.acked()) == before:  # the load is answered 200 again
                assert time.monotonic() < deadline, f"no 200 within 5 s after {kind}"
                await asyncio.sleep(0.05)
            figures["recovery_seconds"].append(round(took, 2))  # type: ignore[union-attr]

        # 1. The database goes away (connections reset, new ones refused), twice: a restart.
        for outage in range(2):
            await mysql_proxy.cut()
            await _wait_status(server.port, "/healthz", 503, within=3)
            await _expect_503(server.port, user, f"probe-cut-{outage}")
            await asyncio.sleep(1.5)
            await mysql_proxy.restore()
            await recovered("restart")
            await asyncio.sleep(0.5)

        # 2. The database kills every connection of the server (KILL CONNECTION).
        for _ in range(2):
            figures.setdefault("connections_killed", 0)
            figures["connections_killed"] += await asyncio.to_thread(  # type: ignore[operator]
                _kill_connections, fresh_database_url
            )
            await recovered("KILL")
            await asyncio.sleep(0.5)

        # 3. The network swallows everything: only timeouts answer (503 within db_timeout).
        await mysql_proxy.freeze()
        started = time.monotonic()
        await _expect_503(server.port, user, "probe-frozen")
        assert time.monotonic() - started < 2 * 2 + 1.5
        assert await _status(server.port, "GET", "/healthz") == 503
        await mysql_proxy.thaw()
        await recovered("partition")

        # 4. Short flaps.
        for _ in range(3):
            await mysql_proxy.cut()
            await asyncio.sleep(0.3)
            await mysql_proxy.restore()
            await asyncio.sleep(0.4)
        await recovered("flaps")
        await asyncio.sleep(0.5)
        await load.stop()
        assert await _status(server.port, "GET", "/healthz") == 200
    assert not load.bad_replies, load.bad_replies[:5]
    statuses = load.statuses()
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.get(503, 0) > 0, "the outages were not seen by the load"
    stored = await asyncio.to_thread(rows_per_batch, fresh_database_url, user.id)
    result = load.check_database(stored)
    assert result["records_counted_for_acked"] == result["records_acked"]
    print(f"\noutage figures: {figures} statuses {statuses} {result}")


@pytest.mark.parametrize("fresh_database_url", ["mysql"], indirect=True)
async def test_server_refuses_to_start_with_a_clear_message_when_mysql_is_down(
    fresh_database_url, mysql_proxy, tmp_path
):
    url = _through(mysql_proxy.port, fresh_database_url)
    await mysql_proxy.cut()
    server = ServerProcess(url, tmp_path, "--db-timeout", "2").start()
    try:
        assert await server.wait_exit(timeout=20) == 1
    finally:
        server.stop()
    last = server.output().strip().splitlines()[-1]
    assert "start-up failed" in last
    assert f"127.0.0.1:{mysql_proxy.port}" in last
    assert "cannot connect to the database server" in last


async def test_sqlite_locked_by_another_process_answers_503_then_recovers(
    make_config, tmp_path, request
):
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    from bot_logging_server import create_app
    from bot_logging_server.accounts import create_user
    from bot_logging_server.config import build_config
    from bot_logging_server.storage import get_storage

    app = create_app(build_config({"database_url": url, "db_timeout": 0.3}, environ={}))
    async with app.test_app() as test_app:
        storage = get_storage(app)
        new = await create_user(storage, f"u_{uuid.uuid4().hex[:8]}")
        account = type("A", (), {"name": new.user.username, "token": new.token})
        client = test_app.test_client()
        other = sqlite3.connect(str(tmp_path / "locked.db"), isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
            response = await post_logs(client, account, client_body(account.name, 4))
            body = await assert_error(response, 503, "ServiceUnavailable")
            assert "detail" not in body or "locked" not in body["detail"]
            assert response.headers["Retry-After"] == "1"
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert await storage.count_logs(new.user.id) == 0
        response = await post_logs(client, account, client_body(account.name, 4))
        assert response.status_code == 200
        assert await storage.count_logs(new.user.id) == 4


@pytest.mark.parametrize("fresh_database_url", ["mysql"], indirect=True)
async def test_timeouts_never_leak_pooled_connections(fresh_database_url, mysql_proxy, tmp_path):
    # Pool of 2, 20 requests at once into a frozen network, three times: every wait ends in a
    # 503 within the timeout, and afterwards the pool still serves 20 requests at once.
    user = await add_user(fresh_database_url)
    url = _through(mysql_proxy.port, fresh_database_url)
    headers = client_headers(user.token)

    async def burst(tag: str) -> list[int | str]:
        async def one(i: int) -> int | str:
            body = batch_body(user.name, f"{tag}-{i}", 2)
            return await _status(server.port, "POST", "//send_logs", body=body, headers=headers)

        return list(await asyncio.gather(*(one(i) for i in range(20))))

    with ServerProcess(url, tmp_path, "--db-timeout", "1", "--pool-size", "2") as server:
        await server.wait_ready()
        assert await burst("warm") == [200] * 20
        for round_ in range(3):
            await mysql_proxy.freeze()
            started = time.monotonic()
            assert set(await burst(f"frozen{round_}")) == {503}
            # Each request waits at most for a connection and then for its statement.
            assert time.monotonic() - started < 1 + 1 + 3
            await mysql_proxy.thaw()
        await asyncio.sleep(0.2)
        assert await burst("after") == [200] * 20
    stored = await asyncio.to_thread(rows_per_batch, fresh_database_url, user.id)
    assert all(stored.get(f"{tag}-{i}") == 2 for tag in ("warm", "after") for i in range(20))
    assert all(n == 2 for n in stored.values())
