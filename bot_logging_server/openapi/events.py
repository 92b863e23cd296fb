"""The OpenAPI description of the native usage-events API: ``/api/events`` (write, read),
``/api/sessions``, and their counts (``/api/events/stats``, ``/api/events/pages``,
``/api/sessions/stats``).

Kept beside the rest of the document (`bot_logging_server.openapi.build_spec` calls
`add_event_paths`); the request shapes are those of `bot_logging_server.schemas.events_api`,
the answers those of `bot_logging_server.openapi.responses`.
"""

from __future__ import annotations

from apispec import APISpec

from bot_logging_server.openapi import responses
from bot_logging_server.openapi.operations import (
    IDEMPOTENCY_KEY,
    JSON,
    READ_SECURITY,
    error,
    json_read,
    read_operation,
)
from bot_logging_server.schemas import events_api

__all__ = ["add_event_paths"]


def add_event_paths(spec: APISpec) -> None:
    """Describe the native usage-events API in `spec`: ``/api/events`` (write, read),
    sessions, stats."""
    post = {
        "summary": f"Store a batch of up to {events_api.MAX_BATCH} usage events (one transaction).",
        "description": "With an ingest key (header X-Ingest-Key or ?key=), or a user's "
        "token as the read endpoints take it. Browsers may post from any origin (CORS).",
        "tags": ["events"],
        "security": [{"ingest_key": []}, *READ_SECURITY],
        "parameters": [IDEMPOTENCY_KEY],
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": events_api.EventsBodySchema}},
        },
        "responses": {
            "200": {
                "description": "Stored (after the commit).",
                "content": {JSON: {"schema": responses.EventsResultSchema}},
            },
            "400": error("The batch can never be stored as sent (detail says why)."),
            "403": error("Unknown or disabled key, or wrong user/token pair."),
            "413": error(f"Body over the limit, or more than {events_api.MAX_BATCH} events."),
            "422": error("The Idempotency-Key was used for another request."),
            "429": error("Over the rate limit; retry after Retry-After."),
            "503": error("The database is unavailable; retry after Retry-After."),
        },
    }
    listing = read_operation(
        "One page of the user's events (keyset pagination).",
        events_api.EventsQuerySchema,
        {"description": "A page.", "content": {JSON: {"schema": responses.EventPageSchema}}},
        tag="events",
    )
    spec.path(path="/api/events", operations={"post": post, "get": listing})
    json_read(
        spec,
        "/api/sessions",
        "One page of the user's sessions (keyset pagination).",
        events_api.SessionsQuerySchema,
        responses.SessionPageSchema,
        "A page.",
        tag="events",
    )
    json_read(
        spec,
        "/api/events/stats",
        "Counts per event name per time bucket of event_at.",
        events_api.EventStatsQuerySchema,
        responses.EventStatsSchema,
        "The counts.",
        tag="events",
    )
    json_read(
        spec,
        "/api/events/pages",
        "The top pages: events, views, clicks and sessions per page, counted in SQL.",
        events_api.EventPagesQuerySchema,
        responses.TopPagesSchema,
        "The pages.",
        tag="events",
    )
    json_read(
        spec,
        "/api/sessions/stats",
        "Sessions started per time bucket of started_at (per source on request).",
        events_api.SessionStatsQuerySchema,
        responses.SessionStatsSchema,
        "The counts.",
        tag="events",
    )
