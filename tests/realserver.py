"""Helpers for tests that run the real thing: ``python3 app.py`` as a process, raw HTTP.

`ServerProcess` starts the server on a free port with its output in a file, waits until
``/healthz`` answers, and is always killed by its context manager. `http` sends one HTTP/1.1
request over a raw socket (``Connection: close``) and returns status, headers and body, so
the tests see exactly what a client on the network sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Reply:
    """One HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return orjson.loads(self.body)


def parse_reply(raw: bytes) -> Reply:
    """Parse a whole HTTP/1.1 answer (Content-Length or chunked)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = bytearray()
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            body += rest[:size]
            rest = rest[size + 2 :]
        return Reply(status, headers, bytes(body))
    return Reply(status, headers, rest)


async def http(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Reply:
    """Send one request to 127.0.0.1:`port` and read the whole answer."""
    all_headers = {"Host": f"127.0.0.1:{port}", "Connection": "close"}
    if body is not None:
        all_headers["Content-Length"] = str(len(body))
    all_headers.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in all_headers.items()
    )

    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head.encode("latin-1") + b"\r\n" + (body or b""))
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()

    raw = await asyncio.wait_for(exchange(), timeout)
    if not raw:
        raise ConnectionError("connection closed without an answer")
    return parse_reply(raw)


def batch_body(user: str, p_name: str, records: int, msg: str = "m") -> bytes:
    """A real-client batch of `records` records whose ``p_name`` identifies it."""
    now = "2026-01-01T00:00:00"
    logs = [
        {"level": 40, "msg": f"{msg} {i}", "event_at": now, "p_description": "load"}
        for i in range(records)
    ]
    data = {"user": user, "pid": 1, "p_name": p_name, "post_time": now, "logs": logs}
    return orjson.dumps({"data": data})


def send_headers(token: str) -> dict[str, str]:
    """The real client's headers."""
    return {"Content-Type": "application/json", "X-User-Token": token}


class ServerProcess:
    """``python3 app.py`` on a free port; use as ``with ServerProcess(...) as server``.

    The output (stdout and stderr) goes to `log_path`; `wait_ready` polls ``/healthz``.
    """

    def __init__(
        self,
        database_url: str,
        log_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.log_path = log_dir / f"server-{uuid.uuid4().hex[:6]}.log"
        self.command = [
            sys.executable,
            str(ROOT / "app.py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *(["--database-url", database_url] if database_url else []),
            *args,
        ]
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("LOGGER_", "BOT_LOGGING"))
        }
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        """Start the process (not waiting for it to be ready)."""
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until ``/healthz`` answers 200; fail with the server's output if it does not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            try:
                if (await http(self.port, "GET", "/healthz", timeout=2)).status == 200:
                    return
            except (TimeoutError, OSError):
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.output()}")

    def signal(self, signum: int) -> None:
        """Send `signum` to the server (and, for workers, its process group)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signum)

    async def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end; return its exit code."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                tail = self.output()[-3000:]
                raise AssertionError(f"server still running after {timeout} s; it printed:\n{tail}")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def processes(self) -> int:
        """How many processes the server's process group holds (parent and workers)."""
        assert self.proc is not None
        count = 0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.getpgid(int(entry.name)) == self.proc.pid:
                        count += 1
        return count

    def stop(self) -> None:
        """Kill the process group (idempotent)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def output(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class RemoteUser:
    """A user created for a server process: name, token in clear, id."""

    name: str
    token: str
    id: int


async def add_user(database_url: str, name: str | None = None) -> RemoteUser:
    """Create a user with a random token in the database at `database_url` (migrating it)."""
    from bot_logging_server.accounts import create_user
    from bot_logging_server.config import build_config
    from bot_logging_server.storage import make_storage

    store = make_storage(build_config({"database_url": database_url}, environ={}))
    await store.open()
    try:
        name = name or f"u_{uuid.uuid4().hex[:10]}"
        new = await create_user(store, name)
        return RemoteUser(name, new.token, new.user.id)
    finally:
        await store.close()


def rows_per_batch(database_url: str, user_id: int) -> dict[str, int]:
    """``{p_name: rows}`` of one user, read straight from the database (no server code)."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(database_url)
    sql = "SELECT p_name, COUNT(*) FROM user_logs WHERE user_id = {} GROUP BY p_name"
    if parts.scheme == "sqlite":
        import sqlite3

        conn = sqlite3.connect(unquote(parts.path[1:]), timeout=30)
        try:
            return dict(conn.execute(sql.format("?"), (user_id,)).fetchall())
        finally:
            conn.close()
    import pymysql

    conn = pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=parts.path.lstrip("/"),
    )
    try:
        with conn.cursor() as cur:
            cur.execute(sql.format("%s"), (user_id,))
            return {name: int(count) for name, count in cur.fetchall()}
    finally:
        conn.close()


