"""The HTTP edge in front of the app: requests refused on their head, and stalled readers.

Whatever HTTP server runs the app (hypercorn or uvicorn), the same rules hold:

* **Request heads** (`head_refusal`): at most `MAX_HEADERS` header fields and
  `MAX_HEADER_BYTES` bytes of request line plus headers, however the client splits its
  writes (431); ``Content-Length`` together with ``Transfer-Encoding`` is refused (400), the
  way RFC 9112 section 6.3 asks of a server that does not want to guess where the body ends;
  ``Expect: 100-continue`` with a ``Content-Length`` over ``--max-body-bytes`` is answered 413
  at once, before any ``100 Continue``. Each of these answers is contract JSON with
  ``Connection: close``: the rest of what the client sends is never read.
* **Stalled readers** (`HTTPGuard`): a response (an export, a live tail) runs as long as the
  client keeps reading it. When the client takes nothing for ``--read-timeout`` seconds, the
  response is cut: the connection is closed without the chunked body's final empty chunk, so
  the client knows the body is incomplete (HTTP/1.1 clients report it as an error). A
  streamed body that cannot go on (the database went away) raises `ResponseAborted` for
  the same ending.

`HTTPGuard` is ASGI middleware and applies to both servers. hypercorn answers
``100 Continue`` by itself as soon as it has parsed a request head, before the app runs;
`install_hypercorn_guard` makes it ask `head_refusal` first (a subclass of its HTTP/1.1
protocol), so that a refused request never gets a ``100 Continue``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import orjson

from bot_logging_server.errors import error_body

__all__ = [
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "HTTPGuard",
    "Refusal",
    "ResponseAborted",
    "head_refusal",
    "install_hypercorn_guard",
    "refusal_response",
]

log = logging.getLogger(__name__)

#: Most header fields a request may carry.
MAX_HEADERS = 100
#: Most bytes of request line plus header fields (each counted as ``name: value`` + CRLF).
MAX_HEADER_BYTES = 16 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: A refused request: the status and the detail for the error body.
Refusal = tuple[int, str]


def head_refusal(
    method: bytes | str,
    target: bytes,
    headers: Iterable[tuple[bytes, bytes]],
    max_body_bytes: int,
) -> Refusal | None:
    """Why a request must be refused from its head alone, or ``None`` when it may go on.

    `target` is the request target as sent (path and query), `headers` the header fields
    with lower-case names. Returns ``(431, detail)`` over `MAX_HEADERS` fields or
    `MAX_HEADER_BYTES` bytes, ``(400, detail)`` for ``Content-Length`` with
    ``Transfer-Encoding``, ``(413, detail)`` for ``Expect: 100-continue`` announcing a
    body over `max_body_bytes`.
    """
    count = 0
    size = len(method) + len(target) + 12  # "METHOD TARGET HTTP/1.1\r\n"
    content_length: bytes | None = None
    chunked = expects_continue = False
    for name, value in headers:
        count += 1
        size += len(name) + len(value) + 4
        if name == b"content-length":
            content_length = value
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"expect":
            expects_continue = value.strip().lower() == b"100-continue"
    if count > MAX_HEADERS:
        return 431, f"more than {MAX_HEADERS} header fields"
    if size > MAX_HEADER_BYTES:
        return 431, f"request line and header fields over {MAX_HEADER_BYTES} bytes"
    if content_length is not None and chunked:
        return 400, "Content-Length and Transfer-Encoding together"
    if expects_continue and content_length is not None:
        length = content_length.strip()
        if length.isdigit() and int(length) > max_body_bytes:
            return 413, f"the body is over {max_body_bytes} bytes"
    return None


def refusal_response(refusal: Refusal) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of the answer to a refused request (contract JSON, close)."""
    status, detail = refusal
    body = orjson.dumps(error_body(status, detail))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    return status, headers, body


