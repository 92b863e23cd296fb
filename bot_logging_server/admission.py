"""Admission: how many requests, and how many request-body bytes, one process holds at once.

`Admission` is ASGI middleware in front of the app (`init_app` wraps ``app.asgi_app``, so it
runs under hypercorn, uvicorn and the test client alike). The app reads a body as fast as
the client sends it, so without a bound a hundred clients that each send most of a 16 MiB
body and then stall hold 1.5 GB between them. Two bounds, each answered with 503
``ServiceUnavailable`` and ``Retry-After`` (the real client keeps its batch and retries):

* at most ``max_concurrent_requests`` requests in progress (for HTTP/1.1: connections with a
  request in progress; idle keep-alive connections are closed after ``keep_alive_timeout``);
  one more is answered at once, before anything else is read;
* at most ``max_buffered_bytes`` of request bodies held at once. A body declaring a
  ``Content-Length`` over `SMALL_BODY` reserves that many bytes before any of it is read, or
  is answered 503 when they are not free; a body without a length reserves what arrives, and
  is answered 503 as soon as the next piece does not fit. Bodies of at most `SMALL_BODY`
  (the real client's batches) need no reservation: the request cap bounds them.

A refused request's body is never read; the connection is closed after the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from quart import Quart

from bot_logging_server.config import Config
from bot_logging_server.errors import RETRY_AFTER_SECONDS, error_body

__all__ = ["SMALL_BODY", "Admission", "init_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Bodies up to this size are admitted without a reservation (bounded by the request cap).
SMALL_BODY = 64 * 1024


class Admission:
    """ASGI middleware: caps requests in progress and request-body bytes held at once.

    Args:
        app: the ASGI application behind it.
        max_requests: requests in progress at once; one more is a 503.
        max_buffered: body bytes reserved at once; a body that does not fit is a 503.
        max_body: the largest body the app takes (a larger declared one is the app's 413
            and reserves nothing: the app refuses it without reading it).
    """

    def __init__(self, app: ASGIApp, max_requests: int, max_buffered: int, max_body: int) -> None:
        """Admit requests to `app` within the bounds."""
        self.app = app
        self.max_requests = max_requests
        self.max_buffered = max(max_buffered, max_body)
        self.max_body = max_body
        #: Requests in progress now.
        self.requests = 0
        #: Body bytes reserved now.
        self.buffered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection: HTTP requests within the bounds, the rest as they are."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.requests >= self.max_requests:
            await _refuse(send, "too many requests at once")
            return
        declared = _content_length(scope)
        reserve = declared if declared is not None and SMALL_BODY < declared <= self.max_body else 0
        if reserve and self.buffered + reserve > self.max_buffered:
            await _refuse(send, "too many request bodies at once")
            return
        self.requests += 1
        self.buffered += reserve
        request = _Request(self, receive, send, reserve, counted=declared is None)
        try:
            await self.app(scope, request.receive, request.send)
        finally:
            self.requests -= 1
            self.buffered -= request.reserved


class _Request:
    """One admitted request: its reservation, and how much of its body has arrived."""

    def __init__(
        self, admission: Admission, receive: Receive, send: Send, reserved: int, counted: bool
    ) -> None:
        self._admission = admission
        self._receive = receive
        self._send = send
        #: Body bytes this request holds reserved.
        self.reserved = reserved
        self._counted = counted  # a body without Content-Length: reserved as it arrives
        self._received = 0
        self._responded = False  # the app has started its answer
        self._refused = False  # we answered 503 in its place

    async def receive(self) -> Message:
        """The app's ``receive``: the next message, or a disconnect once refused."""
        if self._refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if self._counted and message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > SMALL_BODY and not self._reserve_received():
                self._refused = True
                if not self._responded:
                    self._responded = True
                    await _refuse(self._send, "too many request bodies at once")
                # The app sees the client gone, and stops waiting for the body.
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        """The app's ``send``; nothing once we have answered in its place."""
        if self._refused:
            return
        if message["type"] == "http.response.start":
            self._responded = True
        await self._send(message)

    def _reserve_received(self) -> bool:
        """Reserve what arrived beyond the reservation; False when it does not fit."""
        admission = self._admission
        # Past max_body the app refuses the body (413) and keeps none of the rest.
        held = min(self._received, admission.max_body)
        more = held - self.reserved
        if more <= 0:
            return True
        if admission.buffered + more > admission.max_buffered:
            return False
        admission.buffered += more
        self.reserved += more
        return True


def _content_length(scope: Scope) -> int | None:
    """The request's declared ``Content-Length``; None when absent or not a number."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, detail: str) -> None:
    """Answer 503 with ``Retry-After``, in the contract's JSON shape, and close."""
    body = orjson.dumps(error_body(503, detail))
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def init_app(app: Quart, config: Config) -> None:
    """Put `Admission` in front of `app`, with the bounds of `config`."""
    app.asgi_app = Admission(  # type: ignore[method-assign]
        app.asgi_app,
        max_requests=config.max_concurrent_requests,
        max_buffered=config.max_buffered_bytes,
        max_body=config.max_body_bytes,
    )
