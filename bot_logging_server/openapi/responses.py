"""The answers' shapes, as marshmallow schemas: the OpenAPI document is their only user.

The handlers build their answers directly (`bot_logging_server.records`,
`bot_logging_server.errors`); these schemas describe those answers at ``/openapi.json``, and
the tests load real answers through them. Extra keys are allowed in every answer (the
contract may add keys, never remove one).
"""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from bot_logging_server.storage import BUCKETS

__all__ = [
    "CreateUserResultSchema",
    "ErrorSchema",
    "EventPageSchema",
    "EventStatsSchema",
    "EventsResultSchema",
    "HealthSchema",
    "LevelCountSchema",
    "LogPageSchema",
    "NameCountSchema",
    "PageCountSchema",
    "SendLogsResultSchema",
    "SessionCountSchema",
    "SessionPageSchema",
    "SessionSchema",
    "SessionStatsSchema",
    "StatsSchema",
    "StoredEventSchema",
    "StoredLogSchema",
    "TopPagesSchema",
]


class _Open(Schema):
    """Extra keys are allowed (the contract may add keys to an answer, never remove one)."""

    class Meta:
        unknown = EXCLUDE


class StoredLogSchema(_Open):
    """One stored record as the read endpoints answer it; times are ISO 8601 UTC with ``Z``."""

    id = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    level = fields.Integer(required=True, metadata={"example": 40})
    level_name = fields.String(required=True, metadata={"example": "ERROR"})
    msg = fields.String(required=True)
    p_name = fields.String(required=True)
    p_description = fields.String(required=True)
    pid = fields.Integer(required=True)
    truncated = fields.Boolean(required=True)
    msg_length = fields.Integer(required=True)
    event_at = fields.DateTime(required=True)
    post_time = fields.DateTime(required=True)
    received_at = fields.DateTime(required=True)


class LogPageSchema(_Open):
    """``GET /api/logs``: one page, newest first, and the cursor of the next (null at the end)."""

    logs = fields.List(fields.Nested(StoredLogSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class LevelCountSchema(_Open):
    """One histogram bar: records of `level` in the bucket starting at `start`."""

    start = fields.DateTime(required=True)
    level = fields.Integer(required=True)
    level_name = fields.String(required=True)
    count = fields.Integer(required=True)


class StatsSchema(_Open):
    """``GET /api/stats``: counts per (bucket, level), newest bucket first."""

    bucket = fields.String(required=True, validate=validate.OneOf(BUCKETS))
    counts = fields.List(fields.Nested(LevelCountSchema), required=True)
    partial = fields.Boolean(
        required=True, metadata={"description": "True when older buckets were left out."}
    )


class SuggestSchema(_Open):
    """``GET /api/suggest``: the user's values of the field starting with the prefix."""

    field = fields.String(required=True, validate=validate.OneOf(("process", "logger")))
    values = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "At most 20, distinct, sorted (letter case ignored)."},
    )


class SessionTokenSchema(_Open):
    """``POST /api/session``: the token the password makes (md5 of user + password)."""

    user = fields.String(required=True)
    token = fields.String(required=True, metadata={"description": "32 hex"})


class ErrorSchema(_Open):
    """Every answer that is not a success (``docs/API.md``)."""

    code = fields.Integer(required=True, metadata={"example": 403})
    message = fields.String(required=True, metadata={"example": "Forbidden"})
    detail = fields.String()


class SendLogsResultSchema(_Open):
    """The 200 answer of ``POST /send_logs``."""

    code = fields.Integer(required=True, metadata={"example": 200})
    message = fields.String(required=True, metadata={"example": "Logs added successfully"})
    added = fields.Integer(required=True)


class CreateUserResultSchema(_Open):
    """The 200 answer of ``POST /create_user``: the new token, shown this once."""

    code = fields.Integer(required=True, metadata={"example": 200})
    message = fields.String(required=True, metadata={"example": "User created"})
    user = fields.String(required=True)
    token = fields.String(required=True, metadata={"example": "5f4dcc3b5aa765d61d8327deb882cf99"})


class HealthSchema(_Open):
    """The 200 answer of ``GET /healthz``."""

    status = fields.String(required=True, metadata={"example": "ok"})
    storage = fields.String(required=True, metadata={"example": "mysql"})


class EventsResultSchema(_Open):
    """The 200 answer of ``POST /api/events``."""

    code = fields.Integer(required=True, metadata={"example": 200})
    message = fields.String(required=True, metadata={"example": "Events added successfully"})
    added = fields.Integer(required=True)


