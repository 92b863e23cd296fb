"""The Eye: ``POST /eye/collector`` and its four queries, translated to the common event model.

Its clients post one event per request with Django REST framework's token header::

    POST /eye/collector
    Authorization: Token 3f1c0e6b9a2d4c5e8f7a6b5c4d3e2f1a
    {"session_id": "e2085be5-9137-4e4e-80b5-f1ffddc25423", "category": "page interaction",
     "name": "pageview", "data": {"host": "www.consumeraffairs.com", "path": "/"},
     "timestamp": "2022-01-09 09:15:27.243860"}

and get a JSON *string*: ``"Session with session_id:<id> added!"`` for the first event of a
session, ``"... updated!"`` after (exactly one request opens a session, however many post to
it at once: `bot_logging_server.events.record_events` decides it in the same transaction).

Who is writing (ours): the token is one of our **ingest keys** (its owner is found from the
key alone: ``keys add USER NAME``), or a user's own token with the user named in ``X-User``.
A user's token is never looked up by its value alone (one derived from a password is only
ever checked against its slow hash). Reading takes a user's token (``X-User`` plus
``Authorization: Token``, ``X-User-Token`` or ``Authorization: Bearer``); an ingest key may
not read (403). Errors answer DRF's shape ``{"detail": "..."}`` with DRF's texts for the
401s (and ``WWW-Authenticate: Token``).

The event: ``session_id`` (required: 400 without it), ``category``, ``name`` (required),
``data`` (any JSON; ``data.path`` is also the event's page), ``timestamp`` (kept as sent; what
does not parse is stored all the same, with a null time, and listed by ``/eye/invalid-time``).
Keys beyond these five are kept: the whole body as received goes beside the event
(``data_raw``) and comes back as ``extra``.

Queries (JSON, newest first, ``page``/``page_size`` pagination with ``next``/``previous``
URLs): ``/eye/event?session_id=``, ``/eye/category-events?category=``,
``/eye/range-events?start=&end=`` (inclusive), ``/eye/invalid-time?tolerance=`` (seconds a
client clock may run ahead; default 0).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from quart import Blueprint, Response, request

from bot_logging_server.auth import get_authenticator, header_credentials
from bot_logging_server.cors import allow_any_origin
from bot_logging_server.errors import APIError, Forbidden, json_response
from bot_logging_server.events import (
    Event,
    EventQuery,
    Owner,
    Recorded,
    StoredEvent,
    ValidationFailed,
    parse_event_time,
    record_events,
    request_client,
)
from bot_logging_server.ingest_auth import find_ingest_key
from bot_logging_server.json_body import parse_json
from bot_logging_server.records import iso
from bot_logging_server.schemas.values import clean_text
from bot_logging_server.storage import User, get_storage

__all__ = [
    "MAX_PAGE_SIZE",
    "EyeError",
    "bp",
    "category_events",
    "collector",
    "collector_answer",
    "eye_event",
    "invalid_time",
    "range_events",
    "session_events",
]

bp = Blueprint("eye", __name__, url_prefix="/eye")
allow_any_origin(bp)

#: ``page_size`` of the queries: default and largest.
PAGE_SIZE, MAX_PAGE_SIZE = 100, 500
_MAX_PAGE_NUMBER = 1_000_000
_NOT_PROVIDED = "Authentication credentials were not provided."
_INVALID = "Invalid token."
_INACTIVE = "User inactive or deleted."
_NO_PERMISSION = "You do not have permission to perform this action."
#: The Eye's fields; any other key of a body is kept as ``extra``.
_FIELDS = ("session_id", "category", "name", "data", "timestamp")
#: Common-model field -> the Eye's name, for the ``detail`` of a refused event.
_WIRE_NAMES = {
    "session": "session_id",
    "client_time": "timestamp",
    "data_raw": "body",
    "page": "data.path",
}


class EyeError(APIError):
    """An error in Django REST framework's shape: ``{"detail": "..."}``; a 401 also says
    ``WWW-Authenticate: Token``."""

    def response(self) -> Response:
        """``{"detail": detail}`` with the status (and DRF's challenge on a 401)."""
        headers = dict(self.headers)
        if self.status == 401:
            headers["WWW-Authenticate"] = "Token"
        return json_response({"detail": self.detail or ""}, self.status, headers)


def _unauthorized(detail: str) -> EyeError:
    return EyeError(detail, status=401)


def _bad(detail: str) -> EyeError:
    return EyeError(detail, status=400)


# -- who is asking ----------------------------------------------------------------------


def _token_header() -> str | None:
    """The key of ``Authorization: Token <key>`` (DRF's parsing and texts); None when the
    header is missing or names another scheme."""
    parts = request.headers.get("Authorization", "").split()
    if not parts or parts[0].lower() != "token":
        return None
    if len(parts) == 1:
        raise _unauthorized("Invalid token header. No credentials provided.")
    if len(parts) > 2:
        raise _unauthorized("Invalid token header. Token string should not contain spaces.")
    return parts[1]


async def _user(username: str, token: str | None) -> User:
    try:
        return await get_authenticator().authenticate(username, token)
    except Forbidden:
        raise _unauthorized(_INVALID) from None


async def _writer() -> Owner:
    """The owner of the events of this request: an ingest key, or a user named in X-User."""
    token = _token_header()
    username, header_token = header_credentials()
    if username and (token is not None or header_token is not None):
        return await _user(username, token if token is not None else header_token)
    if token is None:
        raise _unauthorized(_NOT_PROVIDED)
    key = await find_ingest_key(token)
    if key is None:
        raise _unauthorized(_INVALID)
    if not key.active:
        raise _unauthorized(_INACTIVE)
    return key


async def _reader() -> User:
    """The user reading: named in X-User with a token; an ingest key is refused (403)."""
    token = _token_header()
    username, header_token = header_credentials()
    if username and (token is not None or header_token is not None):
        return await _user(username, token if token is not None else header_token)
    if token is None:
        raise _unauthorized(_NOT_PROVIDED)
    key = await find_ingest_key(token)
    if key is not None and key.active:
        raise EyeError(_NO_PERMISSION, status=403)
    raise _unauthorized(_INVALID)


# -- the collector ------------------------------------------------------------------------


def _wire_detail(detail: str) -> str:
    """``events[0].session: rule`` as the Eye names it: ``session_id: rule``."""
    field, _, rule = detail.removeprefix("events[0].").partition(": ")
    return f"{_WIRE_NAMES.get(field, field)}: {rule}"


def eye_event(body: Any, raw: bytes, client: tuple[str | None, str | None]) -> Event:
    """The Eye's body (parsed from `raw`) sent by `client` (IP, user agent) as an event of
    the common model; `EyeError` 400 when it cannot be."""
    if not isinstance(body, dict):
        raise _bad("body: must be a JSON object")
    session = body.get("session_id")
    if isinstance(session, int) and not isinstance(session, bool):
        session = str(session)
    if session is None or session == "":
        raise _bad("session_id: this field is required")
    if not isinstance(session, str):
        raise _bad("session_id: must be a string")
    if body.get("name") is None:
        raise _bad("name: this field is required")
    data = body.get("data")
    path = data.get("path") if isinstance(data, dict) else None
    ip, agent = client
    extra = any(key not in _FIELDS for key in body)
    return Event(
        "eye",
        body["name"],
        session=clean_text(session),
        category=body.get("category"),
        page=path if isinstance(path, str) else None,
        data=data,
        data_raw=raw.decode("utf-8", "replace") if extra else None,
        client_time=body.get("timestamp"),
        ip=ip,
        user_agent=agent,
    )


async def collector() -> Response:
    """Store one event; answer ``"Session with session_id:<id> added!"`` (its session's
    first event) or ``"... updated!"``, after the commit."""
    owner = await _writer()
    raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    try:
        body = parse_json(raw)
    except APIError:
        raise _bad("JSON parse error: the body is not valid JSON") from None
    event = eye_event(body, raw, request_client())
    try:
        recorded = await record_events(owner, [event])
    except ValidationFailed as exc:
        raise _bad(_wire_detail(exc.detail)) from None
    return json_response(collector_answer(event, recorded))


def collector_answer(event: Event, recorded: Recorded) -> str:
    """The collector's answer once `event` is stored: whether it opened its session."""
    verb = "added" if event.session in recorded.new_sessions else "updated"
    return f"Session with session_id:{event.session} {verb}!"


# The original was a Django view: its clients may post to /eye/collector/ as well.
for _path in ("/collector", "/collector/"):
    bp.add_url_rule(_path, view_func=collector, methods=["POST", "OPTIONS"])


# -- the queries --------------------------------------------------------------------------


def _event_json(event: StoredEvent) -> dict[str, Any]:
    """A stored event as the queries answer it: the Eye's five fields, then ours."""
    item: dict[str, Any] = {
        "id": event.id,
        "session_id": event.session,
        "category": event.category,
        "name": event.name,
        "data": event.data,
        "timestamp": event.client_time,
        "event_at": iso(event.event_at),
        "received_at": iso(event.received_at),
        "time_valid": event.time_valid,
        "clock_skew_ms": event.clock_skew_ms,
    }
    if event.data_raw is not None:
        try:
            body = json.loads(event.data_raw)
        except ValueError:
            body = None
        if isinstance(body, dict):
            item["extra"] = {k: v for k, v in body.items() if k not in _FIELDS}
    return item


def _number(name: str, default: int, maximum: int) -> int:
    text = request.args.get(name, "").strip()
    if not text:
        return default
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= maximum:
        raise _bad(f"{name}: must be an integer from 1 to {maximum}")
    return int(text)


def _page_url(page: int) -> str:
    args = request.args.to_dict(flat=False)
    args["page"] = [str(page)]
    return f"{request.base_url}?{urlencode(args, doseq=True)}"


async def _answer(query: EventQuery) -> Response:
    """One page of `query` for the reading user: ``{"next", "previous", "results"}``."""
    user = await _reader()
    page = _number("page", 1, _MAX_PAGE_NUMBER)
    size = _number("page_size", PAGE_SIZE, MAX_PAGE_SIZE)
    query = dataclasses.replace(query, source="eye", offset=(page - 1) * size, limit=size + 1)
    rows = await get_storage().query_events(user.id, query)
    return json_response(
        {
            "next": _page_url(page + 1) if len(rows) > size else None,
            "previous": _page_url(page - 1) if page > 1 else None,
            "results": [_event_json(row) for row in rows[:size]],
        }
    )


def _text_arg(name: str, required: bool = False) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        if required:
            raise _bad(f"{name}: this parameter is required")
        return None
    if len(value) > 255:
        raise _bad(f"{name}: longer than 255 characters")
    return clean_text(value)


@bp.route("/event", methods=["GET", "OPTIONS"])
async def session_events() -> Response:
    """The events of one session (``session_id``, required), newest first."""
    session = _text_arg("session_id", required=True)
    return await _answer(EventQuery(session=session, sort="time"))


@bp.route("/category-events", methods=["GET", "OPTIONS"])
async def category_events() -> Response:
    """The events of one ``category`` (every event without it), newest first."""
    return await _answer(EventQuery(category=_text_arg("category"), sort="time"))


def _time_arg(name: str) -> Any:
    value = _text_arg(name)
    if value is None:
        return None
    moment = parse_event_time(value).at
    if moment is None:
        raise _bad(f"{name}: not a valid time (ISO 8601, or Unix seconds or milliseconds)")
    return moment


@bp.route("/range-events", methods=["GET", "OPTIONS"])
async def range_events() -> Response:
    """The events from ``start`` to ``end``, both inclusive (either may be left out),
    newest first."""
    start, end = _time_arg("start"), _time_arg("end")
    until = None if end is None else end + timedelta(microseconds=1)
    return await _answer(EventQuery(since=start, until=until, sort="time"))


@bp.route("/invalid-time", methods=["GET", "OPTIONS"])
async def invalid_time() -> Response:
    """The events whose timestamp did not parse or is ahead of the server's clock by more
    than ``tolerance`` seconds (default 0), newest received first."""
    text = request.args.get("tolerance", "").strip() or "0"
    try:
        tolerance = float(text)
    except ValueError:
        tolerance = -1.0
    if not 0 <= tolerance <= 10**9:  # also refuses NaN
        raise _bad("tolerance: must be a number of seconds from 0 to 1000000000")
    return await _answer(EventQuery(invalid_time=True, tolerance_ms=int(tolerance * 1000)))
