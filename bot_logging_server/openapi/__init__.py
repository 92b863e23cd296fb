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
from bot_logging_server.openapi.events import add_event_paths
from bot_logging_server.openapi.interfaces import add_interface_paths
from bot_logging_server.openapi.operations import (
    IDEMPOTENCY_KEY,
    JSON,
    READ_SECURITY,
    error,
    json_read,
    read_operation,
)
from bot_logging_server.schemas import accounts, ingest, query, values

__all__ = ["build_spec"]

_PROTOBUF = "application/x-protobuf"
_FORM = "application/x-www-form-urlencoded"


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
    if isinstance(field, accounts.WholeNumber):
        return {
            "oneOf": [
                {"type": "integer", "format": "int64"},
                {"type": "string", "pattern": "^[+-]?[0-9]{1,20}$"},
            ]
        }
    if isinstance(field, query.Cursor):
        return {"type": "string"}
    if isinstance(field, query.SearchText):
        return {"type": "string", "maxLength": query.MAX_Q_CHARS}
    if isinstance(field, values.Message):
        return {"description": "any JSON value; a non-string is stored as its JSON text"}
    return {}


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
                "(also reached as //send_logs and /send_logs/, as the real client requests), "
                "or OpenTelemetry logs to /v1/logs; "
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
        "basic", {"type": "http", "scheme": "basic", "description": "user:token"}
    )
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
                "security": [{"token": []}, {"basic": []}],
                "parameters": [IDEMPOTENCY_KEY],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": ingest.SendLogsBodySchema},
                        _FORM: {
                            "schema": {
                                "type": "object",
                                "description": "One record of Python's "
                                "logging.handlers.HTTPHandler (with basic auth user:token): "
                                "levelno, msg, args, created, process, processName, name, "
                                "exc_text, stack_info.",
                            }
                        },
                    },
                },
                "responses": {
                    "200": {
                        "description": "Stored (after the commit).",
                        "content": {JSON: {"schema": responses.SendLogsResultSchema}},
                    },
                    "400": error("The batch can never be stored as sent (detail says why)."),
                    "403": error("data.user and X-User-Token do not match an active user."),
                    "413": error("Body or batch over the configured limit."),
                    "422": error("The Idempotency-Key was used for another batch."),
                    "429": error(
                        "Over a rate limit, or locked out after too many failed token "
                        "checks; retry after Retry-After."
                    ),
                    "503": error(
                        "The database is unavailable, or the server holds as many requests "
                        "or request bodies as it takes; retry after Retry-After."
                    ),
                },
            }
        },
    )
    spec.path(
        path="/v1/logs",
        operations={
            "post": {
                "summary": "Store OpenTelemetry log records (OTLP/HTTP, protobuf or JSON).",
                "tags": ["ingest"],
                "security": [*READ_SECURITY, {"basic": []}],
                "parameters": [IDEMPOTENCY_KEY],
                "requestBody": {
                    "required": True,
                    "content": {
                        _PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                        JSON: {
                            "schema": {
                                "type": "object",
                                "description": "An ExportLogsServiceRequest in OTLP/JSON.",
                            }
                        },
                    },
                },
                "responses": {
                    "200": {
                        "description": "An ExportLogsServiceResponse in the request's "
                        "encoding: empty, or partialSuccess {rejectedLogRecords, errorMessage}.",
                        "content": {
                            _PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                            JSON: {"schema": {"type": "object"}},
                        },
                    },
                    "400": error(
                        "Not an ExportLogsServiceRequest (a protobuf request gets a "
                        "google.rpc.Status)."
                    ),
                    "403": error("The user and token do not match an active user."),
                    "413": error("Body (also once decompressed) or records over the limit."),
                    "415": error("Not protobuf or JSON, or not gzip/deflate compressed."),
                    "422": error("The Idempotency-Key was used for another request."),
                    "429": error("Over a rate limit; retry after Retry-After."),
                    "503": error("The database is unavailable; retry after Retry-After."),
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
                        "content": {JSON: {"schema": accounts.CreateUserSchema}},
                    },
                    "responses": {
                        "200": {
                            "description": "Created; the token is shown this once.",
                            "content": {JSON: {"schema": responses.CreateUserResultSchema}},
                        },
                        "400": error("Invalid body."),
                        "403": error("Wrong X-Api-Key."),
                        "404": error("No API key configured: the endpoint is off."),
                        "409": error("The user exists."),
                    },
                }
            },
        )
    spec.path(
        path="/healthz",
        operations={
            "get": {
                "summary": "Does the database answer and take writes?",
                "tags": ["operations"],
                "responses": {
                    "200": {
                        "description": "Yes.",
                        "content": {JSON: {"schema": responses.HealthSchema}},
                    },
                    "503": error("No: the detail names the fault; retry after Retry-After."),
                },
            }
        },
    )
    spec.path(
        path="/api/logs",
        operations={
            "get": read_operation(
                "One page of the user's records, newest first (keyset pagination).",
                query.LogsQuerySchema,
                {"description": "A page.", "content": {JSON: {"schema": responses.LogPageSchema}}},
                limited="reads",
            )
        },
    )
    spec.path(
        path="/api/logs/export",
        operations={
            "get": read_operation(
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
                limited="reads",
            )
        },
    )
    json_read(
        spec,
        "/api/stats",
        "Counts per level per time bucket of event_at (for a histogram).",
        query.StatsQuerySchema,
        responses.StatsSchema,
        "The counts.",
        limited="reads",
    )
    spec.path(
        path="/api/tail",
        operations={
            "get": read_operation(
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
                limited="tails",
            )
        },
    )
    spec.path(
        path="/api/suggest",
        operations={
            "get": read_operation(
                "Completions for process (p_name) or logger (p_description): the user's "
                "distinct values starting with prefix, among their newest 20 000 records.",
                query.SuggestQuerySchema,
                {
                    "description": "Up to 20 values, sorted.",
                    "content": {JSON: {"schema": responses.SuggestSchema}},
                },
                limited="reads",
            )
        },
    )
    spec.path(
        path="/api/session",
        operations={
            "post": {
                "summary": "Sign in with a password: the token md5(user + password), when it "
                "is the user's token.",
                "tags": ["read"],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": accounts.SessionBodySchema}},
                },
                "responses": {
                    "200": {
                        "description": "The user's token (send it as X-User-Token).",
                        "content": {JSON: {"schema": responses.SessionTokenSchema}},
                    },
                    "400": error("The body is not {user, password} (detail says why)."),
                    "403": error("Unknown user, wrong password, or disabled user."),
                    "429": error(
                        "Locked out after too many failed checks; retry after Retry-After."
                    ),
                    "503": error("The database is unavailable; retry after Retry-After."),
                },
            }
        },
    )
    add_event_paths(spec)
    add_alert_paths(spec)
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
        ("/tracker.js", "The usage tracker for web pages (JavaScript; any origin may load it)."),
        ("/demo", "A demo page wired with /tracker.js; ?key= is the ingest key it sends with."),
        ("/demo/{page}", "Another page of the demo (page: a-z, 0-9 and -, 1-32 characters)."),
    ):
        operation: dict[str, Any] = {
            "summary": summary,
            "tags": ["documentation" if path == "/docs" else "viewer"],
            "responses": {
                "200": {"description": "The file.", "content": {"text/html": {}}},
                "404": error("No such file."),
            },
        }
        for name in ("filename", "page"):
            if "{" + name + "}" in path:
                operation["parameters"] = [
                    {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
                ]
        if path.startswith("/demo"):
            operation["parameters"] = [
                *operation.get("parameters", []),
                {
                    "in": "query",
                    "name": "key",
                    "required": False,
                    "schema": {"type": "string", "pattern": "^[0-9A-Fa-f]{1,64}$"},
                    "description": "An ingest key (anything else is ignored).",
                },
            ]
        spec.path(path=path, operations={"get": operation})
    add_interface_paths(spec)
    return spec.to_dict()
