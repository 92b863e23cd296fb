"""Ingest latency while retention purges a large number of old records (hand-run).

Fills a fresh database with ``--rows`` records 60 days old (one user), then runs the real
server twice under the same ingest load (``--clients`` keep-alive connections posting
20-record batches as fast as they are answered): first without retention (the baseline),
then with ``--retention-days 30`` and a background pass every second, until every old record
is gone. Prints ingest p50/p99/max for both phases and how long the purge took, and writes
them to bench/PURGE.md.

    python3 bench/purge.py --backend sqlite --rows 1000000
    python3 bench/purge.py --backend mysql --rows 1000000   # MariaDB at 127.0.0.1:3306, root
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot_logging_server.accounts import create_user  # noqa: E402
from bot_logging_server.config import build_config  # noqa: E402
from bot_logging_server.storage import LogRow, make_storage, utc_now  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def prepare(url: str, rows: int) -> tuple[str, str, int, int]:
    """Create the old records' owner and the writer; fill the old records."""
    storage = make_storage(build_config({"database_url": url}, environ={}))
    await storage.open()
    try:
        old = await create_user(storage, "old_owner")
        writer = await create_user(storage, "writer")
        at = utc_now() - timedelta(days=60)
        chunk = [
            LogRow(1, "bench", "old", 20, f"old record {i}", False, 14, at, at) for i in range(5000)
        ]
        for start in range(0, rows, 5000):
            await storage.insert_logs(old.user.id, chunk[: min(5000, rows - start)], utc_now())
        return writer.user.username, writer.token, old.user.id, writer.user.id
    finally:
        await storage.close()


async def count(url: str, user_id: int) -> int:
    storage = make_storage(build_config({"database_url": url}, environ={}))
    await storage.open()
    try:
        return await storage.count_logs(user_id)
    finally:
        await storage.close()


def body(user: str) -> bytes:
    now = utc_now().strftime("%Y-%m-%dT%H:%M:%S")
    logs = [
        {"level": 40, "msg": f"m {i}", "event_at": now, "p_description": "b"} for i in range(20)
    ]
    data = {"user": user, "pid": 1, "p_name": "bench", "post_time": now, "logs": logs}
    return json.dumps({"data": data}).encode()


async def client(port: int, user: str, token: str, stop: asyncio.Event, out: list[float]) -> None:
    """Post batches on a keep-alive connection (reopened when the server closes it: hypercorn
    closes a connection after 1000 requests), appending each answer's latency to `out`."""
    payload = body(user)
    head = (
        f"POST /send_logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-User-Token: {token}\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode()
    while not stop.is_set():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not stop.is_set():
                started = time.perf_counter()
                writer.write(head + payload)
                await writer.drain()
                headers = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in headers.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                answer = await reader.readexactly(length)
                if not headers.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"answer {headers[:20]!r} {answer[:100]!r}")
                out.append(time.perf_counter() - started)
        except (asyncio.IncompleteReadError, ConnectionError):
            continue  # closed by the server: that request is not counted, reconnect
        finally:
            writer.close()


def start_server(url: str, port: int, log: Path, *flags: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGGER_")}
    command = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--database-url", url]
    with open(log, "ab") as out:
        return subprocess.Popen([*command, *flags], env=env, stdout=out, stderr=subprocess.STDOUT)


async def wait_ready(port: int) -> None:
    for _ in range(300):
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000

    return (
        f"{len(ordered)} batches, p50 {at(0.5):.1f} ms, p99 {at(0.99):.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms"
    )


async def phase(url, port, log, user, token, clients, until, *flags) -> list[float]:
    proc = start_server(url, port, log, *flags)
    try:
        await wait_ready(port)
        await asyncio.sleep(1)
        stop, latencies = asyncio.Event(), []
        tasks = [
            asyncio.ensure_future(client(port, user, token, stop, latencies))
            for _ in range(clients)
        ]
        await until()
        stop.set()
        await asyncio.gather(*tasks)
        return latencies
    finally:
        proc.terminate()
        proc.wait(30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "mysql"], default="sqlite")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--baseline-seconds", type=float, default=20)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="purge-bench-"))
    name = f"blst_bench_{uuid.uuid4().hex[:8]}"
    url = (
        f"sqlite:///{tmp}/bench.db"
        if args.backend == "sqlite"
        else f"mysql://root@127.0.0.1:3306/{name}"
    )
    try:
        started = time.perf_counter()
        user, token, old_id, _ = await prepare(url, args.rows)
        print(
            f"filled {args.rows} old records in {time.perf_counter() - started:.0f} s", flush=True
        )
        port, log = free_port(), tmp / "server.log"

        async def for_a_while() -> None:
            await asyncio.sleep(args.baseline_seconds)

        baseline = await phase(
            url, port, log, user, token, args.clients, for_a_while, "--purge-interval", "0"
        )
        print("baseline:", summary(baseline), flush=True)
        purge_started = time.perf_counter()

        async def until_purged() -> None:
            while await count(url, old_id) > 0:
                await asyncio.sleep(1)

        during = await phase(
            url,
            port,
            log,
            user,
            token,
            args.clients,
            until_purged,
            "--retention-days",
            "30",
            "--purge-interval",
            "1",
        )
        purge_seconds = time.perf_counter() - purge_started
        print("during purge:", summary(during), flush=True)
        print(f"purge of {args.rows} records: {purge_seconds:.0f} s (with start-up)", flush=True)
        passes = [line for line in log.read_text().splitlines() if "retention: deleted" in line]
        print("\n".join(passes[-3:]))
        with open(ROOT / "bench" / "PURGE.md", "a") as out:
            out.write(
                f"\n## {args.backend}, {args.rows} old records, {args.clients} clients "
                f"({time.strftime('%Y-%m-%d')})\n\n"
                f"- baseline (no retention): {summary(baseline)}\n"
                f"- during the purge: {summary(during)}\n"
                f"- purge: {purge_seconds:.0f} s from server start to the last old record gone\n"
                + "".join(f"- server: `{p.split('retention: ', 1)[1]}`\n" for p in passes[-3:])
            )
    finally:
        if args.backend == "mysql":
            import pymysql

            conn = pymysql.connect(host="127.0.0.1", user="root")
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            conn.close()


if __name__ == "__main__":
    asyncio.run(main())
