"""``GET /healthz``: 200 ``{"code": 200, "message": "OK", "status": "ok", ...}`` when the
database answers, else the contract's 503."""

from __future__ import annotations

from quart import Blueprint, Response

from bot_logging_server.errors import json_response
from bot_logging_server.storage import get_storage

__all__ = ["bp", "healthz"]

bp = Blueprint("health", __name__)


@bp.get("/healthz")
async def healthz() -> Response:
    """Ping the database; `StorageUnavailable` becomes the contract's 503."""
    storage = get_storage()
    await storage.ping()
    return json_response({"code": 200, "message": "OK", "status": "ok", "storage": storage.name})
