"""The OpenAPI description of the usage-event wire interfaces: The Eye, Microticks, the
tracker demo and the Stats_usage WebSocket (`bot_logging_server.blueprints.eye`,
``microticks``, ``track``, ``stats_ws``).

These interfaces keep other systems' wire formats, so their shapes are written here as
plain JSON Schema rather than derived from our marshmallow schemas.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec

__all__ = ["add_interface_paths"]

_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_ANY: dict[str, Any] = {"description": "any JSON value"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _object(required: list[str] | None = None, **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


_STR = {"type": "string"}
_INT = {"type": "integer"}
_DRF_ERROR = _object(["detail"], detail=_STR)
_MT_ERROR = _object(["status"], error=_STR, description=_STR, status=_INT)
_TRACK_ERROR = _object(
    ["detail"],
    detail={
        "type": "array",
        "items": _object(
            ["loc", "msg", "type"],
            loc={"type": "array", "items": {"oneOf": [_STR, _INT]}},
            msg=_STR,
            type=_STR,
            ctx={"type": "object"},
        ),
    },
)
_EYE_EVENT = _object(
    ["session_id", "name"],
    session_id=_STR,
    category=_STR,
    name=_STR,
    data=_ANY,
    timestamp={"description": "%Y-%m-%d %H:%M:%S.%f, ISO 8601, or Unix (s or ms)"},
)
_EYE_PAGE = _object(
    ["next", "previous", "results"],
    next={"type": "string", "nullable": True},
    previous={"type": "string", "nullable": True},
    results={
        "type": "array",
        "items": _object(
            id=_INT,
            session_id=_STR,
            category={"type": "string", "nullable": True},
            name=_STR,
            data=_ANY,
            timestamp={"type": "string", "nullable": True, "description": "as sent"},
            event_at={"type": "string", "format": "date-time"},
            received_at={"type": "string", "format": "date-time"},
            time_valid={"type": "boolean"},
            clock_skew_ms={"type": "integer", "nullable": True},
            extra={"type": "object", "description": "keys beyond the Eye's five"},
        ),
    },
)
_EYE_PAGING = [
    {"in": "query", "name": "page", "schema": {"type": "integer", "minimum": 1}},
    {"in": "query", "name": "page_size", "schema": {"type": "integer", "minimum": 1}},
]
_MT_FILTERS = [
    {"in": "query", "name": "key", "required": True, "schema": _STR, "description": "token"},
    {"in": "query", "name": "user", "schema": _STR, "description": "or header X-User"},
    {"in": "query", "name": "ip", "schema": _STR},
    {"in": "query", "name": "date", "schema": _STR, "description": "prefix: 2017-08-25"},
    {"in": "query", "name": "consumer", "schema": _STR, "description": "a key's id or name"},
    {"in": "query", "name": "sort", "schema": _STR},
    {"in": "query", "name": "sort.desc", "schema": _STR},
    {"in": "query", "name": "limit", "schema": {"type": "integer", "minimum": 1}},
    {"in": "query", "name": "offset", "schema": {"type": "integer", "minimum": 0}},
]


def _form(required: list[str], **fields: Any) -> dict[str, Any]:
    return {"required": True, "content": {_FORM: {"schema": _object(required, **fields)}}}


def _eye_query(summary: str, *parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "tags": ["The Eye"],
            "security": [{"eye_token": [], "user": []}, {"user": [], "token": []}],
            "parameters": [*parameters, *_EYE_PAGING],
            "responses": {
                "200": _json("A page, newest first.", _EYE_PAGE),
                "400": _json("A bad parameter.", _DRF_ERROR),
                "401": _json("No or a wrong token.", _DRF_ERROR),
                "403": _json("An ingest key may not read.", _DRF_ERROR),
            },
        }
    }


def _query(name: str, required: bool = False, **schema: Any) -> dict[str, Any]:
    return {"in": "query", "name": name, "required": required, "schema": schema or _STR}


def add_interface_paths(spec: APISpec) -> None:
    """Describe The Eye, Microticks and the tracker demo in `spec`."""
    spec.components.security_scheme(
        "eye_token",
        {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Token <ingest key>, or Token <user token> with X-User",
        },
    )
    spec.components.security_scheme(
        "ingest_key_query", {"type": "apiKey", "in": "query", "name": "key"}
    )
    collector = {
        "post": {
            "summary": "The Eye: store one event (its session is added or updated).",
            "tags": ["The Eye"],
            "security": [{"eye_token": []}, {"eye_token": [], "user": []}],
            "requestBody": {"required": True, "content": {_JSON: {"schema": _EYE_EVENT}}},
            "responses": {
                "200": _json(
                    "A JSON string: Session with session_id:<id> added! (or updated!).", _STR
                ),
                "400": _json("The body cannot be stored (detail names the field).", _DRF_ERROR),
                "401": _json("No, a bad or an inactive token.", _DRF_ERROR),
            },
        }
    }
    spec.path(path="/eye/collector", operations=collector)
    spec.path(path="/eye/collector/", operations=collector)
    spec.path(
        path="/eye/event",
        operations=_eye_query("The Eye: one session's events.", _query("session_id", True)),
    )
    spec.path(
        path="/eye/category-events",
        operations=_eye_query("The Eye: the events of a category.", _query("category")),
    )
    spec.path(
        path="/eye/range-events",
        operations=_eye_query(
            "The Eye: the events from start to end (inclusive).", _query("start"), _query("end")
        ),
    )
    spec.path(
        path="/eye/invalid-time",
        operations=_eye_query(
            "The Eye: events with an unparseable or future timestamp.",
            _query("tolerance", type="number", minimum=0),
        ),
    )
    mt_errors = {
        "400": _json("A missing field, a bad key or session (the original's texts).", _MT_ERROR)
    }
    mt_read = {
        "200": _json("The listing.", _object(["status", "count"], status=_INT, count=_INT)),
        "400": _json("A bad filter.", _MT_ERROR),
        "401": _json("No or a wrong user token.", _MT_ERROR),
    }
    spec.path(
        path="/sessions",
        operations={
            "post": {
                "summary": "Microticks: start a session for a consumer (ingest) key.",
                "tags": ["Microticks"],
                "requestBody": _form(["consumer_key", "ts"], consumer_key=_STR, ts=_STR),
                "responses": {
                    "200": _json("Started.", _object(["status", "token"], status=_INT, token=_STR)),
                    **mt_errors,
                },
            },
            "get": {
                "summary": "Microticks: the user's sessions, with their clicks.",
                "tags": ["Microticks"],
                "parameters": _MT_FILTERS,
                "responses": mt_read,
            },
        },
    )
    spec.path(
        path="/sessions/stop",
        operations={
            "post": {
                "summary": "Microticks: stop a session.",
                "tags": ["Microticks"],
                "requestBody": _form(["ts", "token"], ts=_STR, token=_STR),
                "responses": {
                    "200": _json("Stopped.", _object(["status"], status=_INT)),
                    **mt_errors,
                },
            }
        },
    )
    spec.path(
        path="/events",
        operations={
            "post": {
                "summary": "Microticks: store an event in a session.",
                "tags": ["Microticks"],
                "requestBody": _form(
                    ["token", "action", "data", "ts"], token=_STR, action=_STR, data=_STR, ts=_STR
                ),
                "responses": {
                    "200": _json(
                        "Stored.", _object(["status", "event_id"], status=_INT, event_id=_INT)
                    ),
                    **mt_errors,
                },
            },
            "get": {
                "summary": "Microticks: the user's events.",
                "tags": ["Microticks"],
                "parameters": _MT_FILTERS,
                "responses": mt_read,
            },
        },
    )
    spec.path(
        path="/track",
        operations={
            "post": {
                "summary": "Tracker demo: store one event (load, scroll or click).",
                "tags": ["tracker"],
                "security": [{"ingest_key_query": []}, {}],
                "requestBody": {
                    "required": True,
                    "content": {
                        _JSON: {
                            "schema": _object(
                                ["_v", "timestamp", "order", "session_id", "action"],
                                _v={"type": "integer", "minimum": 1},
                                timestamp={"description": "ISO 8601, or Unix (s or ms)"},
                                order=_INT,
                                session_id={"type": "string", "format": "uuid"},
                                page=_STR,
                                action={"type": "string", "enum": ["load", "scroll", "click"]},
                                meta={"type": "string", "description": "JSON as a string"},
                                client_context={"type": "object"},
                                server_context={"type": "object"},
                            )
                        }
                    },
                },
                "responses": {
                    "200": _json("Stored: the body is null.", {"nullable": True}),
                    "401": _json("No key (and no keyless user), or a bad key.", _TRACK_ERROR),
                    "422": _json("Invalid fields, every one listed.", _TRACK_ERROR),
                },
            }
        },
    )
    # OpenAPI cannot describe WebSocket frames: docs/API.md does. (``GET /`` upgrades too.)
    spec.path(
        path="/ws",
        operations={
            "get": {
                "summary": "Stats_usage WebSocket (also at /): JSON actions, one reply each.",
                "description": "Frames and replies: docs/API.md, the Stats WebSocket.",
                "tags": ["Stats WebSocket"],
                "security": [{"ingest_key": []}, {}],
                "responses": {
                    "101": {"description": "Switching to the WebSocket protocol."},
                    "400": _json("Not a WebSocket handshake.", _object(["code"], code=_INT)),
                },
            }
        },
    )
