"""What serving with uvicorn needs beyond uvicorn itself (imported only with ``uvicorn``).

* `UvicornConfig`: uvicorn's config, carrying our settings to worker processes (see
  `bot_logging_server.server`); defined here, at module level, so that multiprocessing can
  pickle it by name.
* `DrainingServer`: uvicorn's server, running a hook (closing the WebSockets gracefully)
  before it closes its connections itself;
* `JSONErrorsProtocol`: uvicorn's HTTP/1.1 protocol (httptools when installed, else h11),
  whose answer to a request its parser refuses (malformed, or ``Content-Length`` with
  ``Transfer-Encoding``) is contract JSON, like every other answer, instead of plain text;
  and which, like hypercorn, closes a connection whose request head has not arrived whole
  within ``--keep-alive-timeout`` of the connection opening or of the previous answer.
  uvicorn's own keep-alive timer only closes a connection on which nothing at all arrives
  (and only after a first answer): a client sending its headers a byte at a time would hold
  the connection, and a worker's memory, forever.
* `mask_websocket_targets`: uvicorn logs every WebSocket's request target (``?key=<ingest
  key>`` included) on its own logger; this masks the secrets in those lines.
* `serve_uvicorn`: ``--http-server uvicorn``, one process or ``--workers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
import uvicorn
from uvicorn.supervisors import Multiprocess

from bot_logging_server.blueprints.stats_ws import MAX_FRAME_BYTES, drain_sockets
from bot_logging_server.config import Config
from bot_logging_server.connections import cap_connections, refusal, refused
from bot_logging_server.errors import error_body
from bot_logging_server.gc_tuning import tune_gc_once_started
from bot_logging_server.observe import masked_target
from bot_logging_server.server import (
    GRACEFUL_SECONDS,
    CarriesSettings,
    StartupError,
    announce,
    check_storage,
    listen_all,
    serving_app,
    settings_for_workers,
)

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Protocol
except ImportError:  # httptools is optional: uvicorn's pure-Python h11 protocol
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Protocol  # type: ignore[assignment]

__all__ = [
    "DrainingServer",
    "JSONErrorsProtocol",
    "UvicornConfig",
    "drain_in_workers",
    "http_protocol",
    "mask_websocket_targets",
    "serve_uvicorn",
]


class UvicornConfig(CarriesSettings, uvicorn.Config):
    """uvicorn's `Config`, carrying our settings to the worker processes it is pickled to."""


class DrainingServer(uvicorn.Server):
    """uvicorn's server; when it stops, it stops accepting, awaits `before_shutdown`, and
    only then shuts down as uvicorn does (which closes every WebSocket with 1012 at once)."""

    def __init__(
        self, config: uvicorn.Config, before_shutdown: Callable[[], Awaitable[None]]
    ) -> None:
        """Serve with `config`; await `before_shutdown` when stopping."""
        super().__init__(config)
        self._before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop accepting, run the hook, then uvicorn's own shutdown."""
        for server in self.servers:
            server.close()
        await self._before_shutdown()
        await super().shutdown(sockets)


