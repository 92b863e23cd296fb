"""The tracker demo: ``POST /track``, translated to the common event model.

Its page posts one JSON document per event (``fetch`` or ``navigator.sendBeacon``, so the
body is read as JSON whatever its ``Content-Type``)::

    POST /track?key=<ingest key>
    {"_v": 1, "timestamp": "2023-03-01T10:00:00.000Z", "order": 3,
     "session_id": "5b0f4d3e-6c9b-4a53-9a43-3f0c1e0b2a77", "page": "/pricing",
     "action": "click", "meta": "{\\"x\\": 10, \\"y\\": 20}",
     "client_context": {"referer": "https://example.com/"}, "server_context": {}}

and gets 200 with the body ``null``. Fields (pydantic's rules of the original): ``_v`` an
integer > 0; ``timestamp`` ISO 8601, or Unix seconds or milliseconds; ``order`` an integer;
``session_id`` a UUID; ``page`` an optional string; ``action`` one of ``load``, ``scroll``,
``click``; ``meta`` an optional string (JSON: parsed, and kept as sent); ``client_context``
and ``server_context`` objects (``{}`` when left out). Unknown fields are ignored. Any
failure answers 422 ``{"detail": [{"loc": ["body", field], "msg": ..., "type": ...}]}``
listing every bad field, and writes nothing.

The server fills ``server_context`` (client values for these keys are overwritten):
``client_ip`` (``X-Real-IP``, else the peer), ``user_agent`` (the header; a missing one is
fine) and ``received_at`` (the server's clock). The stored event: name = ``action``, session
= ``session_id`` (canonical UUID text), page, sequence = ``order``, client time =
``timestamp``, data = the whole validated document (``meta`` parsed), ``data_raw`` = ``meta``
as sent.

Who writes (ours): an ingest key as ``?key=``; without one, the user named by the
``--keyless-events-user`` option, when it is set. Otherwise, or for a key that is unknown
or disabled, 401 in the same ``detail`` shape. CORS is open to every origin, preflight
included.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from typing import Any

from quart import Blueprint, Response, request

from bot_logging_server.cors import allow_any_origin
from bot_logging_server.errors import APIError, json_response
from bot_logging_server.events import (
    Event,
    Owner,
    ValidationFailed,
    parse_event_time,
    record_events,
    request_client,
)
from bot_logging_server.ingest_auth import find_ingest_key, keyless_user
from bot_logging_server.json_body import parse_json
from bot_logging_server.records import iso
from bot_logging_server.schemas.values import BIGINT, clean_text
from bot_logging_server.storage import utc_now

__all__ = ["ACTIONS", "TrackError", "bp", "load_track", "track", "track_event"]

log = logging.getLogger(__name__)
bp = Blueprint("track", __name__)
allow_any_origin(bp)

#: ``action`` values the tracker sends.
ACTIONS = ("load", "scroll", "click")
#: One error of a ``detail`` list: pydantic's ``loc``, ``msg``, ``type`` (and ``ctx``).
Problem = dict[str, Any]


class TrackError(APIError):
    """An error in FastAPI's validation shape: ``{"detail": [problem, ...]}``."""

    def __init__(self, problems: list[Problem], *, status: int = 422) -> None:
        """Answer `status` with `problems` as the ``detail`` list."""
        super().__init__(problems[0]["msg"] if problems else None, status=status)
        self.problems = problems

    def response(self) -> Response:
        """``{"detail": [...]}`` with the status."""
        return json_response({"detail": self.problems}, self.status)


def _problem(loc: list[Any], msg: str, type_: str, **ctx: Any) -> Problem:
    problem: Problem = {"loc": loc, "msg": msg, "type": type_}
    if ctx:
        # ctx may echo what the client sent: lone surrogates (legal in JSON escapes) are
        # made storable and printable first.
        problem["ctx"] = json.loads(clean_text(json.dumps(ctx, ensure_ascii=False)))
    return problem


def _integer(value: Any) -> int | None:
    """pydantic's lax integer: an int, an integral float or a string of digits; None if not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = int(value) if math.isfinite(value) and value.is_integer() else None
    elif isinstance(value, str):
        text = value.strip()
        digits = text.removeprefix("-").removeprefix("+")
        value = int(text) if digits.isascii() and digits.isdigit() and len(text) < 21 else None
    return value if isinstance(value, int) and -BIGINT <= value < BIGINT else None


def _text(value: Any) -> str | None:
    """pydantic's lax string: a string, or a number as its text; None if neither."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


