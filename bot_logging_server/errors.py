"""One error vocabulary, rendered in one place, in the contract's JSON shape.

Every answer that is not a success has the body ``{"code": STATUS, "message": NAME}`` (plus
an optional human-readable ``"detail"``), with ``Content-Type: application/json``; no route
ever answers HTML and no answer carries a traceback or SQL. Handlers raise an `APIError`
(or let routing raise a werkzeug `HTTPException`); `register_error_handlers` turns both, and
any unexpected exception (logged with its traceback, answered 500), into that shape.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

import orjson
from quart import Quart, Response
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from bot_logging_server.lograte import RateLimitedLog
from bot_logging_server.storage import StorageError, StorageUnavailable, UserNotActive

__all__ = [
    "APIError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "TooManyRequests",
    "error_body",
    "faults",
    "json_response",
    "register_error_handlers",
    "storage_error_response",
]

log = logging.getLogger(__name__)
#: Storage faults hit every request while they last: one line per distinct fault per interval.
faults = RateLimitedLog(log)

# The contract's exact names; any other status uses its HTTP phrase without spaces.
_MESSAGES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    408: "RequestTimeout",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "UnprocessableEntity",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}
#: Seconds a client is asked to wait (``Retry-After``) after a 503.
RETRY_AFTER_SECONDS = 1


def _message(status: int) -> str:
    if status in _MESSAGES:
        return _MESSAGES[status]
    try:
        return HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return "Error"


def error_body(status: int, detail: str | None = None) -> dict[str, object]:
    """The contract's error body: ``{"code": status, "message": name[, "detail": detail]}``."""
    body: dict[str, object] = {"code": status, "message": _message(status)}
    if detail:
        body["detail"] = detail
    return body


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A `Response` with `body` serialised by orjson and ``Content-Type: application/json``.

    Its body is in memory, so sending it needs no timer of its own: a client that stops
    reading is cut by `bot_logging_server.http_guard.HTTPGuard` after ``--read-timeout``,
    and Quart's ``RESPONSE_TIMEOUT`` would cost a task per response.
    """
    response = Response(
        orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )
    response.timeout = None
    return response


class APIError(Exception):
    """An answer that is not a success. Raise it from a handler; it is rendered for you.

    Args:
        status: the HTTP status.
        detail: optional text for the client (never a secret, SQL or traceback).
        headers: extra response headers (e.g. ``Retry-After``).
    """

    status = 500

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Build the error; `status` overrides the class's default."""
        super().__init__(detail or "")
        if status is not None:
            self.status = status
        self.detail = detail
        self.headers = headers or {}

    def response(self) -> Response:
        """The contract-shaped JSON response for this error."""
        return json_response(error_body(self.status, self.detail), self.status, self.headers)


class BadRequest(APIError):
    """400: the request can never succeed as sent (the client will not retry it)."""

    status = 400


class Forbidden(APIError):
    """403: unknown user, wrong, missing or malformed token, or disabled user (not said which)."""

    status = 403


class Conflict(APIError):
    """409: the thing to create exists already."""

    status = 409


class PayloadTooLarge(APIError):
    """413: body or batch over the configured limit."""

    status = 413


class ServiceUnavailable(APIError):
    """503 with ``Retry-After``: the database is away; the client should retry."""

    status = 503

    def __init__(self, detail: str | None = None) -> None:
        """A 503 asking the client to retry after `RETRY_AFTER_SECONDS`."""
        super().__init__(detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class TooManyRequests(APIError):
    """429 with ``Retry-After``: over a rate limit; the client should retry after that."""

    status = 429

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        """A 429 asking the client to retry after `retry_after` seconds."""
        super().__init__(detail, headers={"Retry-After": str(max(1, int(retry_after)))})


def storage_error_response(error: StorageError) -> Response:
    """The answer to a storage failure (logged, at most once per interval per fault): 503
    when the database is away (the client retries), 403 when the user was removed or
    disabled between the token check and the write (nothing was stored), else 500."""
    if isinstance(error, StorageUnavailable):
        faults.log(logging.WARNING, str(error), "database unavailable: %s", error)
        return ServiceUnavailable().response()
    if isinstance(error, UserNotActive):
        return Forbidden().response()
    faults.log(logging.ERROR, str(error), "storage error: %s", error, exc_info=error)
    return json_response(error_body(500), 500)


def register_error_handlers(app: Quart) -> None:
    """Render every error `app` can raise in the contract's JSON shape."""

    @app.errorhandler(APIError)
    async def _api_error(error: APIError) -> Response:
        return error.response()

    @app.errorhandler(HTTPException)
    async def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        headers: dict[str, str] = {}
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers["Allow"] = ", ".join(error.valid_methods)
        return json_response(error_body(status), status, headers)

    @app.errorhandler(StorageError)
    async def _storage_error(error: StorageError) -> Response:
        return storage_error_response(error)

    @app.errorhandler(Exception)
    async def _unexpected(error: Exception) -> Response:
        log.error("unhandled exception", exc_info=error)
        return json_response(error_body(500), 500)
