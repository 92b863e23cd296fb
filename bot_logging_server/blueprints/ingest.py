"""``POST /send_logs``: the log receiver (its wire contract is ``docs/API.md``).

The real client requests ``//send_logs`` (it joins host, ``/`` and ``/send_logs``), so
``/send_logs``, ``//send_logs`` and ``/send_logs/`` all reach this handler. `send_logs`
spells out the contract's order of checks, one step a line: the address's lockout (429), the
body's envelope (400), the user and token (403), the rate limit (429), the batch size (413)
and every field (400); the batch is written in one transaction, and 200 is sent only after
the commit.

What a request costs before its user is known is bounded: a token that can never match
(missing, or not 32 hex digits) gets at most `TOKENLESS_BODY_BYTES` of its body read, enough
to answer a malformed small body 400 as the order of checks says, and a larger one 403
without reading the rest; a body over `bot_logging_server.offload.OFFLOAD_BYTES` is parsed
(and validated) in the helper process, never on the event loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from quart import Blueprint, Response

from bot_logging_server.auth import get_authenticator, header_token
from bot_logging_server.config import Config, get_config
from bot_logging_server.errors import BadRequest, Forbidden, PayloadTooLarge, json_response
from bot_logging_server.json_body import read_body
from bot_logging_server.observe import note
from bot_logging_server.offload import OFFLOAD_BYTES, get_offload
from bot_logging_server.ratelimit import check_rate_limit
from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.ingest import Batch, prepare_batch, read_batch
from bot_logging_server.storage import get_storage, utc_now
from bot_logging_server.tokens import normal_token

__all__ = ["PATHS", "TOKENLESS_BODY_BYTES", "bp", "send_logs"]

bp = Blueprint("ingest", __name__)

#: Every path the contract requires to reach the receiver.
PATHS = ("/send_logs", "//send_logs", "/send_logs/", "//send_logs/")
#: How much of the body is read when the token can never match (then: 403).
TOKENLESS_BODY_BYTES = 64 * 1024

_P = ParamSpec("_P")
_T = TypeVar("_T")


async def send_logs() -> Response:
    """Store one batch; answer ``{"code": 200, ..., "added": N}`` after the commit.

    The first check that fails answers; nothing is written unless every check passed.
    """
    config = get_config()
    token = header_token()
    await _screen(token)  # a locked-out address: 429 before the body is read
    raw = await read_body(None if normal_token(token) else TOKENLESS_BODY_BYTES)
    if raw is None:
        raise Forbidden()  # no usable token and over 64 KiB: the rest is never read
    batch = await _read_batch(raw, config)  # {"data": {"user": str}}, else 400
    user = await get_authenticator().authenticate(batch.username, token)  # else 403
    await check_rate_limit(user.id, batch.records)  # else 429, with Retry-After
    if batch.records > config.max_records:
        raise PayloadTooLarge(f"data.logs: more than {config.max_records} records")
    rows = _or_400(batch.rows)  # every other field
    added = await get_storage().insert_logs(user.id, rows, utc_now())  # one transaction
    note(records=added)  # metrics and the access log
    return json_response({"code": 200, "message": "Logs added successfully", "added": added})


async def _screen(token: str | None) -> None:
    """The lockout of the client's address, checked before anything is read.

    A missing or malformed token is let through here: the order of checks answers it 400 or
    403 once the body's envelope is read.
    """
    with contextlib.suppress(Forbidden):
        await get_authenticator().screen(token)


async def _read_batch(raw: bytes, config: Config) -> Batch:
    """The body's envelope (step 1, else 400): read here, or for a large body in the helper
    process, which validates its records there too (answered later, in order)."""
    if len(raw) <= OFFLOAD_BYTES:
        return _or_400(read_batch, raw, config.max_msg_chars)
    try:
        return await get_offload().run(prepare_batch, raw, config.max_records, config.max_msg_chars)
    except ValidationFailed as exc:
        raise BadRequest(exc.detail) from None


def _or_400(parse: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """`parse`'s result; its `ValidationFailed` becomes a 400 with the same ``detail``."""
    try:
        return parse(*args, **kwargs)
    except ValidationFailed as exc:
        raise BadRequest(exc.detail) from None


for _path in PATHS:
    bp.add_url_rule(_path, view_func=send_logs, methods=["POST"], strict_slashes=False)