class _Checker:
    """Collects every problem of one document, as pydantic reports them all at once."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.problems: list[Problem] = []

    def get(self, name: str, required: bool) -> Any:
        value = self.body.get(name)
        if value is None and required:
            self.fail(name, "field required", "value_error.missing")
        return value

    def fail(self, name: str | list[Any], msg: str, type_: str, **ctx: Any) -> None:
        loc = ["body", *(name if isinstance(name, list) else [name])]
        self.problems.append(_problem(loc, msg, type_, **ctx))


def load_track(body: Any) -> dict[str, Any]:
    """The validated document (the original model's fields only) or `TrackError` 422."""
    if not isinstance(body, dict):
        raise TrackError([_problem(["body"], "value is not a valid dict", "type_error.dict")])
    check = _Checker(body)
    doc: dict[str, Any] = {}
    for name, positive in (("_v", True), ("order", False)):
        value = check.get(name, required=True)
        if value is not None:
            number = _integer(value)
            if number is None:
                check.fail(name, "value is not a valid integer", "type_error.integer")
            elif positive and number <= 0:
                check.fail(
                    name,
                    "ensure this value is greater than 0",
                    "value_error.number.not_gt",
                    limit_value=0,
                )
            doc[name] = number
    timestamp = check.get("timestamp", required=True)
    if timestamp is not None:
        if isinstance(timestamp, bool) or not isinstance(timestamp, str | int | float):
            check.fail(
                "timestamp",
                "invalid type; expected datetime, string, bytes, int or float",
                "type_error",
            )
        elif parse_event_time(timestamp).at is None:
            check.fail("timestamp", "invalid datetime format", "value_error.datetime")
        doc["timestamp"] = timestamp
    session = check.get("session_id", required=True)
    if session is not None:
        try:
            doc["session_id"] = str(uuid.UUID(session)) if isinstance(session, str) else None
        except ValueError:
            doc["session_id"] = None
        if doc["session_id"] is None:
            check.fail("session_id", "value is not a valid uuid", "type_error.uuid")
    page = check.get("page", required=False)
    doc["page"] = _text(page)
    if page is not None and doc["page"] is None:
        check.fail("page", "str type expected", "type_error.str")
    action = check.get("action", required=True)
    if action is not None and action not in ACTIONS:
        check.fail(
            "action",
            "unexpected value; permitted: " + ", ".join(f"'{a}'" for a in ACTIONS),
            "value_error.const",
            given=action,
            permitted=list(ACTIONS),
        )
    doc["action"] = action
    meta = check.get("meta", required=False)
    if meta is not None and not isinstance(meta, str):
        check.fail("meta", "str type expected", "type_error.str")
    doc["meta"] = meta
    for name in ("client_context", "server_context"):
        context = check.get(name, required=False)
        if context is not None and not isinstance(context, dict):
            check.fail(name, "value is not a valid dict", "type_error.dict")
        doc[name] = context if isinstance(context, dict) else {}
    referer = doc["client_context"].get("referer")
    if referer is not None and _text(referer) is None:
        check.fail(["client_context", "referer"], "str type expected", "type_error.str")
    if check.problems:
        raise TrackError(check.problems)
    return doc


def _meta(text: str | None) -> Any:
    """``meta`` parsed when it holds JSON, else the text itself."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def track_event(doc: dict[str, Any], client: tuple[str | None, str | None]) -> Event:
    """The validated document as an event; ``server_context`` filled from the request's
    `client` (IP, user agent) and the server's clock."""
    ip, agent = client
    server = {**doc["server_context"], "client_ip": ip, "user_agent": agent}
    server["received_at"] = iso(utc_now())
    data = {**doc, "meta": _meta(doc["meta"]), "server_context": server}
    return Event(
        "track",
        doc["action"],
        session=doc["session_id"],
        page=doc["page"],
        data=data,
        data_raw=doc["meta"],
        client_time=doc["timestamp"],
        sequence=doc["order"],
        ip=ip,
        user_agent=agent,
    )


def _unauthorized(msg: str) -> TrackError:
    return TrackError([_problem(["query", "key"], msg, "value_error.key")], status=401)


async def _owner() -> Owner:
    """The ingest key of ``?key=``, else the keyless user; 401 otherwise."""
    value = request.args.get("key")
    if value:
        key = await find_ingest_key(value)
        if key is None or not key.active:
            raise _unauthorized("unknown or disabled ingest key")
        return key
    user = await keyless_user()
    if user is None:
        raise _unauthorized("an ingest key is required")
    return user


@bp.route("/track", methods=["POST", "OPTIONS"])
async def track() -> Response:
    """Store one tracker event; answer ``null`` after the commit."""
    owner = await _owner()
    raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    try:
        body = parse_json(raw)
    except APIError:
        raise TrackError([_problem(["body"], "invalid JSON", "value_error.jsondecode")]) from None
    event = track_event(load_track(body), request_client())
    try:
        await record_events(owner, [event])
    except ValidationFailed as exc:  # a common-model limit: a huge meta, or document
        field, _, rule = exc.detail.removeprefix("events[0].").partition(": ")
        loc = {"data_raw": ["body", "meta"], "data": ["body"]}.get(field, ["body", field])
        raise TrackError([_problem(loc, rule, "value_error")]) from None
    return json_response(None)
