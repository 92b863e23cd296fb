"""The OpenAPI description of ``/api/alerts``, and the shapes of its answers.

Kept beside the rest of the document (`bot_logging_server.openapi.build_spec` calls
`add_alert_paths`); the tests load real answers through these schemas.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from marshmallow import EXCLUDE, Schema, fields

from bot_logging_server.openapi.operations import JSON, READ_SECURITY, error
from bot_logging_server.schemas.alerts import ALERT_CHANNELS, AlertRuleSchema

__all__ = [
    "AlertCreatedSchema",
    "AlertDeletedSchema",
    "AlertListSchema",
    "AlertSchema",
    "add_alert_paths",
]

_STATUSES = ("sent", "retrying", "failed")


class _Open(Schema):
    class Meta:
        unknown = EXCLUDE


class AlertSchema(_Open):
    """One rule as ``GET /api/alerts`` answers it (times ISO 8601 UTC with ``Z``)."""

    id = fields.Integer(required=True)
    level = fields.Integer(required=True, metadata={"example": 40})
    level_name = fields.String(required=True, metadata={"example": "ERROR"})
    p_name = fields.String(required=True, allow_none=True)
    p_description = fields.String(required=True, allow_none=True)
    text = fields.String(required=True, allow_none=True)
    channel = fields.String(required=True, metadata={"enum": list(ALERT_CHANNELS)})
    url = fields.String(required=True, allow_none=True)
    description = fields.String(
        required=True, metadata={"example": "level >= ERROR, process billing"}
    )
    created_at = fields.DateTime(required=True)
    last_status = fields.String(
        required=True,
        allow_none=True,
        metadata={"enum": [*_STATUSES, None], "description": "The last delivery's outcome."},
    )
    last_error = fields.String(required=True, allow_none=True)
    last_attempt_at = fields.DateTime(required=True, allow_none=True)
    last_sent_at = fields.DateTime(required=True, allow_none=True)
    pending = fields.Integer(
        required=True,
        metadata={"description": "Messages not delivered yet (gathering, sending, retrying)."},
    )


class AlertListSchema(_Open):
    """``GET /api/alerts``: the user's rules, oldest first."""

    alerts = fields.List(fields.Nested(AlertSchema), required=True)


class AlertCreatedSchema(_Open):
    """``POST /api/alerts`` (201): the rule, and a webhook's signing secret (shown once)."""

    alert = fields.Nested(AlertSchema, required=True)
    secret = fields.String(
        metadata={"description": "Webhook rules only: the HMAC-SHA256 key, 64 hex characters."}
    )


class AlertDeletedSchema(_Open):
    """``DELETE /api/alerts/{rule_id}``: the id removed."""

    deleted = fields.Integer(required=True)


def _answer(description: str, schema: type[Schema]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def add_alert_paths(spec: APISpec) -> None:
    """Describe ``/api/alerts`` in `spec`."""
    common = {
        "403": error("Unknown user, wrong, missing or malformed token, or disabled user."),
        "503": error("The database is unavailable; retry after Retry-After."),
    }
    for schema in (AlertSchema,):
        spec.components.schema(schema.__name__.removesuffix("Schema"), schema=schema)
    spec.path(
        path="/api/alerts",
        operations={
            "get": {
                "summary": "The user's alert rules, each with its delivery state.",
                "tags": ["alerts"],
                "security": READ_SECURITY,
                "responses": {"200": _answer("The rules.", AlertListSchema), **common},
            },
            "post": {
                "summary": "Make an alert rule (Telegram or a signed webhook).",
                "tags": ["alerts"],
                "security": READ_SECURITY,
                "requestBody": {"required": True, "content": {JSON: {"schema": AlertRuleSchema}}},
                "responses": {
                    "201": _answer(
                        "Made; a webhook's secret is shown this once.", AlertCreatedSchema
                    ),
                    "400": error("Invalid rule, or Telegram for a user without tel_id."),
                    "409": error("The user has as many rules as allowed (100)."),
                    **common,
                },
            },
        },
    )
    spec.path(
        path="/api/alerts/{rule_id}",
        operations={
            "delete": {
                "summary": "Remove an alert rule and its messages not sent yet.",
                "tags": ["alerts"],
                "security": READ_SECURITY,
                "parameters": [
                    {
                        "in": "path",
                        "name": "rule_id",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
                "responses": {
                    "200": _answer("Removed.", AlertDeletedSchema),
                    "404": error("The user has no such rule."),
                    **common,
                },
            }
        },
    )
