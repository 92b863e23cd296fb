"""The query strings of the read endpoints under ``/api``, and the opaque page cursor.

Every read endpoint takes the same filters (`LogQuerySchema`: ``level``, ``since``,
``until``, ``q``, ``p_name``, ``p_description``, ``pid``; empty values are ignored); the
listing and the export add a page size and a ``cursor``, the stats a bucket width. ``q`` is
the search language of `bot_logging_server.search`, loaded to a `Search`.
``GET /api/suggest`` has its own (`SuggestQuerySchema`).
`load_query` validates one endpoint's query string into the keyword arguments of
`bot_logging_server.storage.LogQuery`, or raises `ValidationFailed` naming the parameter.

A cursor is the last record id of a page, encoded (`encode_cursor`) so that clients treat it
as opaque; `decode_cursor` accepts only what `encode_cursor` makes, and only ids a record can
have (`parse_record_id`: below 2^63, what both backends can compare with).

The listing and the export of logs are ordered by ``sort``: ``event_at`` (event time, ties
by id; the default) or ``id`` (arrival), in the direction ``order`` (``desc``, the default,
or ``asc``). Their cursor names the order it continues: an event-time cursor
(`encode_log_cursor`) holds the last record's event time and id; an arrival cursor is the
plain id cursor above, which is also what every cursor was before event-time order, so such a
cursor, sent without ``sort``, still continues in arrival order.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from bot_logging_server.schemas.base import load
from bot_logging_server.schemas.values import BIGINT, NAME_CHARS, Level, Timestamp
from bot_logging_server.search import Search, SearchError, parse_search
from bot_logging_server.storage import BUCKETS, LOG_SORTS, MAX_PAGE

__all__ = [
    "EXPORT_FORMATS",
    "LOG_ORDERS",
    "SUGGEST_FIELDS",
    "Cursor",
    "ExportQuerySchema",
    "LogCursor",
    "LogCursorField",
    "LogQuerySchema",
    "LogsQuerySchema",
    "SearchText",
    "StatsQuerySchema",
    "SuggestQuerySchema",
    "decode_cursor",
    "decode_log_cursor",
    "encode_cursor",
    "encode_log_cursor",
    "load_query",
    "parse_record_id",
]

#: The longest ``q`` accepted.
MAX_Q_CHARS = 1000
#: ``format`` values of ``GET /api/logs/export``.
EXPORT_FORMATS = ("ndjson", "csv")
#: ``order`` values of the listing and the export: newest first, oldest first.
LOG_ORDERS = ("desc", "asc")
_CURSOR_PREFIX = "id:"
_EVENT_CURSOR_PREFIX = "at:"


def encode_cursor(last_id: int) -> str:
    """The opaque ``next_cursor`` that continues after the record `last_id`."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def parse_record_id(text: str) -> int:
    """A record id written in ASCII digits; `ValueError` unless it is 0 .. 2^63 - 1.

    Ids are compared with a signed 64-bit column (SQLite cannot even bind a larger number),
    so a larger one can never name a record: it is refused here, before any query runs.
    """
    if not text.isascii() or not text.isdigit() or len(text) > 20 or int(text) >= BIGINT:
        raise ValueError("not a record id")
    return int(text)