class Load:
    """`workers` clients posting batches of `records` records as fast as they are answered.

    Every batch has a unique ``p_name``, so the database can be checked batch by batch.
    `results` maps each ``p_name`` to the HTTP status, or the name of the exception when no
    answer came (connection refused, reset, timeout). A non-200 batch is not retried: a new
    batch goes out instead, after `pause` seconds.
    """

    def __init__(
        self,
        port: int,
        user: RemoteUser,
        workers: int = 4,
        records: int = 5,
        prefix: str = "b",
        pause: float = 0.05,
    ) -> None:
        self.port, self.user, self.workers, self.records = port, user, workers, records
        self.prefix, self.pause = prefix, pause
        self.results: dict[str, int | str] = {}
        self.bad_replies: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> Load:
        """Start the clients."""
        self._tasks = [asyncio.ensure_future(self._client(w)) for w in range(self.workers)]
        return self

    async def stop(self) -> None:
        """Let every client finish its current request, then stop."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _client(self, worker: int) -> None:
        seq = 0
        headers = send_headers(self.user.token)
        while not self._stop.is_set():
            p_name = f"{self.prefix}{worker}-{seq}"
            seq += 1
            body = batch_body(self.user.name, p_name, self.records)
            try:
                reply = await http(self.port, "POST", "//send_logs", body, headers, timeout=30)
            except (TimeoutError, OSError) as exc:
                self.results[p_name] = type(exc).__name__
                await asyncio.sleep(self.pause)
                continue
            self.results[p_name] = reply.status
            self._check(p_name, reply)
            if reply.status != 200:
                await asyncio.sleep(self.pause)

    def _check(self, p_name: str, reply: Reply) -> None:
        try:
            body = reply.json()
        except orjson.JSONDecodeError:
            self.bad_replies.append(f"{p_name}: {reply.status} not JSON: {reply.body[:80]!r}")
            return
        if body.get("code") != reply.status:
            self.bad_replies.append(f"{p_name}: {reply.status} body {body}")
        if reply.status == 503 and reply.headers.get("retry-after") is None:
            self.bad_replies.append(f"{p_name}: 503 without Retry-After")

    def statuses(self) -> dict[int | str, int]:
        """How many batches ended with each status or exception name."""
        counts: dict[int | str, int] = {}
        for status in self.results.values():
            counts[status] = counts.get(status, 0) + 1
        return counts

    def acked(self) -> set[str]:
        """The ``p_name`` of every batch answered 200."""
        return {p for p, status in self.results.items() if status == 200}

    def check_database(self, stored: dict[str, int]) -> dict[str, int]:
        """Assert every 200 batch is stored exactly once and no batch is partial.

        `stored` is `rows_per_batch`. Returns figures: batches sent and acknowledged, records
        acknowledged and counted, and unacknowledged batches found whole in the database
        (their commit succeeded but the answer was lost or late, e.g. a connection cut
        between COMMIT and its OK).
        """
        acked = self.acked()
        wrong = {p: stored.get(p, 0) for p in acked if stored.get(p, 0) != self.records}
        assert not wrong, f"acknowledged batches not stored exactly once: {wrong}"
        partial = {p: n for p, n in stored.items() if n not in (0, self.records)}
        assert not partial, f"partial or duplicated batches: {partial}"
        unknown = set(stored) - set(self.results)
        assert not unknown, f"rows of batches never sent: {unknown}"
        acked_records = len(acked) * self.records
        counted = sum(stored[p] for p in acked)
        return {
            "batches_sent": len(self.results),
            "batches_acked": len(acked),
            "records_acked": acked_records,
            "records_counted_for_acked": counted,
            "records_in_table": sum(stored.values()),
            "unacked_batches_stored_whole": len(set(stored) - acked),
        }
