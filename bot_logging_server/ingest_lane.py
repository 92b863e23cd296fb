"""The ingest lane: the usual ``POST /send_logs`` request, served just below Quart.

Quart's own work for a request (its request and response objects, two tasks, the contexts,
routing, the hooks) costs more CPU than everything ``/send_logs`` does with a small batch:
``bench/floor_app.py`` measures a bare Quart app at several times the CPU per request of a
bare ASGI app on the same HTTP server. Ingest is most of a log server's requests, so
`IngestLane`, ASGI middleware around the Quart app, serves the request ingest is made of
with the functions the handler (`bot_logging_server.blueprints.ingest.send_logs`) calls,
in the same order of effects, and answers the same bytes:

* a JSON batch with a ``Content-Length`` up to the offload size (and the body limit), read
  within the body timeout;
* with a token this process has verified before (`Authenticator.knows_token`: checked before
  the body is read, so a request the handler would screen out never has its body read
  here), from a (user, token) pair verified within the cache time (`Authenticator.verified`);
* that passes every check of the handler: the envelope, the batch size, every record, then
  the rate limit, which counts nothing it refuses.

The batch is stored by `Storage.insert_logs`, as the handler stores a batch sent without an
``Idempotency-Key``, and the same 200 is sent after the commit. A storage failure is answered
here as the app's error handlers answer it (`storage_error_response`): the write is never
tried twice.

Everything else goes to Quart, unchanged: before anything is read (another method or path, a
missing or malformed token, no or several ``Content-Length``, a larger body, any
``Authorization`` (``logging.handlers.HTTPHandler``), an ``Idempotency-Key``), or with the
body read so far given again (a check that fails, a pair not verified lately). So every
refusal is the handler's own answer, in the contract's order of checks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from quart import Quart, Response
from quart.utils import encode_headers

from bot_logging_server.auth import Authenticator, get_authenticator
from bot_logging_server.blueprints.ingest import PATHS
from bot_logging_server.config import APP_CONFIG_KEY, Config
from bot_logging_server.errors import APIError, error_body, json_response, storage_error_response
from bot_logging_server.observe import note
from bot_logging_server.offload import OFFLOAD_BYTES
from bot_logging_server.ratelimit import RateLimiter, get_rate_limiter
from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.ingest import read_batch
from bot_logging_server.storage import Storage, StorageError, get_storage, utc_now
from bot_logging_server.tokens import normal_token

__all__ = ["IngestLane", "get_lane", "init_app"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Request headers after which the request is the handler's alone.
_HANDLER_ONLY = frozenset({b"authorization", b"idempotency-key"})
_PATHS = frozenset(PATHS)
_JSON = (b"content-type", b"application/json")
_EXTENSION = "bot_logging_server.ingest_lane"


class _Declined(Exception):
    """The request is not the lane's: Quart's handler answers it."""


class IngestLane:
    """ASGI middleware serving the usual ``POST /send_logs`` (see the module's docstring)."""

    def __init__(self, app: ASGIApp, config: Config, storage: Storage) -> None:
        """Serve in front of `app` (the Quart app's ASGI callable) with `config`'s limits.

        The app's `Authenticator` and `RateLimiter` are looked up on its first request.
        """
        self._app = app
        self._config = config
        self._storage = storage
        self._most = min(OFFLOAD_BYTES, config.max_body_bytes)
        self._auth: Authenticator | None = None
        self._limiter: RateLimiter | None = None
        #: False sends every request to Quart (the tests compare both ways).
        self.enabled = True

    def attach(self, authenticator: Authenticator, limiter: RateLimiter | None) -> None:
        """Check tokens with `authenticator` and count with `limiter` (None: no limit)."""
        self._auth = authenticator
        self._limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request when it is the lane's, else hand it to the app."""
        if (
            not self.enabled
            or self._auth is None
            or scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in _PATHS
            or scope.get("root_path")
        ):
            await self._app(scope, receive, send)
            return
        token = self._token(scope["headers"])
        if token is None or not self._auth.knows_token(token):
            await self._app(scope, receive, send)  # unread: the handler screens it first
            return
        read = await _read_body(receive, self._config.body_timeout, self._most)
        if read is None:
            return  # the client left
        if isinstance(read, Response):
            await _send(send, read)  # the body did not arrive in time: 408
            return
        chunks, whole = read
        try:
            raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if not whole or len(raw) > self._most:
                raise _Declined()  # longer than the lane takes
            await self._serve(token, raw, send)
        except _Declined:
            await self._app(scope, _replay(chunks, whole, receive), send)

    def _token(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        """The request's token when the request may be the lane's (see the module), else
        None."""
        tokens: set[bytes] = set()
        for name, value in headers:
            if name == b"x-user-token":
                tokens.add(value)
            elif name == b"content-length":
                if not value.isdigit() or int(value) > self._most:
                    return None
            elif name in _HANDLER_ONLY:
                return None
        if len(tokens) != 1:
            return None
        return normal_token(tokens.pop().decode("latin-1"))

    async def _serve(self, token: str, raw: bytes, send: Send) -> None:
        """Check and store the batch, then answer; `_Declined` before the write when any
        check fails (nothing has had an effect)."""
        assert self._auth is not None
        config = self._config
        try:
            batch = read_batch(raw, config.max_msg_chars)
            user = self._auth.verified(batch.username, token)
            if user is None or batch.records > config.max_records:
                raise _Declined()
            rows = batch.rows()
            if self._limiter is not None:
                await self._limiter.check(user.id, batch.records)  # the last check
        except (ValidationFailed, APIError):
            raise _Declined() from None
        note(user=user.username, route=PATHS[0])
        try:
            added = await self._storage.insert_logs(user.id, rows, utc_now())
        except StorageError as exc:
            await _send(send, storage_error_response(exc))
            return
        except Exception as exc:  # as the app's handler of unexpected errors
            log.error("unhandled exception", exc_info=exc)
            await _send(send, json_response(error_body(500), 500))
            return
        note(records=added)
        body = orjson.dumps({"code": 200, "message": "Logs added successfully", "added": added})
        headers = [_JSON, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


async def _read_body(
    receive: Receive, timeout: float, most: int
) -> tuple[list[bytes], bool] | Response | None:
    """The body's chunks, and whether they are the whole body (they stop once past `most`
    bytes); None when the client leaves first, the handler's 408 answer when the body does
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
        return json_response(error_body(408), 408)


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


async def _send(send: Send, response: Response) -> None:
    """Send a Quart `response` (a JSON answer, its body in memory)."""
    headers = encode_headers(response.headers)  # as Quart sends them
    body = await response.get_data()
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def init_app(app: Quart) -> None:
    """Put the lane in front of `app` (before any other middleware wraps it)."""
    lane = IngestLane(app.asgi_app, app.config[APP_CONFIG_KEY], get_storage(app))
    app.asgi_app = lane  # type: ignore[method-assign]
    app.extensions[_EXTENSION] = lane

    @app.before_serving
    async def _attach() -> None:
        lane.attach(get_authenticator(), get_rate_limiter())


def get_lane(app: Quart) -> IngestLane:
    """`app`'s `IngestLane`."""
    return app.extensions[_EXTENSION]
