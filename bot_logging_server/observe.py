"""What each request did, seen from outside the handlers: metrics and the access log.

`init_app` wraps the app in an ASGI middleware that times every HTTP request from its arrival
to the last byte of its answer (streams included) and reads the status the app sent. Inside
the request, the handlers add what only they know with `note`: the authenticated user (from
`bot_logging_server.auth`) and the records stored (from ``/send_logs``). When the answer is
complete the request feeds the Prometheus metrics (`bot_logging_server.metrics`, when on) and,
with ``--access-log on``, one line of the ``bot_logging_server.access`` logger::

    POST /send_logs 200 3.1ms user=alice records=10

carrying the same fields as extras (``method``, ``path``, ``status``, ``duration_ms``,
``user``, ``records``) for ``--log-format json``. The path is printed without its query
string's secrets: a parameter whose name holds ``token``, ``key``, ``pass``, ``secret``,
``auth`` or ``sig`` is shown as ``***``; no header is ever printed.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

from quart import Quart, request

from bot_logging_server.config import Config
from bot_logging_server.metrics import Metrics, get_metrics

__all__ = ["ACCESS_LOGGER", "RequestNote", "init_app", "masked_target", "note"]

#: The logger of the access log.
ACCESS_LOGGER = "bot_logging_server.access"
#: Query parameters whose values are never printed.
_SECRET_PARAM = re.compile(r"token|key|pass|secret|auth|sig", re.IGNORECASE)
#: A token's shape (and longer hex runs): masked wherever it appears in a printed target.
_TOKEN_SHAPED = re.compile(r"[0-9a-fA-F]{32,}")
#: The route label of a request no route matched (404, 405).
_UNMATCHED = "unmatched"

access_log = logging.getLogger(ACCESS_LOGGER)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


@dataclass
class RequestNote:
    """What the handlers learned about the current request (filled by `note`)."""

    route: str = _UNMATCHED
    user: str | None = None
    records: int | None = None


_CURRENT: contextvars.ContextVar[RequestNote | None] = contextvars.ContextVar(
    "bot_logging_server_request_note", default=None
)


def note(*, user: str | None = None, records: int | None = None, route: str | None = None) -> None:
    """Record the authenticated `user` or the `records` stored, for the current request;
    and its `route` (the rule it matched) when Quart does not route it.

    Outside an observed request (a test calling a function directly, the CLI) it does nothing.
    """
    current = _CURRENT.get()
    if current is None:
        return
    if route is not None:
        current.route = _route_label(route)
    if user is not None:
        current.user = user
    if records is not None:
        current.records = records


def masked_target(path: str, query_string: bytes) -> str:
    """`path` and its query as the access log prints them, secrets replaced by ``***``.

    The value of every secret-looking parameter is masked, and so is any run of 32 or more
    hex digits anywhere (a token's shape: say, one pasted into a path by mistake).
    """
    target = path
    if query_string:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        target += "?" + "&".join(
            f"{quote(name, safe='')}="
            + ("***" if _SECRET_PARAM.search(name) else quote(value, safe=""))
            for name, value in pairs
        )
    return _TOKEN_SHAPED.sub("***", target)


def _route_label(rule: str) -> str:
    """A route template as a metric label: every spelling of ``/send_logs`` is one route."""
    return re.sub("/{2,}", "/", rule).rstrip("/") or "/"


class _Observer:
    """The ASGI middleware: times the request, reads its status, then reports it."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None, log_access: bool) -> None:
        self._app = app
        self._metrics = metrics
        self._log_access = log_access

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        current = RequestNote()
        token = _CURRENT.set(current)
        status = 500  # unless the app answers: an exception that escaped it

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, observed_send)
        finally:
            _CURRENT.reset(token)
            self._report(scope, current, status, time.perf_counter() - started)

    def _report(self, scope: Scope, current: RequestNote, status: int, seconds: float) -> None:
        method = scope["method"]
        if self._metrics is not None:
            self._metrics.observe_request(current.route, method, status, seconds, current.records)
        if self._log_access:
            path = masked_target(scope["path"], scope.get("query_string", b""))
            user = current.user or "-"
            records = "-" if current.records is None else str(current.records)
            access_log.info(
                "%s %s %d %.1fms user=%s records=%s",
                method,
                path,
                status,
                seconds * 1000,
                user,
                records,
                extra={
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "user": current.user,
                    "records": current.records,
                    "client": (scope.get("client") or ("", 0))[0],
                },
            )


def init_app(app: Quart, config: Config) -> None:
    """Observe every HTTP request of `app` when metrics or the access log are on."""
    metrics = get_metrics(app)
    log_access = config.access_log == "on"
    if metrics is None and not log_access:
        return

    @app.before_request
    async def _note_route() -> None:
        current = _CURRENT.get()
        if current is not None and request.url_rule is not None:
            current.route = _route_label(request.url_rule.rule)

    app.asgi_app = _Observer(app.asgi_app, metrics, log_access)  # type: ignore[method-assign]