def decode_cursor(cursor: str) -> int:
    """The record id a cursor continues after; raise `ValueError` when it is not ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:
        raise ValueError("not a valid cursor") from None
    if not text.startswith(_CURSOR_PREFIX):
        raise ValueError("not a valid cursor")
    try:
        return parse_record_id(text.removeprefix(_CURSOR_PREFIX))
    except ValueError:
        raise ValueError("not a valid cursor") from None


class LogCursor(NamedTuple):
    """Where a page of logs ends: its `sort` and last record (`event_at` when by event time)."""

    sort: str
    id: int
    event_at: datetime | None = None


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def encode_log_cursor(sort: str, last_id: int, event_at: datetime) -> str:
    """The opaque ``next_cursor`` of a page of logs in order `sort` ending with record
    `last_id` (whose event time is `event_at`, naive UTC)."""
    if sort == "id":
        return encode_cursor(last_id)
    return _b64(f"{_EVENT_CURSOR_PREFIX}{event_at.isoformat(timespec='microseconds')}/{last_id}")


def decode_log_cursor(cursor: str) -> LogCursor:
    """What a logs cursor continues after; `ValueError` when `encode_log_cursor` did not make
    it (the time must be written exactly as it writes one, the id be a record's)."""
    try:
        return LogCursor("id", decode_cursor(cursor))
    except ValueError:
        pass
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith(_EVENT_CURSOR_PREFIX):
            raise ValueError("not ours")
        at_text, _, id_text = text.removeprefix(_EVENT_CURSOR_PREFIX).partition("/")
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is not None or at.isoformat(timespec="microseconds") != at_text:
            raise ValueError("not ours")
        return LogCursor("event_at", parse_record_id(id_text), at)
    except ValueError:
        raise ValueError("not a valid cursor") from None


class LogCursorField(fields.Field):
    """A ``next_cursor`` of a page of logs; loads to a `LogCursor`."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> LogCursor:
        if not isinstance(value, str):
            raise ValidationError("not a valid cursor")
        try:
            return decode_log_cursor(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class Cursor(fields.Field):
    """A ``next_cursor`` from a previous page; loads to the id to continue before."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, str):
            raise ValidationError("not a valid cursor")
        try:
            return decode_cursor(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class SearchText(fields.Field):
    """``q``: at most `MAX_Q_CHARS` characters of the search language; loads to a `Search`
    (`bot_logging_server.search`), or fails with what is wrong in it."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Search:
        if not isinstance(value, str):
            raise ValidationError("not a valid string")
        if len(value) > MAX_Q_CHARS:
            raise ValidationError(f"longer than {MAX_Q_CHARS} characters")
        try:
            return parse_search(value)
        except SearchError as exc:
            raise ValidationError(str(exc)) from None


_LEVEL_DOC = {
    "description": "Minimum level: a number 0-100 or a name (debug, info, warning, error...).",
    "example": "warning",
}
_TIME_DOC = {"description": "ISO 8601; naive means UTC.", "example": "2020-05-05T12:00:00Z"}


class LogQuerySchema(Schema):
    """The filters shared by every read endpoint (query string); empty values are ignored.

    Loads to the keyword arguments of `bot_logging_server.storage.LogQuery`.
    """

    class Meta:
        unknown = EXCLUDE

    min_level = Level(data_key="level", metadata=_LEVEL_DOC)
    since = Timestamp(metadata={**_TIME_DOC, "description": "event_at >= since (ISO 8601)."})
    until = Timestamp(metadata={**_TIME_DOC, "description": "event_at < until (ISO 8601)."})
    q = SearchText(
        metadata={
            "description": 'Search (docs/API.md, Search syntax): words and "phrases" of msg '
            "(any case, AND), -word excludes, process:PREFIX, logger:PREFIX, pid:N, "
            "level:error or level:>=warning (also >, <=, <).",
            "example": 'level:>=error "card declined" -heartbeat',
        },
    )
    p_name = fields.String(validate=validate.Length(max=NAME_CHARS))
    p_description = fields.String(validate=validate.Length(max=NAME_CHARS))
    pid = fields.Integer(validate=validate.Range(-BIGINT, BIGINT - 1))

    @pre_load
    def _drop_empty(self, data: Any, **kwargs: Any) -> Any:
        # An HTML form sends every field, empty ones as "": empty means "no filter".
        if isinstance(data, Mapping):
            return {key: value for key, value in data.items() if value != ""}
        return data


class _LogOrder(LogQuerySchema):
    """The order of the listing and the export (``sort``, ``order``) and where to continue
    (``cursor``); loads to `LogQuery`'s ``sort``, ``oldest_first`` and keyset arguments."""

    sort = fields.String(
        validate=validate.OneOf(LOG_SORTS),
        metadata={
            "description": "event_at: by event time, ties by id (the default); id: by "
            "arrival (the order records were stored in). With a cursor, the default is the "
            "cursor's own order."
        },
    )
    order = fields.String(
        load_default="desc",
        validate=validate.OneOf(LOG_ORDERS),
        metadata={"description": "desc: newest first (default); asc: oldest first."},
    )

    @validates_schema
    def _cursor_fits_sort(self, data: dict[str, Any], **kwargs: Any) -> None:
        cursor, sort = data.get("cursor"), data.get("sort")
        if cursor is not None and sort is not None and cursor.sort != sort:
            raise ValidationError(f"a cursor of sort={cursor.sort}, not {sort}", "cursor")

    @post_load
    def _keyset(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        cursor: LogCursor | None = data.pop("cursor", None)
        oldest_first = data.pop("order") == "asc"
        data["oldest_first"] = oldest_first
        data["sort"] = data.get("sort") or (cursor.sort if cursor else "event_at")
        if cursor is not None:
            data["after_id" if oldest_first else "before_id"] = cursor.id
            data["cursor_event_at"] = cursor.event_at
        return data


class LogsQuerySchema(_LogOrder):
    """``GET /api/logs``: the filters, the order, a page size and the previous page's cursor."""

    limit = fields.Integer(
        load_default=100,
        validate=validate.Range(1, MAX_PAGE),
        metadata={"description": f"Records per page, 1-{MAX_PAGE}."},
    )
    cursor = LogCursorField(metadata={"description": "next_cursor of the previous page."})


class ExportQuerySchema(_LogOrder):
    """``GET /api/logs/export``: the filters, the order, the format, a cap and a cursor."""

    format = fields.String(
        load_default="ndjson",
        validate=validate.OneOf(EXPORT_FORMATS),
        metadata={"description": "ndjson (one JSON record a line) or csv."},
    )
    limit = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1),
        metadata={"description": "Stop after this many records (default: all)."},
    )
    cursor = LogCursorField(metadata={"description": "Start after this cursor."})


class StatsQuerySchema(LogQuerySchema):
    """``GET /api/stats``: the filters and the bucket width."""

    bucket = fields.String(load_default="hour", validate=validate.OneOf(BUCKETS))


#: ``field`` values of ``GET /api/suggest``, and the column each completes.
SUGGEST_FIELDS = {"process": "p_name", "logger": "p_description"}


class SuggestQuerySchema(Schema):
    """``GET /api/suggest``: which field to complete, and the start typed so far."""

    class Meta:
        unknown = EXCLUDE

    field = fields.String(
        required=True,
        validate=validate.OneOf(tuple(SUGGEST_FIELDS)),
        metadata={"description": "process (p_name) or logger (p_description)."},
    )
    prefix = fields.String(
        load_default="",
        validate=validate.Length(max=NAME_CHARS),
        metadata={"description": "What the value starts with (any letter case); empty: any."},
    )


_QUERY_SCHEMAS = {
    "logs": LogsQuerySchema(),
    "export": ExportQuerySchema(),
    "stats": StatsQuerySchema(),
    "tail": LogQuerySchema(),
    "suggest": SuggestQuerySchema(),
}


def load_query(kind: str, args: Mapping[str, str]) -> dict[str, Any]:
    """Validate the query string of read endpoint `kind` (``logs export stats tail suggest``).

    Raises `ValidationFailed` naming the parameter, e.g. ``query.level: not a level name``.
    """
    return load(_QUERY_SCHEMAS[kind], dict(args), "query")
