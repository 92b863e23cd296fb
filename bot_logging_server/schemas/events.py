"""Usage events: the client's time in every format the interfaces send, and the rules every
event of the common model follows before it is stored.

Time (`parse_event_time`): ISO 8601 with or without a zone (``T`` or space, any fraction,
``Z``; naive means UTC), which covers the Eye's ``%Y-%m-%d %H:%M:%S.%f``, and Unix time in
seconds or milliseconds (a JSON number or a string of digits, with a fraction or not; a
magnitude of 10^11 or more is milliseconds: as seconds it would be past the year 5000).
The result is the raw text as sent and the moment in naive UTC, or None when it does not
parse: such an event is stored all the same, flagged by its null time, never refused.

Event rules (`check_event`), each failure a `ValidationFailed` naming the field:

* ``source`` one of `SOURCES`; ``name`` a string of at most 255 characters; ``category``
  null or the same; ``session`` null or 1-64 characters (a key is an identity: never cut);
* ``data`` any JSON value (integers within 64 bits, at most 255 levels deep) whose text is at
  most `MAX_DATA_CHARS` characters; ``data_raw``
  null or a string as long; ``sequence`` null or a 64-bit integer;
* cut, never refused (descriptive text from headers and URLs): ``page`` to 2048 characters,
  ``ip`` to 64, ``user_agent`` to 1024, the raw client time to 255;
* lone UTF-16 surrogates (legal in JSON escapes, not storable) become U+FFFD everywhere.

A session started explicitly (`check_session`) follows the same rules for its source, key,
attributes (as ``data``), client time, IP and user agent.

The native API's wire (``/api/events``, ``/api/sessions``, ``/api/events/stats``,
``/api/events/pages``, ``/api/sessions/stats``): the body
of ``POST /api/events`` (`EventsBodySchema`, read by `read_events` then `load_events`) and the
query strings of the reads (`load_event_query`, `load_session_query`), which load straight
into the storage's `EventQuery` and `SessionQuery`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import orjson
from marshmallow import EXCLUDE, Schema, fields, pre_load, validate

from bot_logging_server.schemas.base import ValidationFailed, load
from bot_logging_server.schemas.query import Cursor
from bot_logging_server.schemas.values import BIGINT, Timestamp, clean_text, parse_timestamp
from bot_logging_server.storage import (
    BUCKETS,
    MAX_PAGE,
    PAGE_SORTS,
    Event,
    EventQuery,
    SessionQuery,
)

__all__ = [
    "MAX_BATCH",
    "MAX_DATA_CHARS",
    "MAX_NAME_CHARS",
    "MAX_SESSION_CHARS",
    "MAX_TOP_PAGES",
    "SOURCES",
    "EventFiltersSchema",
    "EventInSchema",
    "EventPagesQuerySchema",
    "EventStatsQuerySchema",
    "EventTime",
    "EventsBodySchema",
    "EventsQuerySchema",
    "SessionFiltersSchema",
    "SessionStart",
    "SessionStatsQuerySchema",
    "SessionsQuerySchema",
    "check_event",
    "check_session",
    "load_event_query",
    "load_events",
    "load_page_query",
    "load_session_query",
    "load_session_stats_query",
    "parse_event_time",
    "read_events",
]

#: The interfaces events come through (``Event.source``).
SOURCES = ("eye", "microticks", "track", "stats", "api")
#: ``name`` and ``category`` hold at most this many characters.
MAX_NAME_CHARS = 255
#: A session key holds 1 to this many characters.
MAX_SESSION_CHARS = 64
#: ``data`` as JSON text, and ``data_raw``, hold at most this many characters.
MAX_DATA_CHARS = 262_144
_PAGE_CHARS, _IP_CHARS, _AGENT_CHARS, _RAW_TIME_CHARS = 2048, 64, 1024, 255
#: The most rows ``GET /api/events/pages`` answers.
MAX_TOP_PAGES = 100
#: Buckets of ``GET /api/sessions/stats``.
_SESSION_BUCKETS = ("hour", "day")
#: The most events one ``POST /api/events`` may carry.
MAX_BATCH = 1000
#: A Unix time of this magnitude or more is in milliseconds.
_MILLISECONDS_FROM = Decimal(10) ** 11
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_EPOCH = datetime(1970, 1, 1)
_MIN, _MAX = datetime(1000, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999)


class EventTime(NamedTuple):
    """A client time: `raw` as sent (None: none sent) and `at`, naive UTC or None when it
    did not parse."""

    raw: str | None
    at: datetime | None


def _unix(number: Decimal) -> datetime | None:
    """Unix seconds, or milliseconds from `_MILLISECONDS_FROM` on, as naive UTC."""
    if not number.is_finite():
        return None
    if abs(number) >= _MILLISECONDS_FROM:
        number /= 1000
    try:
        moment = _EPOCH + timedelta(microseconds=int(number.scaleb(6).to_integral_value()))
    except (OverflowError, InvalidOperation):
        return None
    return moment if _MIN <= moment <= _MAX else None


def _parse_text(text: str) -> datetime | None:
    text = text.strip()
    if _NUMBER.fullmatch(text):
        return _unix(Decimal(text)) if len(text) <= 40 else None
    try:
        return parse_timestamp(text)
    except ValueError:
        return None


def parse_event_time(value: object) -> EventTime:
    """A client's time as sent (`value`: a string, a JSON number, anything) and parsed.

    None is "no time sent": ``EventTime(None, None)``. A string is kept as it is (cut to 255
    characters); a number or any other JSON value is kept as its JSON text. The parsed
    moment is None for anything that is not a time in years 1000..9999.
    """
    if value is None:
        return EventTime(None, None)
    if isinstance(value, str):
        return EventTime(clean_text(value[:_RAW_TIME_CHARS]), _parse_text(value))
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            raw = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            raw = repr(value)
        return EventTime(clean_text(raw[:_RAW_TIME_CHARS]), None)
    raw = json.dumps(value)  # 1641719727, 1641719727.243, NaN
    try:
        at = _unix(Decimal(raw)) if isinstance(value, int) else _unix(Decimal(repr(value)))
    except InvalidOperation:
        at = None
    return EventTime(raw[:_RAW_TIME_CHARS], at)


def _name(value: Any, field: str, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ValidationFailed(f"{field}: must be a string")
    if len(value) > MAX_NAME_CHARS:
        raise ValidationFailed(f"{field}: longer than {MAX_NAME_CHARS} characters")
    return clean_text(value)


def _cut(value: Any, field: str, chars: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed(f"{field}: must be a string")
    return clean_text(value[:chars])


def _data(value: Any, field: str) -> Any:
    """`value` if its JSON text is storable; surrogates replaced (then it is re-read)."""
    if value is None:
        return None
    try:
        # Most data: orjson writes it (so it has no lone surrogate, fits 64-bit integers
        # and 255 levels), and its UTF-8 is short enough: no character count needed.
        if len(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)) <= MAX_DATA_CHARS:
            return value
    except TypeError:
        pass  # the checks below name what is wrong, or clean it
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except RecursionError:
        raise ValidationFailed(f"{field}: nested too deeply") from None
    except (TypeError, ValueError):
        raise ValidationFailed(f"{field}: not a JSON value") from None
    if len(text) > MAX_DATA_CHARS:
        raise ValidationFailed(f"{field}: longer than {MAX_DATA_CHARS} characters as JSON")
    cleaned = clean_text(text)
    if cleaned is not text:
        value = json.loads(cleaned)
    try:
        # The answers are written by orjson, which refuses integers past 64 bits and more
        # than 255 levels of nesting: such data could be stored but never read back.
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        if "ecursion" in str(exc):
            raise ValidationFailed(f"{field}: nested too deeply") from None
        if "Integer" in str(exc):
            raise ValidationFailed(f"{field}: integers must fit in 64 bits") from None
        raise ValidationFailed(f"{field}: not a JSON value") from None
    return value


def check_event(event: Event, where: str = "event") -> Event:
    """`event` as it will be stored: checked, cleaned, and its client time parsed.

    `where` prefixes the field in an error (``events[3]`` gives ``events[3].name: ...``).
    ``client_at`` is parsed from ``client_time`` unless given. Raises `ValidationFailed`.
    """
    if event.source not in SOURCES:
        raise ValidationFailed(f"{where}.source: must be one of {', '.join(SOURCES)}")
    session = event.session
    if session is not None:
        if not isinstance(session, str):
            raise ValidationFailed(f"{where}.session: must be a string")
        if not 1 <= len(session) <= MAX_SESSION_CHARS:
            raise ValidationFailed(f"{where}.session: must be 1-{MAX_SESSION_CHARS} characters")
        session = clean_text(session)
    sequence = event.sequence
    if sequence is not None and (
        isinstance(sequence, bool)
        or not isinstance(sequence, int)
        or not -BIGINT <= sequence < BIGINT
    ):
        raise ValidationFailed(f"{where}.sequence: must be a 64-bit integer")
    if event.data_raw is not None and (
        not isinstance(event.data_raw, str) or len(event.data_raw) > MAX_DATA_CHARS
    ):
        raise ValidationFailed(f"{where}.data_raw: must be a string of at most {MAX_DATA_CHARS}")
    client = EventTime(None, event.client_at)
    if event.client_time is not None:
        parsed = parse_event_time(event.client_time)
        client = EventTime(parsed.raw, event.client_at or parsed.at)
    return dataclasses.replace(
        event,
        name=_name(event.name, f"{where}.name", True),
        category=_name(event.category, f"{where}.category", False),
        session=session,
        page=_cut(event.page, f"{where}.page", _PAGE_CHARS),
        data=_data(event.data, f"{where}.data"),
        data_raw=None if event.data_raw is None else clean_text(event.data_raw),
        client_time=client.raw,
        client_at=client.at,
        ip=_cut(event.ip, f"{where}.ip", _IP_CHARS),
        user_agent=_cut(event.user_agent, f"{where}.user_agent", _AGENT_CHARS),
    )


class SessionStart(NamedTuple):
    """A session's opening, checked (see `check_session`)."""

    source: str
    key: str
    attributes: Any
    client: EventTime
    ip: str | None
    user_agent: str | None


