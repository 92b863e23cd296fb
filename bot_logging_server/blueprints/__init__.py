"""The HTTP surface, one blueprint per capability.

* `ingest`: ``POST /send_logs`` (the wire contract; also Python's ``HTTPHandler``);
* `otlp`: ``POST /v1/logs`` (OpenTelemetry logs, OTLP/HTTP);
* `users`: ``POST /create_user`` (the original's, off without an API key);
* `health`: ``GET /healthz``;
* `read`: ``/api/logs``, ``/api/logs/export``, ``/api/stats``, ``/api/tail``,
  ``/api/suggest`` (reading);
* `session`: ``POST /api/session`` (a password's token, for the viewer's sign-in);
* `alerts`: ``/api/alerts`` (a user's alert rules and their deliveries);
* `events`: ``/api/events`` (write a batch, read), ``/api/sessions``, ``/api/events/stats``;
* `docs`: ``/openapi.json`` and ``/docs``;
* `viewer`: the web log viewer at ``/`` and its files under ``/static/``;
* the usage-event wire interfaces, each only translating its wire format to the common
  event model (`bot_logging_server.events`): `eye` (``/eye/...``), `microticks`
  (``/sessions``, ``/sessions/stop``, ``/events``), `track` (``/track``) and `stats_ws`
  (the Stats_usage WebSocket at ``/`` and ``/ws``).
"""

from __future__ import annotations

from quart import Quart

from bot_logging_server.blueprints import (
    alerts,
    docs,
    events,
    eye,
    health,
    ingest,
    microticks,
    otlp,
    read,
    session,
    stats_ws,
    track,
    users,
    viewer,
)
from bot_logging_server.config import Config

__all__ = ["register_blueprints"]


def register_blueprints(app: Quart, config: Config) -> None:
    """Register every blueprint on `app`; ``/create_user`` only when an API key is set."""
    for module in (
        ingest,
        otlp,
        health,
        read,
        session,
        alerts,
        events,
        docs,
        viewer,
        eye,
        microticks,
        track,
        stats_ws,
    ):
        app.register_blueprint(module.bp)
    if config.api_key:
        app.register_blueprint(users.bp)