class ResponseAborted(Exception):
    """Raise it from a streamed body to end the response so that the client sees it is cut.

    `HTTPGuard` ends the response without its final chunk and logs the reason (the
    exception's text) on one line, without a traceback.
    """


class _ClientStalled(ResponseAborted):
    """The client took no part of the response for the send timeout."""


class HTTPGuard:
    """ASGI middleware: refuse bad request heads, cut responses the client stopped reading.

    Args:
        app: the ASGI app to guard.
        max_body_bytes: the body limit (an ``Expect: 100-continue`` over it is 413).
        send_timeout: seconds one piece of a response may wait for the client to take it.

    A send blocks while the connection's buffers are full, that is while the client reads
    nothing. Rather than a timer per send (about 10 us each, on every request), one task per
    process looks every quarter of the timeout (at most every second) for sends that have
    waited too long, and cancels them.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, send_timeout: float) -> None:
        """Guard `app` with these limits."""
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.send_timeout = send_timeout
        self._sends = itertools.count()
        self._pending: dict[int, tuple[float, asyncio.Task[Any]]] = {}
        self._stalled: set[int] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope through the guard."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        refusal = head_refusal(scope["method"], target, scope["headers"], self.max_body_bytes)
        if refusal is not None:
            status, headers, body = refusal_response(refusal)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.ensure_future(self._sweep())

        async def guarded_send(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
                return
            number = next(self._sends)
            self._pending[number] = (time.monotonic(), asyncio.current_task())  # type: ignore[assignment]
            try:
                await send(message)
            except asyncio.CancelledError:
                if number not in self._stalled:
                    raise
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
                raise _ClientStalled from None
            finally:
                del self._pending[number]
                self._stalled.discard(number)

        try:
            await self.app(scope, receive, guarded_send)
        except ResponseAborted as exc:
            # Returning without the final body message makes the server close the
            # connection with the chunked body unterminated: the client sees it is cut.
            if isinstance(exc, _ClientStalled):
                reason = f"the client read nothing for {self.send_timeout:g} s"
            else:
                reason = str(exc)
            log.info("%s %s: response cut, %s", scope["method"], scope["path"], reason)

    async def _sweep(self) -> None:
        """Cancel every send that has waited `send_timeout` seconds (runs until cancelled)."""
        period = min(1.0, self.send_timeout / 4)
        while True:
            await asyncio.sleep(period)
            too_old = time.monotonic() - self.send_timeout
            for number, (since, task) in list(self._pending.items()):
                if since <= too_old and number not in self._stalled:
                    self._stalled.add(number)
                    task.cancel()


def install_hypercorn_guard(max_body_bytes: int) -> None:
    """Make hypercorn's HTTP/1.1 protocol refuse bad request heads before the app runs.

    hypercorn sends ``100 Continue`` as soon as a head is parsed; with this, a request that
    `head_refusal` refuses is answered (and its connection closed) first, so it never gets
    one. Affects this process's hypercorn only; call it before serving.
    """
    import h11
    import hypercorn.protocol
    from hypercorn.events import Closed, RawData
    from hypercorn.protocol.h11 import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        """hypercorn's HTTP/1.1 protocol, asking `head_refusal` before it starts the app."""

        async def _create_stream(self, request: h11.Request) -> None:
            refusal = head_refusal(request.method, request.target, request.headers, max_body_bytes)
            if refusal is None:
                await super()._create_stream(request)
                return
            status, headers, body = refusal_response(refusal)
            # Once a final response is sent, h11 no longer considers the client waiting for
            # 100 Continue, so hypercorn sends none.
            response = h11.Response(
                status_code=status, headers=headers + self.config.response_headers("h11")
            )
            data = self.connection.send(response) or b""
            data += self.connection.send(h11.Data(data=body)) or b""
            data += self.connection.send(h11.EndOfMessage()) or b""
            await self.send(RawData(data=data))
            await self.send(Closed())

    hypercorn.protocol.H11Protocol = GuardedH11Protocol  # type: ignore[misc]
