"""Helpers of the logging handler's tests (`bot_logging_server.handler.Handler`).

* `wait_for`: poll a condition (the handler sends from its own thread).
* `FakeServer`: a local HTTP server answering POSTs from a script (statuses, headers,
  "drop", "hang"), recording each request as a `Seen`; `TOKEN` is a token it is sent.
* `run_and_exit`: a child process that logs with a `Handler` and exits (`EXIT_SCRIPT`).

The `attach` fixture (a `Handler` on a fresh logger, closed after the test) is in
``conftest.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from support.process import ROOT


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll `predicate` until it is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


EXIT_SCRIPT = """
import logging, sys
from bot_logging_server.handler import Handler

url, user, token, count, close_timeout = sys.argv[1:6]
handler = Handler(url, user, token, batch_size=1000, flush_interval=300, timeout=30,
                  close_timeout=float(close_timeout))
log = logging.getLogger("exiting")
log.addHandler(handler)
for i in range(int(count)):
    log.warning("at exit %d", i)
print("logged", flush=True)
"""


def run_and_exit(url: str, user: str, token: str, count: int, close_timeout: float) -> float:
    """Run `EXIT_SCRIPT` (log `count` records, exit); seconds from "logged" to its exit."""
    args = [url, user, token, str(count), str(close_timeout)]
    proc = subprocess.Popen(
        [sys.executable, "-c", EXIT_SCRIPT, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline() == "logged\n", proc.stderr.read()
        logged = time.monotonic()
        assert proc.wait(timeout=90) == 0, proc.stderr.read()
        return time.monotonic() - logged
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@dataclass
class Seen:
    """One request the fake server received."""

    at: float
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def msgs(self) -> list[str]:
        return [record["msg"] for record in self.body["data"]["logs"]]


#: An answer: a status, (status, headers), "drop" (close without answering), "hang" (answer
#: 200 only once released), or a function of the request body giving one of those.
Answer = Any


class FakeServer:
    """A local HTTP server answering POSTs from `script`, then 200; records every request."""

    def __init__(self, *script: Answer) -> None:
        self.script: deque[Answer] = deque(script)
        self.always: Answer = 200
        self.seen: list[Seen] = []
        self.release = threading.Event()
        fake = self

        class Reply(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.seen.append(Seen(time.monotonic(), headers, body))
                answer = fake.script.popleft() if fake.script else fake.always
                if callable(answer):
                    answer = answer(body)
                if answer == "drop":
                    return
                if answer == "hang":
                    fake.release.wait(60)
                    answer = 200
                status, extra = answer if isinstance(answer, tuple) else (answer, {})
                reply = json.dumps({"code": status, "message": "scripted", "detail": "why"})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Reply)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def msgs(self) -> list[str]:
        """Every message received, in order, retries included."""
        return [msg for seen in self.seen for msg in seen.msgs]


TOKEN = "0123456789abcdef0123456789abcdef"
