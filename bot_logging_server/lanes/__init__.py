"""Lanes: the usual requests of the write endpoints, served just below Quart.

Quart's own work for a request (its request and response objects, two tasks, the contexts,
routing, the hooks) costs more CPU than everything a write endpoint does with a small
request: ``bench/floor_app.py`` measures a bare Quart app at several times the CPU per
request of a bare ASGI app on the same HTTP server. Writes are most of this server's
requests, so `Lanes`, ASGI middleware around the Quart app, serves the request each write
endpoint is made of (the usual, successful one) with the functions its handler calls, in the
same order of effects, and answers the same bytes. A lane is one module of this package,
one `Lane` per endpoint (``/send_logs``: `bot_logging_server.lanes.send_logs`).

Everything else goes to Quart, unchanged, so every refusal is the handler's own answer:

* before anything is read, when `Lane.admit` says no (another method or path, credentials
  it cannot check without the handler, a declared body larger than the lane takes);
* with the body read so far given again, when `Lane.serve` raises `Declined`: it must do so
  before anything has had an effect (a check that fails, a pair not verified lately).

A lane never tries a write twice: a failure of the write is answered by the lane, as the
app's error handlers answer it. The tests send every case both ways and compare the answers
and the rows stored (``Lanes.enabled``).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from quart import Quart, Response
from quart.utils import encode_headers

from bot_logging_server.errors import error_body, json_response

__all__ = [
    "Answer",
    "Declined",
    "Lane",
    "Lanes",
    "get_lanes",
    "header_values",
    "install",
    "one_header",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = Sequence[tuple[bytes, bytes]]

_EXTENSION = "bot_logging_server.lanes"


class Declined(Exception):
    """The request is not the lane's: its handler answers it (nothing has had an effect)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A lane's answer: the status, the headers (lower-case names) and the whole body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @classmethod
    def json(cls, body: bytes, status: int = 200, *extra: tuple[bytes, bytes]) -> Answer:
        """`body` (JSON, already encoded) as ``application/json``, as `json_response` sends."""
        headers = [(b"content-type", b"application/json"), *extra]
        return cls(status, [*headers, (b"content-length", str(len(body)).encode())], body)

    @classmethod
    async def of(cls, response: Response) -> Answer:
        """A Quart `response` whose body is in memory (an error handler's answer)."""
        return cls(
            response.status_code, encode_headers(response.headers), await response.get_data()
        )


class Lane(abc.ABC):
    """One write endpoint's usual request: what `Lanes` needs to serve it."""

    #: The method and the request paths (as the ASGI scope spells them) served.
    method = "POST"
    paths: frozenset[str] = frozenset()
    #: The most body bytes the lane reads (larger: the handler's).
    most_bytes = 0

    def start(self, app: Quart) -> None:  # noqa: B027 (optional hook)
        """Look up what the lane needs from the started app (in ``before_serving``)."""

    def takes_length(self, headers: dict[bytes, list[str]]) -> bool:
        """Whether the ``Content-Length`` (when one is sent) is one value the lane reads."""
        values = headers.get(b"content-length")
        if values is None:
            return True
        return len(values) == 1 and values[0].isdigit() and int(values[0]) <= self.most_bytes

    @abc.abstractmethod
    def admit(self, scope: Scope) -> Any:
        """What `serve` needs from the request head (its credentials), or None to leave the
        request to the handler unread. No effect allowed."""

    @abc.abstractmethod
    async def serve(self, scope: Scope, admitted: Any, body: bytes) -> Answer:
        """Check and store the request, and answer it; raise `Declined` before any effect."""


class Lanes:
    """The ASGI middleware: serves the requests its lanes take, hands the rest to the app."""

    def __init__(self, app: ASGIApp, lanes: Sequence[Lane], body_timeout: float) -> None:
        """Serve `lanes` in front of `app`; a body must arrive within `body_timeout` s."""
        self._app = app
        self._lanes = {(lane.method, path): lane for lane in lanes for path in lane.paths}
        self._body_timeout = body_timeout
        self._started = False
        #: False sends every request to the app (the tests compare both ways).
        self.enabled = True

    def start(self, app: Quart) -> None:
        """Start every lane (once the app's extensions are set up)."""
        for lane in set(self._lanes.values()):
            lane.start(app)
        self._started = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request when a lane takes it, else hand it to the app."""
        lane = None
        if (
            self.enabled
            and self._started
            and scope["type"] == "http"
            and not scope.get("root_path")
        ):
            lane = self._lanes.get((scope["method"], scope["path"]))
        admitted = None if lane is None else lane.admit(scope)
        if lane is None or admitted is None:
            await self._app(scope, receive, send)
            return
        read = await _read_body(receive, self._body_timeout, lane.most_bytes)
        if read is None:
            return  # the client left
        if isinstance(read, Answer):
            await _send(send, read)  # the body did not arrive in time: the handler's 408
            return
        chunks, whole = read
        try:
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if not whole or len(body) > lane.most_bytes:
                raise Declined()  # longer than the lane takes
            answer = await lane.serve(scope, admitted, body)
        except Declined:
            await self._app(scope, _replay(chunks, whole, receive), send)
            return
        await _send(send, answer)


def header_values(scope: Scope) -> dict[bytes, list[str]]:
    """The request's header values by lower-case name, as text (latin-1, as HTTP has it)."""
    found: dict[bytes, list[str]] = {}
    for name, value in scope["headers"]:
        found.setdefault(name, []).append(value.decode("latin-1"))
    return found


def one_header(headers: dict[bytes, list[str]], name: bytes) -> str | None:
    """The header's value when it is sent once; None when missing; `Declined` if repeated
    (the handler decides what that means)."""
    values = headers.get(name)
    if values is None:
        return None
    if len(values) > 1:
        raise Declined()
    return values[0]


async def _read_body(
    receive: Receive, timeout: float, most: int
) -> tuple[list[bytes], bool] | Answer | None:
    """The body's chunks, and whether they are the whole body (they stop once past `most`
    bytes); None when the client leaves first, the handlers' 408 answer when the body does
    not arrive within `timeout` seconds."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                chunks.append(chunk)
                size += len(chunk)
                if not message.get("more_body", False):
                    return chunks, True
                if size > most:
                    return chunks, False
    except TimeoutError:
        return await Answer.of(json_response(error_body(408), 408))


def _replay(chunks: list[bytes], whole: bool, receive: Receive) -> Receive:
    """`receive` that first gives the `chunks` read already, then what the client sends."""
    given = 0

    async def replayed() -> Message:
        nonlocal given
        if given < len(chunks):
            given += 1
            more = given < len(chunks) or not whole
            return {"type": "http.request", "body": chunks[given - 1], "more_body": more}
        return await receive()

    return replayed


async def _send(send: Send, answer: Answer) -> None:
    await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
    await send({"type": "http.response.body", "body": answer.body, "more_body": False})


def install(app: Quart, lanes: Sequence[Lane], body_timeout: float) -> Lanes:
    """Put `lanes` in front of `app` (before any other middleware wraps it); they start
    when the app starts serving."""
    middleware = Lanes(app.asgi_app, lanes, body_timeout)
    app.asgi_app = middleware  # type: ignore[method-assign]
    app.extensions[_EXTENSION] = middleware

    @app.before_serving
    async def _start_lanes() -> None:
        middleware.start(app)

    return middleware


def get_lanes(app: Quart) -> Lanes:
    """`app`'s `Lanes`."""
    return app.extensions[_EXTENSION]
