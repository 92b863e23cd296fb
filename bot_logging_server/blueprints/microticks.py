"""Microticks: form-encoded sessions and events, translated to the common event model.

Its JavaScript client (jQuery ``$.ajax`` with a plain object) posts every argument as a form
field (``application/x-www-form-urlencoded``) and adds ``ts`` (``new Date().toISOString()``)
and ``token`` (the session's, empty before it has one) to each request::

    POST /sessions        consumer_key=<ingest key>&ts=2017-08-25T17:09:19.438Z&token=
    POST /events          action=click&data=%7B%22target%22%3A%22some_element%22%7D&ts=...&token=<t>
    POST /sessions/stop   ts=...&token=<t>

Answers, as the original (Flask-JSON) sent them, every body with a ``status``:
``{"status": 200, "token": "<32 hex>"}``, ``{"status": 200, "event_id": N}``,
``{"status": 200}``; errors are HTTP 400 with ``{"error": ..., "status": 400}`` (a key or a
missing field) or ``{"description": ..., "status": 400}`` (a session), checked in the
original's order: the consumer key, then each required field in turn (``ts``; ``ts``,
``token``; ``token``, ``action``, ``data``, ``ts``), then the session. A stopped session
still takes events, as in the original; a session whose consumer key has since been disabled
or removed does not (``Consumer is not active.``).

Ours: the consumer key is an ingest key (``keys add USER NAME``); the session token is
minted by the server (128 random bits). ``data`` is kept as sent and parsed when it is JSON.

Reading (``GET /events``, ``GET /sessions``): ``?key=`` is a user's own token and ``?user=``
(or the ``X-User`` header) names the user; the answer holds only that user's Microticks
events or sessions. Filters ``ip``, ``date`` (a prefix of a time: ``2017``, ``2017-08``,
``2017-08-25``, ``2017-08-25T17``...), ``consumer`` (a key's id or name), ``sort`` or
``sort.desc`` (a known column only: anything else is a 400, never SQL), ``limit`` (default
100, at most 1000), ``offset``. Refused credentials answer 401 ``{"description": ...,
"status": 401}``. CORS is open to every origin, preflight included.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from quart import Blueprint, Response, request
from werkzeug.datastructures import MultiDict

from bot_logging_server.auth import get_authenticator
from bot_logging_server.cors import allow_any_origin
from bot_logging_server.errors import APIError, Forbidden, json_response
from bot_logging_server.events import (
    Event,
    EventQuery,
    SessionQuery,
    ValidationFailed,
    get_session,
    record_event,
    request_client,
    start_session,
    stop_session,
)
from bot_logging_server.ingest_auth import find_ingest_key, session_key_active
from bot_logging_server.records import iso
from bot_logging_server.schemas.values import clean_text
from bot_logging_server.storage import MAX_PAGE, Session, StoredEvent, User, get_storage

__all__ = [
    "EVENT_SORTS",
    "SESSION_SORTS",
    "MicroticksError",
    "bp",
    "events",
    "list_events",
    "list_sessions",
    "post_event",
    "sessions",
    "start",
    "stop",
]

bp = Blueprint("microticks", __name__)
allow_any_origin(bp)

#: ``sort`` / ``sort.desc`` of ``GET /events``: the answer's column -> the store's sort.
EVENT_SORTS = {"id": "id", "session_id": "session", "time": "time", "action": "name"}
#: ``sort`` / ``sort.desc`` of ``GET /sessions``.
SESSION_SORTS = {"id": "id", "started_at": "started", "stopped_at": "stopped"}
_DEFAULT_LIMIT = 100
_SOURCE = "microticks"
_NO_SESSION = "Could not find session"
_STOPPED = "Session was already stopped."
_INACTIVE = "Consumer is not active."
_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2})(?::(\d{2})(?::(\d{2}))?)?)?)?)?")


class MicroticksError(APIError):
    """An error in Flask-JSON's shape: ``{key: text, "status": status}``, where `key` is
    ``error`` or ``description`` as the original used them."""

    def __init__(self, text: str, *, key: str = "description", status: int = 400) -> None:
        """Answer `status` with ``{key: text, "status": status}``."""
        super().__init__(text, status=status)
        self.key = key

    def response(self) -> Response:
        """The Flask-JSON error body, with the status repeated inside."""
        return json_response({self.key: self.detail, "status": self.status}, self.status)


def _required(form: MultiDict, *names: str) -> list[str]:
    """The fields `names`, in order; the first one missing answers its 400 (an empty value
    counts as given, as in the original)."""
    values = []
    for name in names:
        value = form.get(name)
        if value is None:
            raise MicroticksError(f'No "{name}" parameter provided', key="error")
        values.append(value)
    return values


def _refused(exc: ValidationFailed) -> MicroticksError:
    """A common-model rule broken, named as Microticks names the field."""
    field, _, rule = exc.detail.removeprefix("events[0].").partition(": ")
    wire = {"name": "action", "data_raw": "data", "client_time": "ts"}.get(field, field)
    return MicroticksError(f"{wire}: {rule}", key="error")


# -- writing ------------------------------------------------------------------------------


async def start() -> Response:
    """Open a session for the consumer key: ``{"status": 200, "token": "<32 hex>"}``."""
    form = await request.form
    key = await find_ingest_key(form.get("consumer_key"))
    if key is None:
        raise MicroticksError("Invalid consumer_key", key="error")
    if not key.active:
        raise MicroticksError(_INACTIVE, key="error")
    (ts,) = _required(form, "ts")
    ip, agent = request_client()
    session = await start_session(key, _SOURCE, client_time=ts, ip=ip, user_agent=agent)
    return json_response({"status": 200, "token": session.key})


@bp.route("/sessions/stop", methods=["POST", "OPTIONS"])
async def stop() -> Response:
    """Stop the session of ``token``: ``{"status": 200}``."""
    ts, token = _required(await request.form, "ts", "token")
    outcome = await stop_session(_SOURCE, token, client_time=ts)
    if outcome == "not_found":
        raise MicroticksError(_NO_SESSION)
    if outcome == "already_stopped":
        raise MicroticksError(_STOPPED)
    return json_response({"status": 200})


def _data(text: str) -> Any:
    """``data`` parsed when it is JSON (None when it is not: the text is kept anyway)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


