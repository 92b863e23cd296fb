"""The real thing as processes: ``python3 app.py`` serving, or running a command, and raw HTTP.

* `free_port` / `free_ports`: TCP ports nobody listens on.
* `run_app`: ``python3 app.py ARGS`` to completion (the ``users`` commands, ``--help``, a
  configuration error), with its output captured; the one way tests run the CLI as a process.
* `AppProcess`: ``python3 app.py ARGS`` in the background, its output in a file, always
  killed (with its process group) by its context manager; `ServerProcess` is one serving on
  a free port, waited for until ``/healthz`` answers. The one way tests start app.py in the
  background.
* `http`: one HTTP/1.1 request over a raw socket (``Connection: close``), so tests see exactly
  what a client on the network sees; `half_sent_request` leaves a body half sent.

Both kinds of process get the test's environment without any ``LOGGER_`` setting, plus the
`env` given, so a developer's own settings never leak into a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client as http_client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import orjson

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
#: Every ``--http-server`` the server supports: the reliability tests run on each.
HTTP_SERVERS = ("hypercorn", "uvicorn")


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports nobody listens on right now (held until all are picked)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    return free_ports(1)[0]


def app_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ``LOGGER_``/``BOT_LOGGING`` settings, plus `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LOGGER_", "BOT_LOGGING"))}
    clean.update(env or {})
    return clean


def run_app(
    *args: str,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``python3 app.py ARGS`` in `cwd` until it exits; stdout and stderr captured as text.

    With `check`, a non-zero exit fails with the command's stderr.
    """
    done = subprocess.run(
        [sys.executable, str(APP), *args],
        cwd=cwd,
        env=app_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert done.returncode == 0, (
            f"app.py {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
        )
    return done


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


async def half_sent_request(
    port: int, body: bytes, headers: dict[str, str]
) -> Callable[[], Awaitable[bytes]]:
    """Open a ``POST //send_logs``, send its headers and half its body; return how to finish.

    Awaiting the returned coroutine function sends the rest and reads the whole answer.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST //send_logs HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "Connection: close\r\n\r\n"
    half = len(body) // 2
    writer.write(head.encode() + body[:half])
    await writer.drain()

    async def finish() -> bytes:
        writer.write(body[half:])
        await writer.drain()
        try:
            return await asyncio.wait_for(reader.read(), 15)
        finally:
            writer.close()

    return finish


class AppProcess:
    """``python3 app.py ARGS`` in the background; use as ``with AppProcess(...) as app``.

    The output (stdout and stderr) goes to a file in `log_dir`; the process runs in `cwd`
    (the repository by default; a temporary directory for the default ``./bot_logging.db``)
    in its own process group, which `stop` (and leaving the ``with`` block) kills. Waiting
    has a blocking form (plain tests and fixtures) and an awaitable one (which leaves the
    event loop free, e.g. for a `TCPProxy` in the same test). While waiting for the exit,
    the moments of the first output and of the exit are noted (`first_output_at`,
    `exited_at`, `time.monotonic` seconds).
    """

    def __init__(
        self,
        log_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.log_path = log_dir / f"app-{uuid.uuid4().hex[:6]}.log"
        self.command = [sys.executable, str(APP), *args]
        self.cwd = cwd
        self.env = app_env(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.first_output_at: float | None = None
        self.exited_at: float | None = None

    def start(self) -> Self:
        """Start the process (not waiting for anything)."""
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_exit_blocking(self, timeout: float) -> int:
        """Block until the process ends; return its exit code (fail after `timeout` s)."""
        assert self.proc is not None, "start() first"
        deadline = time.monotonic() + timeout
        while (code := self.proc.poll()) is None:
            if self.first_output_at is None and self.log_path.stat().st_size:
                self.first_output_at = time.monotonic()
            if time.monotonic() > deadline:
                tail = self.output()[-3000:]
                raise AssertionError(f"still running after {timeout} s; it printed:\n{tail}")
            time.sleep(0.01)
        self.exited_at = time.monotonic()
        return code

    async def wait_exit(self, timeout: float) -> int:
        """`wait_exit_blocking` in a thread, so the test's event loop keeps running."""
        return await asyncio.to_thread(self.wait_exit_blocking, timeout)

    def seconds_from_first_output_to_exit(self) -> float:
        """How long the process ran on after it first printed (0 if it never printed)."""
        assert self.exited_at is not None, "wait_exit first"
        return self.exited_at - (self.first_output_at or self.exited_at)

    def wait_for_line(self, text: str, timeout: float = 30.0) -> str:
        """Block until a line of output contains `text`; return that line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.output().splitlines(keepends=True):
                if text in line and line.endswith("\n"):
                    return line
            assert self.proc is not None and self.proc.poll() is None, self.output()
            time.sleep(0.01)
        raise AssertionError(f"no line with {text!r} after {timeout} s:\n{self.output()}")

    def signal(self, signum: int) -> None:
        """Send `signum` to the process's whole group (the server's parent and workers)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signum)

    def processes(self) -> int:
        """How many processes the process group holds (a server's parent and workers)."""
        assert self.proc is not None
        count = 0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.getpgid(int(entry.name)) == self.proc.pid:
                        count += 1
        return count

    def stop(self) -> None:
        """Kill the whole process group (idempotent; a hung server may have workers)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def output(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def lines(self) -> list[str]:
        """The non-empty lines of the output."""
        return [line for line in self.output().splitlines() if line.strip()]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerProcess(AppProcess):
    """``python3 app.py --host 127.0.0.1 --port P [--database-url URL] ARGS``, an `AppProcess`.

    `port` is a free one unless given; `database_url` is left out when empty. `wait_ready`
    (or `wait_ready_blocking`) waits until ``/healthz`` answers 200.
    """

    def __init__(
        self,
        database_url: str,
        log_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.port = port or free_port()
        database = ["--database-url", database_url] if database_url else []
        flags = ["--host", "127.0.0.1", "--port", str(self.port), *database]
        super().__init__(log_dir, *flags, *args, env=env, cwd=cwd)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def wait_ready_blocking(self, timeout: float = 30.0) -> Self:
        """Block until ``/healthz`` answers 200; fail with the server's output if it does not."""
        assert self.proc is not None, "start() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            conn = http_client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return self
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.output()}")

    async def wait_ready(self, timeout: float = 30.0) -> Self:
        """`wait_ready_blocking` in a thread, so the test's event loop keeps running."""
        return await asyncio.to_thread(self.wait_ready_blocking, timeout)


def logger_rows(port: int, account: Any, logger: str) -> list[dict[str, Any]]:
    """`account`'s stored records from logger `logger` on the server at `port`, oldest
    first (``GET /api/logs``, blocking)."""
    query = urllib.parse.urlencode({"p_description": logger, "limit": 1000})
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/logs?{query}",
        headers={"X-User": account.name, "X-User-Token": account.token},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return sorted(orjson.loads(response.read())["logs"], key=lambda row: row["id"])
