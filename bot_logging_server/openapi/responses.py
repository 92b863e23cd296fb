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
    "HealthSchema",
    "LevelCountSchema",
    "LogPageSchema",
    "SendLogsResultSchema",
    "StatsSchema",
    "StoredLogSchema",
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