async def post_event() -> Response:
    """Store one event in the session of ``token``: ``{"status": 200, "event_id": N}``."""
    token, action, data, ts = _required(await request.form, "token", "action", "data", "ts")
    session = await get_session(_SOURCE, token)
    if session is None:
        raise MicroticksError(_NO_SESSION)
    if not await session_key_active(session):
        raise MicroticksError(_INACTIVE, key="error")
    ip, agent = request_client()
    event = Event(
        _SOURCE, action, data=_data(data), data_raw=data, client_time=ts, ip=ip, user_agent=agent
    )
    try:
        recorded = await record_event(session, event)
    except ValidationFailed as exc:
        raise _refused(exc) from None
    return json_response({"status": 200, "event_id": recorded.id})


# -- reading ------------------------------------------------------------------------------


async def _reader() -> User:
    """The user whose token is ``?key=`` (named by ``?user=`` or ``X-User``); else 401."""
    token = request.args.get("key")
    if not token:
        raise MicroticksError(
            'Please specify an API key using the "key" query string parameter.', status=401
        )
    username = request.args.get("user") or request.headers.get("X-User", "")
    if not username:
        raise MicroticksError(
            'Please name the key\'s user with the "user" query string parameter.', status=401
        )
    try:
        return await get_authenticator().authenticate(clean_text(username), token)
    except Forbidden:
        raise MicroticksError("The key is not valid.", status=401) from None


def _bad(text: str) -> MicroticksError:
    return MicroticksError(text)


def _integer(name: str, default: int, low: int, high: int) -> int:
    text = request.args.get(name, "").strip()
    if not text:
        return default
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise _bad(f"{name}: must be an integer from {low} to {high}")
    return int(text)


def _date_range(text: str) -> tuple[datetime, datetime]:
    """The times a ``date`` prefix covers: [start, end)."""
    match = _DATE.fullmatch(text.strip())
    if match is None:
        raise _bad("date: must be the start of a time, e.g. 2017, 2017-08 or 2017-08-25")
    parts = [int(p) for p in match.groups() if p is not None]
    try:
        start = datetime(*parts, *([1] * max(0, 3 - len(parts))))  # type: ignore[misc]
        if len(parts) == 1:
            end = start.replace(year=start.year + 1)
        elif len(parts) == 2:
            end = (start + timedelta(days=32)).replace(day=1)
        else:
            step = ("days", "hours", "minutes", "seconds")[len(parts) - 3]
            end = start + timedelta(**{step: 1})
    except (ValueError, OverflowError):
        raise _bad("date: not a valid date") from None
    return start, end