def check_session(
    source: str,
    key: str,
    attributes: Any = None,
    client_time: Any = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SessionStart:
    """The fields of a session to open, checked and cleaned as `check_event` does; raise
    `ValidationFailed` naming ``source``, ``key`` or ``attributes``."""
    if source not in SOURCES:
        raise ValidationFailed(f"source: must be one of {', '.join(SOURCES)}")
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_SESSION_CHARS:
        raise ValidationFailed(f"key: must be 1-{MAX_SESSION_CHARS} characters")
    return SessionStart(
        source,
        clean_text(key),
        _data(attributes, "attributes"),
        parse_event_time(client_time),
        _cut(ip, "ip", _IP_CHARS),
        _cut(user_agent, "user_agent", _AGENT_CHARS),
    )


# -- the native API's wire ----------------------------------------------------------------

_TIME_DOC = (
    "The client's time: ISO 8601 (naive means UTC), or Unix seconds or milliseconds (number "
    "or string). Kept as sent; one that does not parse is stored with a null time and listed "
    "by invalid_time=true."
)


class EventInSchema(Schema):
    """One event of ``POST /api/events``; unknown fields are ignored."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=validate.Length(max=MAX_NAME_CHARS))
    session = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(1, MAX_SESSION_CHARS),
        metadata={"description": "Session key; a new one opens a session."},
    )
    category = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=MAX_NAME_CHARS)
    )
    page = fields.String(
        load_default=None, allow_none=True, metadata={"description": "Cut to 2048 characters."}
    )
    data = fields.Raw(
        load_default=None, allow_none=True, metadata={"description": "Any JSON value."}
    )
    time = fields.Raw(load_default=None, allow_none=True, metadata={"description": _TIME_DOC})
    sequence = fields.Integer(
        load_default=None,
        allow_none=True,
        strict=True,
        validate=validate.Range(-BIGINT, BIGINT - 1),
        metadata={"description": "The client's sequence number."},
    )


class EventsBodySchema(Schema):
    """The body of ``POST /api/events``: ``{"events": [event, ...]}`` (up to `MAX_BATCH`)."""

    class Meta:
        unknown = EXCLUDE

    events = fields.List(fields.Nested(EventInSchema), required=True)


_EVENTS_IN = EventInSchema(many=True)


def read_events(body: object) -> list:
    """The ``events`` list of a ``POST /api/events`` body, unchecked (for counting first).

    Raises `ValidationFailed` unless `body` is an object whose ``events`` is a list.
    """
    if not isinstance(body, dict):
        raise ValidationFailed("body: must be a JSON object")
    events = body.get("events")
    if not isinstance(events, list):
        raise ValidationFailed("events: must be a list")
    return events


def load_events(events: list, ip: str | None = None, user_agent: str | None = None) -> list[Event]:
    """The ``events`` list as `Event`s of source ``api`` sent from `ip` with `user_agent`;
    `ValidationFailed` names the field (``events[3].name: ...``).

    A list whose every event is plainly valid (`_plainly_valid`) is taken as it is: what
    `EventInSchema` would load from it, without its cost (about 40 µs an event). Any other
    goes through the schema, for its exact errors.
    """
    loaded = events if _plainly_valid(events) else load(_EVENTS_IN, events, "events")
    return [
        Event(
            "api",
            item["name"],
            session=item.get("session"),
            category=item.get("category"),
            page=item.get("page"),
            data=item.get("data"),
            client_time=item.get("time"),
            sequence=item.get("sequence"),
            ip=ip,
            user_agent=user_agent,
        )
        for item in loaded
    ]


def _plainly_valid(events: list) -> bool:
    """Whether every event is one `EventInSchema` loads unchanged (but for the optional
    fields it leaves out, read as None): a ``name``, strings within their lengths, an
    ``int`` sequence in range."""
    for item in events:
        if type(item) is not dict:
            return False
        name, session, category = item.get("name"), item.get("session"), item.get("category")
        page, sequence = item.get("page"), item.get("sequence")
        if type(name) is not str or len(name) > MAX_NAME_CHARS:
            return False
        if session is not None and (
            type(session) is not str or not 1 <= len(session) <= MAX_SESSION_CHARS
        ):
            return False
        if category is not None and (type(category) is not str or len(category) > MAX_NAME_CHARS):
            return False
        if page is not None and type(page) is not str:
            return False
        if sequence is not None and (type(sequence) is not int or not -BIGINT <= sequence < BIGINT):
            return False
    return True


class _Query(Schema):
    class Meta:
        unknown = EXCLUDE

    @pre_load
    def _drop_empty(self, data: Any, **kwargs: Any) -> Any:
        # An HTML form sends every field, empty ones as "": empty means "no filter".
        if isinstance(data, Mapping):
            return {key: value for key, value in data.items() if value != ""}
        return data


class _Page(_Query):
    limit = fields.Integer(
        load_default=100,
        validate=validate.Range(1, MAX_PAGE),
        metadata={"description": f"Items per page, 1-{MAX_PAGE}."},
    )
    cursor = Cursor(metadata={"description": "next_cursor of the previous page."})
    order = fields.String(
        load_default="desc",
        validate=validate.OneOf(("desc", "asc")),
        metadata={"description": "desc: newest first (default); asc: oldest first."},
    )


class EventFiltersSchema(_Query):
    """The filters of ``GET /api/events`` and ``GET /api/events/stats``."""

    source = fields.String(validate=validate.OneOf(SOURCES))
    session = fields.String(validate=validate.Length(1, MAX_SESSION_CHARS))
    category = fields.String(validate=validate.Length(max=MAX_NAME_CHARS))
    name = fields.String(validate=validate.Length(max=MAX_NAME_CHARS))
    page = fields.String(validate=validate.Length(max=_PAGE_CHARS))
    since = Timestamp(metadata={"description": "event_at >= since (ISO 8601)."})
    until = Timestamp(metadata={"description": "event_at < until (ISO 8601)."})
    invalid_time = fields.Boolean(
        metadata={
            "description": "true: only events whose client time did not parse or is ahead "
            "of their receive time by more than tolerance_ms."
        }
    )
    tolerance_ms = fields.Integer(
        validate=validate.Range(0, 10**12),
        metadata={"description": "For invalid_time: milliseconds ahead allowed (default 0)."},
    )


class EventsQuerySchema(EventFiltersSchema, _Page):
    """``GET /api/events``: the filters and a keyset page."""


class EventStatsQuerySchema(EventFiltersSchema):
    """``GET /api/events/stats``: the filters and the bucket width."""

    bucket = fields.String(load_default="hour", validate=validate.OneOf(BUCKETS))


class EventPagesQuerySchema(EventFiltersSchema):
    """``GET /api/events/pages``: the filters, how many pages and their order."""

    limit = fields.Integer(
        load_default=10,
        validate=validate.Range(1, MAX_TOP_PAGES),
        metadata={"description": f"Pages answered, 1-{MAX_TOP_PAGES} (default 10)."},
    )
    sort = fields.String(
        load_default="events",
        validate=validate.OneOf(PAGE_SORTS),
        metadata={
            "description": "The count the pages are ranked by (descending; ties by events, "
            "then page): events (default), views, clicks or sessions."
        },
    )


class SessionFiltersSchema(_Query):
    """The filters of ``GET /api/sessions`` and ``GET /api/sessions/stats``."""

    source = fields.String(validate=validate.OneOf(SOURCES))
    session = fields.String(validate=validate.Length(1, MAX_SESSION_CHARS))
    stopped = fields.Boolean(metadata={"description": "true: only stopped; false: only open."})
    since = Timestamp(metadata={"description": "started_at >= since (ISO 8601)."})
    until = Timestamp(metadata={"description": "started_at < until (ISO 8601)."})


class SessionsQuerySchema(SessionFiltersSchema, _Page):
    """``GET /api/sessions``: filters (start time, state) and a keyset page."""


class SessionStatsQuerySchema(SessionFiltersSchema):
    """``GET /api/sessions/stats``: the filters, the bucket width, and whether per source."""

    bucket = fields.String(
        load_default="day",
        validate=validate.OneOf(_SESSION_BUCKETS),
        metadata={"description": "Width of a bucket of started_at: hour or day (default)."},
    )
    by_source = fields.Boolean(
        load_default=False,
        metadata={"description": "true: one count per (bucket, source)."},
    )


_EVENT_QUERIES = {"events": EventsQuerySchema(), "stats": EventStatsQuerySchema()}
_SESSIONS_QUERY = SessionsQuerySchema()
_SESSION_STATS_QUERY = SessionStatsQuerySchema()
_PAGES_QUERY = EventPagesQuerySchema()


def _page(args: dict[str, Any]) -> dict[str, Any]:
    """limit, cursor and order as `EventQuery` / `SessionQuery` page arguments."""
    cursor, order = args.pop("cursor", None), args.pop("order", "desc")
    descending = order == "desc"
    return {
        "limit": args.pop("limit", 100),
        "descending": descending,
        "before_id": cursor if descending else None,
        "after_id": None if descending else cursor,
    }


def load_event_query(kind: str, args: Mapping[str, str]) -> tuple[EventQuery, str | None]:
    """The `EventQuery` of read endpoint `kind` (``events`` or ``stats``) and its bucket
    (None for ``events``); `ValidationFailed` names the parameter (``query.since: ...``)."""
    loaded = load(_EVENT_QUERIES[kind], dict(args), "query")
    bucket = loaded.pop("bucket", None)
    page = _page(loaded) if kind == "events" else {}
    return EventQuery(**loaded, **page), bucket


def load_page_query(args: Mapping[str, str]) -> tuple[EventQuery, str, int]:
    """The `EventQuery` of ``GET /api/events/pages``, its sort and its limit;
    `ValidationFailed` names the parameter."""
    loaded = load(_PAGES_QUERY, dict(args), "query")
    sort, limit = loaded.pop("sort"), loaded.pop("limit")
    return EventQuery(**loaded), sort, limit


def load_session_stats_query(args: Mapping[str, str]) -> tuple[SessionQuery, str, bool]:
    """The `SessionQuery` of ``GET /api/sessions/stats``, its bucket and whether per source;
    `ValidationFailed` names the parameter."""
    loaded = load(_SESSION_STATS_QUERY, dict(args), "query")
    bucket, by_source = loaded.pop("bucket"), loaded.pop("by_source")
    if "session" in loaded:
        loaded["key"] = loaded.pop("session")
    return SessionQuery(**loaded), bucket, by_source


def load_session_query(args: Mapping[str, str]) -> SessionQuery:
    """The `SessionQuery` of ``GET /api/sessions``; `ValidationFailed` names the parameter."""
    loaded = load(_SESSIONS_QUERY, dict(args), "query")
    page = _page(loaded)
    if "session" in loaded:
        loaded["key"] = loaded.pop("session")
    return SessionQuery(**loaded, **page)
