"""The native usage-events API's wire: the body of ``POST /api/events`` and the query strings
of its reads (``/api/events``, ``/api/sessions``, ``/api/events/stats``,
``/api/events/pages``, ``/api/sessions/stats``).

The body (`EventsBodySchema`) is read by `read_events` (the list, unchecked, for counting
against `MAX_BATCH` first) then `load_events` (as `Event`s: msgspec converts the common shape,
`WireEvent`, and marshmallow the rest, for its exact errors; the common rules of
`bot_logging_server.schemas.events` check before they are stored). The query strings
(`load_event_query`, `load_page_query`, `load_session_query`, `load_session_stats_query`)
load straight into the storage's `EventQuery` and `SessionQuery`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from marshmallow import EXCLUDE, Schema, fields, pre_load, validate

from bot_logging_server.schemas.base import ValidationFailed, load
from bot_logging_server.schemas.events import (
    MAX_NAME_CHARS,
    MAX_PAGE_CHARS,
    MAX_SESSION_CHARS,
    SOURCES,
)
from bot_logging_server.schemas.query import Cursor
from bot_logging_server.schemas.values import BIGINT, Timestamp
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
    "MAX_TOP_PAGES",
    "EventFiltersSchema",
    "EventInSchema",
    "EventPagesQuerySchema",
    "EventStatsQuerySchema",
    "EventsBodySchema",
    "EventsQuerySchema",
    "SessionFiltersSchema",
    "SessionStatsQuerySchema",
    "SessionsQuerySchema",
    "WireEvent",
    "load_event_query",
    "load_events",
    "load_events_reference",
    "load_page_query",
    "load_session_query",
    "load_session_stats_query",
    "read_events",
]

#: The most rows ``GET /api/events/pages`` answers.
MAX_TOP_PAGES = 100
#: Buckets of ``GET /api/sessions/stats``.
_SESSION_BUCKETS = ("hour", "day")
#: The most events one ``POST /api/events`` may carry.
MAX_BATCH = 1000


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


class WireEvent(msgspec.Struct, gc=False):
    """One event of ``POST /api/events`` in the shape `EventInSchema` loads unchanged: a
    ``name``, strings within their lengths, an integer ``sequence`` in range (unknown fields
    skipped; ``data`` and ``time`` any JSON value). Converted by msgspec, checked in C.

    Parsed JSON never holds a reference cycle, so the structs are left out of the garbage
    collector's work (``gc=False``).
    """

    name: Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS)]
    session: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SESSION_CHARS)] | None = None
    category: Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS)] | None = None
    page: str | None = None
    data: Any = None
    time: Any = None
    sequence: Annotated[int, msgspec.Meta(ge=-BIGINT, le=BIGINT - 1)] | None = None


def load_events(events: list, ip: str | None = None, user_agent: str | None = None) -> list[Event]:
    """The ``events`` list as `Event`s of source ``api`` sent from `ip` with `user_agent`;
    `ValidationFailed` names the field (``events[3].name: ...``).

    A list whose every event has the common shape (`WireEvent`) is converted by msgspec;
    any other goes through `load_events_reference` (marshmallow), for its exact errors.
    """
    try:
        wire = msgspec.convert(events, list[WireEvent])
    except msgspec.ValidationError:
        return load_events_reference(events, ip, user_agent)
    return [
        Event(
            "api",
            item.name,
            session=item.session,
            category=item.category,
            page=item.page,
            data=item.data,
            client_time=item.time,
            sequence=item.sequence,
            ip=ip,
            user_agent=user_agent,
        )
        for item in wire
    ]


def load_events_reference(
    events: list, ip: str | None = None, user_agent: str | None = None
) -> list[Event]:
    """`load_events` through marshmallow (`EventInSchema`) alone: the reference the msgspec
    path must agree with."""
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
        for item in load(_EVENTS_IN, events, "events")
    ]


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
    page = fields.String(validate=validate.Length(max=MAX_PAGE_CHARS))
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
