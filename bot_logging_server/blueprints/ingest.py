"""``POST /send_logs``: the log receiver (its wire contract is ``docs/API.md``).

The real client requests ``//send_logs`` (it joins host, ``/`` and ``/send_logs``), so
``/send_logs``, ``//send_logs`` and ``/send_logs/`` all reach this handler. `send_logs`
spells out the contract's order of checks, one step a line: the body's envelope (400), the
user and token (403), the rate limit (429), the batch size (413) and every field (400); the
batch is written in one transaction, and 200 is sent only after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from quart import Blueprint, Response

from bot_logging_server.auth import get_authenticator, header_token
from bot_logging_server.config import get_config
from bot_logging_server.errors import BadRequest, PayloadTooLarge, json_response
from bot_logging_server.json_body import read_json
from bot_logging_server.observe import note
from bot_logging_server.ratelimit import check_rate_limit
from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.ingest import load_batch, read_envelope, record_count
from bot_logging_server.storage import get_storage, utc_now

__all__ = ["PATHS", "bp", "send_logs"]

bp = Blueprint("ingest", __name__)

#: Every path the contract requires to reach the receiver.
PATHS = ("/send_logs", "//send_logs", "/send_logs/", "//send_logs/")

_P = ParamSpec("_P")
_T = TypeVar("_T")


async def send_logs() -> Response:
    """Store one batch; answer ``{"code": 200, ..., "added": N}`` after the commit.

    The first check that fails answers; nothing is written unless every check passed.
    """
    config = get_config()
    username, data = _or_400(read_envelope, await read_json())  # {"data": {"user": str}}
    user = await get_authenticator().authenticate(username, header_token())  # else 403
    records = record_count(data)
    await check_rate_limit(user.id, records)  # else 429, with Retry-After
    if records > config.max_records:
        raise PayloadTooLarge(f"data.logs: more than {config.max_records} records")
    rows = _or_400(load_batch, data, config.max_msg_chars)  # every other field
    added = await get_storage().insert_logs(user.id, rows, utc_now())  # one transaction
    note(records=added)  # metrics and the access log
    return json_response({"code": 200, "message": "Logs added successfully", "added": added})


def _or_400(parse: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """`parse`'s result; its `ValidationFailed` becomes a 400 with the same ``detail``."""
    try:
        return parse(*args, **kwargs)
    except ValidationFailed as exc:
        raise BadRequest(exc.detail) from None


for _path in PATHS:
    bp.add_url_rule(_path, view_func=send_logs, methods=["POST"], strict_slashes=False)
