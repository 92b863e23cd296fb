"""The OpenAPI 3 description of every endpoint, generated from the marshmallow schemas.

`build_spec()` feeds the request schemas of `bot_logging_server.schemas` and the answer
schemas of `bot_logging_server.openapi.responses` to apispec, so the shapes documented at
``/openapi.json`` (and rendered at ``/docs``) are the ones the server validates with and the
tests check answers against.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields

from bot_logging_server.openapi import responses
from bot_logging_server.openapi.alerts import add_alert_paths
from bot_logging_server.openapi.interfaces import add_interface_paths
from bot_logging_server.schemas import accounts, events, ingest, query, values

__all__ = ["build_spec"]

_JSON = "application/json"
_READ_SECURITY = [{"user": [], "token": []}, {"user": [], "bearer": []}]


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": responses.ErrorSchema}}}


def _custom_field(converter: Any, field: fields.Field, **kwargs: Any) -> dict[str, Any]:
    """OpenAPI for our own fields (levels, timestamps, any-JSON messages, cursors)."""
    if isinstance(field, values.Level):
        return {
            "oneOf": [
                {"type": "integer", "minimum": 0, "maximum": 100},
                {
                    "type": "string",
                    "description": "digits, or one of " + ", ".join(values.LEVEL_NAMES),
                },
            ]
        }
    if isinstance(field, values.Timestamp):
        return {"type": "string", "format": "date-time"}
    if isinstance(field, values.CutString):
        return {"type": "string", "description": "cut to 255 characters, never refused"}
    if isinstance(field, values.BigInt):
        return {"type": "integer", "format": "int64"}
    if isinstance(field, query.Cursor):
        return {"type": "string"}
    if isinstance(field, values.Message):
        return {"description": "any JSON value; a non-string is stored as its JSON text"}
    return {}


def _read_operation(
    summary: str, query: type, ok: dict[str, Any], tag: str = "read", **extra: Any
) -> dict:
    return {
        "summary": summary,
        "tags": [tag],
        "security": _READ_SECURITY,
        "parameters": [{"in": "query", "schema": query}, *extra.pop("parameters", [])],
        "responses": {
            "200": ok,
            "400": _error("A query parameter is invalid (detail names it)."),
            "403": _error("Unknown user, wrong, missing or malformed token, or disabled user."),
            "503": _error("The database is unavailable; retry after Retry-After."),
        },
        **extra,
    }


def build_spec(version: str, create_user: bool = True) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the server (`version` is the server's).

    ``/create_user`` is described only when `create_user` (the endpoint is on).
    """
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="bot-logging-server",
        version=version,
        openapi_version="3.0.3",
        plugins=[plugin],
        info={
            "description": (
                "Self-hosted collector of log batches. Clients POST batches to /send_logs "
                "(also reached as //send_logs and /send_logs/, as the real client requests); "
                "each user reads, exports, charts and tails only their own records under "
                "/api. Every error answers {code, message[, detail]}."
            )
        },
    )
    plugin.converter.add_attribute_function(_custom_field)
    spec.components.security_scheme(
        "user", {"type": "apiKey", "in": "header", "name": "X-User", "description": "user name"}
    )
    spec.components.security_scheme(
        "token",
        {"type": "apiKey", "in": "header", "name": "X-User-Token", "description": "32 hex"},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme(
        "api_key", {"type": "apiKey", "in": "header", "name": "X-Api-Key"}
    )
    spec.components.security_scheme(
        "ingest_key",
        {
            "type": "apiKey",
            "in": "header",
            "name": "X-Ingest-Key",
            "description": "An ingest key (python3 app.py keys add USER NAME): writes events "
            "only. Also accepted as the query parameter key.",
        },
    )
    for schema in (
        responses.ErrorSchema,
        responses.StoredLogSchema,
        responses.LogPageSchema,
        responses.StatsSchema,
        responses.StoredEventSchema,
        responses.SessionSchema,
    ):
        spec.components.schema(schema.__name__.removesuffix("Schema"), schema=schema)

    spec.path(
        path="/send_logs",
        operations={
            "post": {
                "summary": "Store a batch of log records (the wire contract).",
                "tags": ["ingest"],
                "security": [{"token": []}],
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": ingest.SendLogsBodySchema}},
                },
                "responses": {
                    "200": {
                        "description": "Stored (after the commit).",
                        "content": {_JSON: {"schema": responses.SendLogsResultSchema}},
                    },
                    "400": _error("The batch can never be stored as sent (detail says why)."),
                    "403": _error("data.user and X-User-Token do not match an active user."),
                    "413": _error("Body or batch over the configured limit."),
                    "503": _error("The database is unavailable; retry after Retry-After."),
                },
            }
        },
    )
    if create_user:
        spec.path(
            path="/create_user",
            operations={
                "post": {
                    "summary": "Create a user (only when an API key is configured).",
                    "tags": ["users"],
                    "security": [{"api_key": []}],
                    "requestBody": {
                        "required": True,
                        "content": {_JSON: {"schema": accounts.CreateUserSchema}},
                    },
                    "responses": {
                        "200": {
                            "description": "Created; the token is shown this once.",
                            "content": {_JSON: {"schema": responses.CreateUserResultSchema}},
                        },
                        "400": _error("Invalid body."),
                        "403": _error("Wrong X-Api-Key."),
                        "404": _error("No API key configured: the endpoint is off."),
                        "409": _error("The user exists."),
                    },
                }
            },
        )
    spec.path(
        path="/healthz",
        operations={
            "get": {
                "summary": "Is the database answering?",
                "tags": ["operations"],
                "responses": {
                    "200": {
                        "description": "Yes.",
                        "content": {_JSON: {"schema": responses.HealthSchema}},
                    },
                    "503": _error("No."),
                },
            }
        },
    )
    spec.path(
        path="/api/logs",
        operations={
            "get": _read_operation(
                "One page of the user's records, newest first (keyset pagination).",
                query.LogsQuerySchema,
                {"description": "A page.", "content": {_JSON: {"schema": responses.LogPageSchema}}},
            )
        },
    )
    spec.path(
        path="/api/logs/export",
        operations={
            "get": _read_operation(
                "Every matching record, newest first, streamed as NDJSON or CSV.",
                query.ExportQuerySchema,
                {
                    "description": "The records: NDJSON lines are StoredLogSchema objects; "
                    "CSV has a header row with the same names.",
                    "content": {
                        "application/x-ndjson": {"schema": {"type": "string"}},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
            )
        },
    )
    spec.path(
        path="/api/stats",
        operations={
            "get": _read_operation(
                "Counts per level per time bucket of event_at (for a histogram).",
                query.StatsQuerySchema,
                {
                    "description": "The counts.",
                    "content": {_JSON: {"schema": responses.StatsSchema}},
                },
            )
        },
    )
    spec.path(
        path="/api/tail",
        operations={
            "get": _read_operation(
                "Live tail: new matching records as Server-Sent Events.",
                query.LogQuerySchema,
                {
                    "description": "An event stream; each event has `id:` (resume point) and "
                    "`data:` (one StoredLogSchema object as JSON). Comment lines keep the "
                    "connection alive.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                parameters=[
                    {
                        "in": "header",
                        "name": "Last-Event-ID",
                        "schema": {"type": "integer", "minimum": 0},
                        "description": "Resume after this record id (sent by EventSource).",
                    }
                ],
            )
        },
    )
    _event_paths(spec)
    add_alert_paths(spec, _error("An error."))
    spec.path(
        path="/openapi.json",
        operations={
            "get": {
                "summary": "This document.",
                "tags": ["documentation"],
                "responses": {"200": {"description": "OpenAPI 3.0 JSON."}},
            }
        },
    )
    for path, summary in (
        ("/docs", "This document, rendered (HTML; every asset served locally)."),
        ("/", "The web log viewer (HTML)."),
        ("/static/{filename}", "The viewer's files (JavaScript, CSS)."),
    ):
        operation: dict[str, Any] = {
            "summary": summary,
            "tags": ["documentation" if path == "/docs" else "viewer"],
            "responses": {
                "200": {"description": "The file.", "content": {"text/html": {}}},
                "404": _error("No such file."),
            },
        }
        if "{filename}" in path:
            operation["parameters"] = [
                {"in": "path", "name": "filename", "required": True, "schema": {"type": "string"}}
            ]
        spec.path(path=path, operations={"get": operation})
    add_interface_paths(spec)
    return spec.to_dict()


def _event_paths(spec: APISpec) -> None:
    """The native usage-events API: ``/api/events`` (write, read), sessions, stats."""
    post = {
        "summary": "Store a batch of up to 1000 usage events (one transaction).",
        "description": "With an ingest key (header X-Ingest-Key or ?key=), or a user's "
        "token as the read endpoints take it. Browsers may post from any origin (CORS).",
        "tags": ["events"],
        "security": [{"ingest_key": []}, *_READ_SECURITY],
        "requestBody": {
            "required": True,
            "content": {_JSON: {"schema": events.EventsBodySchema}},
        },
        "responses": {
            "200": {
                "description": "Stored (after the commit).",
                "content": {_JSON: {"schema": responses.EventsResultSchema}},
            },
            "400": _error("The batch can never be stored as sent (detail says why)."),
            "403": _error("Unknown or disabled key, or wrong user/token pair."),
            "413": _error("Body over the limit, or more than 1000 events."),
            "429": _error("Over the rate limit; retry after Retry-After."),
            "503": _error("The database is unavailable; retry after Retry-After."),
        },
    }
    listing = _read_operation(
        "One page of the user's events (keyset pagination).",
        events.EventsQuerySchema,
        {"description": "A page.", "content": {_JSON: {"schema": responses.EventPageSchema}}},
        tag="events",
    )
    spec.path(path="/api/events", operations={"post": post, "get": listing})
    spec.path(
        path="/api/sessions",
        operations={
            "get": _read_operation(
                "One page of the user's sessions (keyset pagination).",
                events.SessionsQuerySchema,
                {
                    "description": "A page.",
                    "content": {_JSON: {"schema": responses.SessionPageSchema}},
                },
                tag="events",
            )
        },
    )
    spec.path(
        path="/api/events/stats",
        operations={
            "get": _read_operation(
                "Counts per event name per time bucket of event_at.",
                events.EventStatsQuerySchema,
                {
                    "description": "The counts.",
                    "content": {_JSON: {"schema": responses.EventStatsSchema}},
                },
                tag="events",
            )
        },
    )
