"""A fake HTTP receiver of alerts: the Telegram Bot API, or a webhook, on a local port.

`Receiver` is a threaded HTTP server (so both the in-process app and a server process can
reach it) that records every POST and answers each with the next of its `statuses` (the
last one repeats), after `delay` seconds. On a Telegram path (``/bot<token>/sendMessage``)
a 200 is the Bot API's ``{"ok": true, ...}`` and anything else its ``{"ok": false,
"description": ...}``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import orjson


@dataclass(frozen=True)
class Received:
    """One request the receiver got: its path, headers (lower-case names), body, the status
    it was answered, and when it arrived (`time.monotonic`)."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    def json(self) -> Any:
        """The body parsed as JSON."""
        return orjson.loads(self.body)


class Receiver:
    """``with Receiver(statuses=(500, 200)) as fake:`` a local HTTP receiver in a thread."""

    def __init__(self, statuses: tuple[int, ...] = (200,), delay: float = 0.0) -> None:
        self.statuses = list(statuses)
        self.delay = delay
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrived = time.monotonic()
                time.sleep(receiver.delay)
                with receiver._lock:
                    status = receiver.statuses[
                        min(len(receiver.received), len(receiver.statuses) - 1)
                    ]
                    receiver.received.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            status,
                            arrived,
                        )
                    )
                if "/sendMessage" in self.path:
                    answer: dict[str, Any] = (
                        {"ok": True, "result": {"message_id": len(receiver.received)}}
                        if status == 200
                        else {"ok": False, "error_code": status, "description": "Server Error"}
                    )
                else:
                    answer = {"received": True}
                data = orjson.dumps(answer)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        """Start serving in the background."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def answered(self, status: int = 200) -> list[Received]:
        """The requests answered with `status`, in order."""
        with self._lock:
            return [r for r in self.received if r.status == status]

    async def wait_for(self, count: int, timeout: float, status: int = 200) -> list[Received]:
        """Wait until `count` requests were answered with `status` (or `timeout` s passed);
        return those answered so."""
        deadline = time.monotonic() + timeout
        while len(self.answered(status)) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.answered(status)