class StoredEventSchema(_Open):
    """One stored usage event; times are ISO 8601 UTC with ``Z``."""

    id = fields.Integer(required=True)
    source = fields.String(required=True, metadata={"example": "api"})
    session = fields.String(required=True, allow_none=True)
    session_id = fields.Integer(required=True, allow_none=True)
    ingest_key_id = fields.Integer(
        required=True, allow_none=True, metadata={"description": "The key that wrote it."}
    )
    category = fields.String(required=True, allow_none=True)
    name = fields.String(required=True)
    page = fields.String(required=True, allow_none=True)
    data = fields.Raw(required=True, allow_none=True, metadata={"description": "Any JSON."})
    data_raw = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "The text, when the wire carried data as a JSON string."},
    )
    client_time = fields.String(
        required=True, allow_none=True, metadata={"description": "The client's time as sent."}
    )
    client_at = fields.DateTime(
        required=True, allow_none=True, metadata={"description": "client_time, parsed."}
    )
    time_valid = fields.Boolean(
        required=True, metadata={"description": "False when client_time did not parse."}
    )
    event_at = fields.DateTime(
        required=True, metadata={"description": "client_at, or received_at without one."}
    )
    received_at = fields.DateTime(required=True)
    sequence = fields.Integer(required=True, allow_none=True)
    ip = fields.String(required=True, allow_none=True)
    user_agent = fields.String(required=True, allow_none=True)


class EventPageSchema(_Open):
    """``GET /api/events``: one page and the cursor of the next (null at the end)."""

    events = fields.List(fields.Nested(StoredEventSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class SessionSchema(_Open):
    """One session: opened by its first event (or explicitly), stopped or not."""

    id = fields.Integer(required=True)
    source = fields.String(required=True)
    session = fields.String(required=True, metadata={"description": "The session key."})
    ingest_key_id = fields.Integer(required=True, allow_none=True)
    started_at = fields.DateTime(required=True)
    started_client_time = fields.String(required=True, allow_none=True)
    started_client_at = fields.DateTime(required=True, allow_none=True)
    stopped_at = fields.DateTime(required=True, allow_none=True)
    stopped_client_time = fields.String(required=True, allow_none=True)
    stopped_client_at = fields.DateTime(required=True, allow_none=True)
    attributes = fields.Raw(required=True, allow_none=True)
    ip = fields.String(required=True, allow_none=True)
    user_agent = fields.String(required=True, allow_none=True)
    event_count = fields.Integer(required=True)
    last_event_at = fields.DateTime(required=True, allow_none=True)
    last_event_name = fields.String(required=True, allow_none=True)


class SessionPageSchema(_Open):
    """``GET /api/sessions``: one page and the cursor of the next (null at the end)."""

    sessions = fields.List(fields.Nested(SessionSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class NameCountSchema(_Open):
    """One histogram bar: events called `name` in the bucket starting at `start`."""

    start = fields.DateTime(required=True)
    name = fields.String(required=True)
    count = fields.Integer(required=True)


class EventStatsSchema(_Open):
    """``GET /api/events/stats``: counts per (bucket, name), newest bucket first."""

    bucket = fields.String(required=True, validate=validate.OneOf(BUCKETS))
    counts = fields.List(fields.Nested(NameCountSchema), required=True)
    partial = fields.Boolean(
        required=True, metadata={"description": "True when older buckets were left out."}
    )


class SessionCountSchema(_Open):
    """One bar of the sessions histogram: sessions started in the bucket at `start` (of
    `source`, or of every source when null)."""

    start = fields.DateTime(required=True)
    source = fields.String(required=True, allow_none=True)
    count = fields.Integer(required=True)


class SessionStatsSchema(_Open):
    """``GET /api/sessions/stats``: sessions started per bucket, newest bucket first."""

    bucket = fields.String(required=True, validate=validate.OneOf(("hour", "day")))
    by_source = fields.Boolean(required=True)
    counts = fields.List(fields.Nested(SessionCountSchema), required=True)
    total = fields.Integer(
        required=True, metadata={"description": "The sum of the counts answered."}
    )
    partial = fields.Boolean(
        required=True, metadata={"description": "True when older buckets were left out."}
    )


class PageCountSchema(_Open):
    """One of the top pages: its events, page views, clicks and distinct sessions."""

    page = fields.String(required=True)
    events = fields.Integer(required=True)
    views = fields.Integer(
        required=True,
        metadata={"description": "Events named page_view, pageview, visit or load."},
    )
    clicks = fields.Integer(required=True, metadata={"description": "Events named click."})
    sessions = fields.Integer(
        required=True, metadata={"description": "Distinct sessions of these events."}
    )


class TopPagesSchema(_Open):
    """``GET /api/events/pages``: the top pages, in the order asked for."""

    sort = fields.String(required=True)
    pages = fields.List(fields.Nested(PageCountSchema), required=True)
