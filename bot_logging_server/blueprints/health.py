"""``GET /healthz``: 200 ``{"code": 200, "message": "OK", "status": "ok", ...}`` when the
database takes writes, else the contract's 503 with a ``detail`` naming the fault."""

from __future__ import annotations

import logging

from quart import Blueprint, Response

from bot_logging_server.errors import ServiceUnavailable, faults, json_response
from bot_logging_server.storage import StorageUnavailable, get_storage

__all__ = ["bp", "healthz"]

bp = Blueprint("health", __name__)


@bp.get("/healthz")
async def healthz() -> Response:
    """Check that the database answers and takes writes (`Storage.check_health`).

    A fault (unreachable, disk full, read-only, a write past its deadline) is a 503 with
    ``Retry-After`` whose ``detail`` names it, for monitoring.
    """
    storage = get_storage()
    try:
        await storage.check_health()
    except StorageUnavailable as exc:
        faults.log(logging.WARNING, str(exc), "database unavailable: %s", exc)
        raise ServiceUnavailable(f"storage: {exc}") from None
    return json_response({"code": 200, "message": "OK", "status": "ok", "storage": storage.name})
