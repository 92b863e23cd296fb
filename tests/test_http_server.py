"""``--http-server uvicorn``: the same app, contract and start-up, on the faster server.

One real process (``python3 app.py --http-server uvicorn``) on SQLite: the real client's
request to ``//send_logs`` is stored, an unknown path answers contract JSON, and SIGTERM stops
it cleanly. A bad database makes it exit 1, as with hypercorn.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import CLIENT_PATH, client_body, client_headers

pytest.importorskip("uvicorn")

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_py(log: Path, *args: str) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "app.py", *args],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LOGGER_LOG_LEVEL": "WARNING"},
        )


def request(url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_uvicorn_serves_the_real_client_and_stops_on_sigterm(tmp_path):
    url = f"sqlite:///{tmp_path / 'logs.db'}"
    token = subprocess.run(
        [sys.executable, "app.py", "--database-url", url, "users", "add", "alice"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = free_port()
    log = tmp_path / "server.log"
    server = app_py(log, "--database-url", url, "--port", str(port), "--http-server", "uvicorn")
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                request(f"{base}/healthz")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        body = json.dumps(client_body("alice", 3)).encode()
        status, answer = request(base + CLIENT_PATH, body, client_headers(token))
        assert (status, answer["code"], answer.get("added")) == (200, 200, 3)
        assert request(f"{base}/nope") == (404, {"code": 404, "message": "NotFound"})
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            # A graceful stop; uvicorn then re-raises the signal it caught, so -SIGTERM.
            assert server.wait(15) in (0, -signal.SIGTERM), log.read_text()
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()


def test_uvicorn_start_up_failure_exits_1(tmp_path):
    server = app_py(
        tmp_path / "server.log",
        "--database-url",
        "mysql://nobody:wrong@127.0.0.1:1/nothing",
        "--port",
        str(free_port()),
        "--http-server",
        "uvicorn",
    )
    try:
        assert server.wait(30) == 1
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