def drain_in_workers(before_shutdown: Callable[[], Awaitable[None]]) -> None:
    """In a uvicorn worker process: stop as `DrainingServer` does.

    uvicorn's supervisor creates each worker's `uvicorn.Server` itself, so the worker (whose
    app is loaded after that server exists) gives the class the same shutdown: stop
    accepting, await `before_shutdown`, then uvicorn's own. Affects this process only.
    """
    uvicorn_shutdown = uvicorn.Server.shutdown

    async def shutdown(self: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        await before_shutdown()
        await uvicorn_shutdown(self, sockets)

    uvicorn.Server.shutdown = shutdown  # type: ignore[method-assign]


class JSONErrorsProtocol(_Protocol):
    """uvicorn's HTTP/1.1 protocol; a request its parser refuses gets contract JSON (400),
    and a request head must arrive whole within the keep-alive timeout."""

    _head_timer: asyncio.TimerHandle | None = None
    #: The request being answered when the head timer was armed (None: none yet).
    _waiting_after: object = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        """Accept the connection; its first request head must arrive within the timeout.

        Past ``--max-connections`` (`bot_logging_server.connections`) it is answered 503 and
        closed at once instead."""
        super().connection_made(transport)  # type: ignore[arg-type]
        if refused(len(self.server_state.connections) - 1):
            transport.write(refusal())  # type: ignore[attr-defined]
            transport.close()
            return
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        """Parse `data`; once a new request's head is whole, its timer is off."""
        super().data_received(data)
        if self._head_timer is not None and self.cycle is not self._waiting_after:
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        """After an answer, with no other request started, the next head is timed again."""
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the timer with the connection."""
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._waiting_after = self.cycle
        self._head_timer = self.loop.call_later(self.timeout_keep_alive, self._head_too_slow)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.get_protocol() is not self:
            return  # upgraded (a WebSocket): no request head is awaited any more
        if self.cycle is self._waiting_after and not self.transport.is_closing():
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """Answer 400 ``{"code": 400, "message": "BadRequest", "detail": msg}`` and close."""
        body = orjson.dumps(error_body(400, msg))
        head = (
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        )
        self.transport.write(head + body)
        self.transport.close()


def http_protocol() -> type[JSONErrorsProtocol]:
    """The protocol class to give uvicorn's ``http`` option."""
    return JSONErrorsProtocol


class _MaskedTargets(logging.Filter):
    """Rewrites the request target of uvicorn's ``"WebSocket <target>"`` lines, secrets
    masked as in the access log (`bot_logging_server.observe.masked_target`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and '"WebSocket %s"' in record.msg and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(
                _masked(arg) if isinstance(arg, str) and arg.startswith("/") else arg
                for arg in args
            )
        return True


def _masked(target: str) -> str:
    path, _, query = target.partition("?")
    return masked_target(path, query.encode("latin-1", "replace"))


def mask_websocket_targets() -> None:
    """Mask the secrets (``?key=``) in uvicorn's WebSocket log lines, in this process."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _MaskedTargets) for f in logger.filters):
        logger.addFilter(_MaskedTargets())


# -- Serving ----------------------------------------------------------------------------------


def serve_uvicorn(config: Config, flags: Mapping[str, Any], use_uvloop: bool) -> None:
    """Serve the app with uvicorn (httptools when installed), as `bot_logging_server.server.serve`
    does with hypercorn; `StartupError` when start-up fails."""
    mask_websocket_targets()
    cap_connections(config.max_connections)
    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "loop": "uvloop" if use_uvloop else "asyncio",
        "http": http_protocol(),
        "ws": "wsproto",  # installed with hypercorn: the same WebSocket code either way
        "ws_max_size": MAX_FRAME_BYTES,
        "lifespan": "on",
        "access_log": False,
        # Like hypercorn: the client is the connection's peer, whatever X-Forwarded-For says
        # (and one ASGI layer less per request).
        "proxy_headers": False,
        # Keep our logging set-up (uvicorn's default config would replace it).
        "log_config": None,
        "log_level": config.log_level.lower(),
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
        # Idle connections, and (JSONErrorsProtocol) request heads, must arrive within it.
        "timeout_keep_alive": max(1, round(config.keep_alive_timeout)),
    }
    socks = listen_all(config, 2048)
    sock = socks[0]
    try:
        check_storage(config)
        if config.workers == 1:
            app = serving_app(config)
            tune_gc_once_started(app)

            @app.before_serving
            async def _listening() -> None:
                announce(config, sock)

            server = DrainingServer(
                UvicornConfig(app, **options), before_shutdown=lambda: drain_sockets(app)
            )
            with _signals_end_quietly():
                server.run(sockets=socks)
            if not server.started:
                # uvicorn has logged why (the app's start-up: the storage went away).
                raise StartupError("start-up failed (see the message above)")
            return
        uv = UvicornConfig(
            "bot_logging_server.asgi:app_from_environment",
            factory=True,
            workers=config.workers,
            **options,
        )
        uv.worker_settings = settings_for_workers(flags)
        announce(config, sock)
        Multiprocess(uv, sockets=socks).run()
    finally:
        for each in socks:
            each.close()


@contextlib.contextmanager
def _signals_end_quietly() -> Any:
    """Let SIGINT/SIGTERM stop uvicorn gracefully and the process then exit 0.

    uvicorn restores the handlers it found and raises the signal again once it has stopped,
    which with the default handlers kills the process (exit -15) after a clean stop; with
    these no-op handlers in place the process goes on to exit normally.
    """
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