async def _page_args(sorts: dict[str, str], user: User) -> dict[str, Any] | None:
    """The filters and page shared by both listings, as query keyword arguments; None when
    ``consumer`` names no key of `user` (the answer is then empty)."""
    args = request.args
    ascending, descending = args.get("sort"), args.get("sort.desc")
    if ascending and descending:
        raise _bad("sort: give sort or sort.desc, not both")
    column = ascending or descending or "id"
    if column not in sorts:
        raise _bad(f"sort: must be one of {', '.join(sorts)}")
    query: dict[str, Any] = {
        "source": _SOURCE,
        "sort": sorts[column],
        "descending": bool(descending),
        "limit": _integer("limit", _DEFAULT_LIMIT, 1, MAX_PAGE),
        "offset": _integer("offset", 0, 0, 2**62),
    }
    if args.get("ip"):
        query["ip"] = clean_text(args["ip"][:64])
    if args.get("date"):
        query["since"], query["until"] = _date_range(args["date"])
    consumer = args.get("consumer")
    if consumer:
        key_id = await _consumer_id(user, consumer)
        if key_id is None:
            return None
        query["ingest_key_id"] = key_id
    return query


async def _consumer_id(user: User, consumer: str) -> int | None:
    """The id of `user`'s key named (or numbered) `consumer`; None when there is none."""
    for key in await get_storage().list_keys(user.id):
        if consumer in (str(key.id), key.name):
            return key.id
    return None


def _event_json(event: StoredEvent) -> dict[str, Any]:
    """A stored event as the original listed it: ``time`` is ``ts`` as sent."""
    return {
        "id": event.id,
        "session_id": event.session_id,
        "time": event.client_time if event.client_time is not None else iso(event.event_at),
        "action": event.name,
        "data": event.data if event.data is not None else event.data_raw,
    }


async def list_events() -> Response:
    """``{"status": 200, "count": n, "events": [...]}``: the user's Microticks events."""
    user = await _reader()
    query = await _page_args(EVENT_SORTS, user)
    rows = [] if query is None else await get_storage().query_events(user.id, EventQuery(**query))
    events = [_event_json(row) for row in rows]
    return json_response({"status": 200, "count": len(events), "events": events})


async def _session_json(user: User, session: Session) -> dict[str, Any]:
    """A session as the original listed it, with its ``click`` events counted."""
    storage = get_storage()
    clicks = EventQuery(session_id=session.id, name="click")
    counts = await storage.event_stats(user.id, clicks, "day")
    last = await storage.query_events(
        user.id, EventQuery(session_id=session.id, name="click", sort="time", limit=1)
    )
    started = session.started_client_time or iso(session.started_at)
    stopped = session.stopped_client_time or (session.stopped_at and iso(session.stopped_at))
    return {
        "id": session.id,
        "consumer_id": session.ingest_key_id,
        "started_at": started,
        "stopped_at": stopped,
        "clicks": sum(c.count for c in counts),
        "last_action": _event_json(last[0])["time"] if last else None,
    }


async def list_sessions() -> Response:
    """``{"status": 200, "count": n, "sessions": [...]}``: the user's Microticks sessions."""
    user = await _reader()
    query = await _page_args(SESSION_SORTS, user)
    storage = get_storage()
    rows = [] if query is None else await storage.query_sessions(user.id, SessionQuery(**query))
    sessions = [await _session_json(user, row) for row in rows]
    return json_response({"status": 200, "count": len(sessions), "sessions": sessions})


# One rule per path (GET reads, POST writes), so that any other method is a 405.
@bp.route("/sessions", methods=["GET", "POST", "OPTIONS"])
async def sessions() -> Response:
    """``GET``: `list_sessions`; ``POST``: `start`."""
    return await (start() if request.method == "POST" else list_sessions())


@bp.route("/events", methods=["GET", "POST", "OPTIONS"])
async def events() -> Response:
    """``GET``: `list_events`; ``POST``: `post_event`."""
    return await (post_event() if request.method == "POST" else list_events())
