"""``--http-server uvicorn``: the same app, contract and start-up, on the faster server.

One real process (``python3 app.py --http-server uvicorn``) on SQLite: the real client's
request to ``//send_logs`` is stored, an unknown path answers contract JSON, and SIGTERM stops
it cleanly. A bad database makes it exit 1, as with hypercorn.
"""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request

import pytest
from support import CLIENT_PATH, ServerProcess, client_body, client_headers, run_app

pytest.importorskip("uvicorn")

QUIET = {"LOGGER_LOG_LEVEL": "WARNING"}


def request(url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_uvicorn_serves_the_real_client_and_stops_on_sigterm(tmp_path):
    url = f"sqlite:///{tmp_path / 'logs.db'}"
    token = run_app("--database-url", url, "users", "add", "alice", check=True).stdout.strip()
    with ServerProcess(url, tmp_path, "--http-server", "uvicorn", env=QUIET) as server:
        base = server.wait_ready_blocking(timeout=20).base_url
        body = json.dumps(client_body("alice", 3)).encode()
        status, answer = request(base + CLIENT_PATH, body, client_headers(token))
        assert (status, answer["code"], answer.get("added")) == (200, 200, 3)
        assert request(f"{base}/nope") == (404, {"code": 404, "message": "NotFound"})
        server.proc.send_signal(signal.SIGTERM)
        # A graceful stop; uvicorn then re-raises the signal it caught, so -SIGTERM.
        assert server.wait_exit_blocking(15) in (0, -signal.SIGTERM), server.output()


def test_uvicorn_start_up_failure_exits_1(tmp_path):
    url = "mysql://nobody:wrong@127.0.0.1:1/nothing"
    with ServerProcess(url, tmp_path, "--http-server", "uvicorn", env=QUIET) as server:
        assert server.wait_exit_blocking(30) == 1
