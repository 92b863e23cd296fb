"""The server under test: ``python3 app.py`` (or bench/floor_app.py) as a subprocess.

It is started on a free local port, waited for on ``/healthz``, and stopped at the end of a
``with`` block; its output goes to a temporary log file, named when it fails to start.
``create_user`` makes the benchmark's user with the server's own CLI.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

from backends import Backend, FloorBackend
from benchutil import REPO, die, proc_tree


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python3 app.py`` on `backend`, started and stopped by the benchmark."""

    def __init__(self, python: str, backend: Backend, workers: int, extra: list[str]) -> None:
        self.backend = backend
        self.port = free_port()
        fd, self.log_path = tempfile.mkstemp(prefix="bench_server_", suffix=".log")
        self.log = os.fdopen(fd, "w")
        if isinstance(backend, FloorBackend):
            self.args = [python, "bench/floor_app.py", "--port", str(self.port), *extra]
        else:
            self.args = [python, "app.py", "--database-url", backend.url]
            self.args += ["--port", str(self.port), "--workers", str(workers)]
            self.args += ["--log-level", "WARNING", *extra]
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                die(f"server exited at start-up; see {self.log_path}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return self
            time.sleep(0.2)
        self.__exit__()
        die(f"server did not answer within 30 s; see {self.log_path}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def pids(self) -> list[int]:
        """The server process and its descendants (the workers)."""
        assert self.proc is not None
        return proc_tree(self.proc.pid)

    @property
    def base(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"


def create_user(python: str, backend: Backend) -> str:
    """Create the user ``bench`` on `backend` with ``app.py users add``; its token."""
    out = subprocess.run(
        [python, "app.py", "--database-url", backend.url, "users", "add", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        die(f"users add failed: {out.stderr.strip()}")
    return out.stdout.strip().splitlines()[-1]
