"""``POST /send_logs``: the log receiver (its contract: ``docs/API.md``).

The real client requests ``//send_logs`` (it joins host, ``/`` and ``/send_logs``), so
``/send_logs``, ``//send_logs`` and ``/send_logs/`` all reach this handler. The checks run in
the contract's order: body shape (400), then the user and token (403), then batch size (413)
and every field (400); the batch is written in one transaction, and 200 is sent only after the
commit.
"""

from __future__ import annotations

from quart import Blueprint, Response

from bot_logging_server.auth import requires_batch_user
from bot_logging_server.config import get_config
from bot_logging_server.errors import BadRequest, PayloadTooLarge, json_response
from bot_logging_server.ratelimit import rate_limited
from bot_logging_server.schemas import ValidationFailed, load_batch
from bot_logging_server.storage import User, get_storage, utc_now

__all__ = ["PATHS", "bp", "send_logs"]

bp = Blueprint("ingest", __name__)

#: Every path the contract requires to reach the receiver.
PATHS = ("/send_logs", "//send_logs", "/send_logs/", "//send_logs/")


@requires_batch_user
@rate_limited
async def send_logs(user: User, data: dict) -> Response:
    """Store one batch for `user`; answer ``{"code": 200, ..., "added": N}`` after the commit."""
    config = get_config()
    logs = data.get("logs")
    if isinstance(logs, list) and len(logs) > config.max_records:
        raise PayloadTooLarge(f"data.logs: more than {config.max_records} records")
    try:
        batch = load_batch(data, config.max_msg_chars)
    except ValidationFailed as exc:
        raise BadRequest(exc.detail) from None
    added = await get_storage().insert_logs(user.id, batch.rows, utc_now())
    return json_response({"code": 200, "message": "Logs added successfully", "added": added})


for _path in PATHS:
    bp.add_url_rule(_path, view_func=send_logs, methods=["POST"], strict_slashes=False)
