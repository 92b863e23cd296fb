"""The HTTP surface, one blueprint per capability.

* `ingest`: ``POST /send_logs`` (the wire contract);
* `users`: ``POST /create_user`` (the original's, off without an API key);
* `health`: ``GET /healthz``;
* `read`: ``/api/logs``, ``/api/logs/export``, ``/api/stats``, ``/api/tail`` (reading).
"""

from __future__ import annotations

from quart import Quart

from bot_logging_server.blueprints import health, ingest, read, users

__all__ = ["register_blueprints"]


def register_blueprints(app: Quart) -> None:
    """Register every blueprint on `app`."""
    for module in (ingest, users, health, read):
        app.register_blueprint(module.bp)
