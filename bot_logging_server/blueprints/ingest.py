"""``POST /send_logs``: the log receiver (its wire contract is ``docs/API.md``).

The real client requests ``//send_logs`` (it joins host, ``/`` and ``/send_logs``), so
``/send_logs``, ``//send_logs`` and ``/send_logs/`` all reach this handler. `send_logs`
spells out the contract's order of checks, one step a line: the address's lockout (429), the
body's envelope (400), the user and token (403), the rate limit (429), the batch size (413)
and every field (400); the batch is written in one transaction, and 200 is sent only after
the commit. A batch sent with an ``Idempotency-Key`` already committed is answered its first
answer and stored once (`bot_logging_server.idempotency`).

What a request costs before its user is known is bounded: a token that can never match
(missing, or not 32 hex digits) gets at most `TOKENLESS_BODY_BYTES` of its body read, enough
to answer a malformed small body 400 as the order of checks says, and a larger one 403
without reading the rest; a body over `bot_logging_server.offload.OFFLOAD_BYTES` is parsed
(and validated) in the helper process, never on the event loop.

The usual request (a JSON batch from a token verified lately, that passes every check) is
served below Quart, by `bot_logging_server.lanes.send_logs`, with the same functions and the
same answer; everything else, every refusal included, is answered here.

Python's ``logging.handlers.HTTPHandler`` pointed at ``/send_logs`` (``method="POST"``,
``credentials=(user, token)``) works too: a form-encoded body with basic auth is one record
of that handler, read by `send_form_record` (`bot_logging_server.schemas.form_record`).
Without basic auth a form-encoded body is read as JSON, as any other (``curl -d`` sends JSON
under that content type).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from quart import Blueprint, Response, request

from bot_logging_server.auth import get_authenticator, header_token
from bot_logging_server.config import Config, get_config
from bot_logging_server.errors import BadRequest, Forbidden, PayloadTooLarge, json_response
from bot_logging_server.idempotency import batch_fingerprint, request_key, store_once
from bot_logging_server.json_body import read_body, read_form
from bot_logging_server.observe import note
from bot_logging_server.offload import OFFLOAD_BYTES, get_offload
from bot_logging_server.ratelimit import check_rate_limit
from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.form_record import FORM_MIMETYPE, load_form_record
from bot_logging_server.schemas.ingest import Batch, prepare_batch, read_batch
from bot_logging_server.schemas.values import clean_text
from bot_logging_server.storage import utc_now
from bot_logging_server.tokens import normal_token

__all__ = ["PATHS", "TOKENLESS_BODY_BYTES", "bp", "send_form_record", "send_logs"]

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
    if request.mimetype == FORM_MIMETYPE and _basic_credentials() is not None:
        return await send_form_record()  # logging.handlers.HTTPHandler
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
    key = request_key()  # the optional Idempotency-Key; malformed: 400
    answer = {"code": 200, "message": "Logs added successfully", "added": len(rows)}
    fingerprint = batch_fingerprint("send_logs", rows) if key else ""
    # One transaction; a key already committed answers its answer (422 if another batch's).
    stored = await store_once(user.id, rows, utc_now(), answer, key, fingerprint)
    note(records=stored.added)  # metrics and the access log
    return json_response(stored.answer, headers=stored.headers)


async def send_form_record() -> Response:
    """Store one record POSTed by ``logging.handlers.HTTPHandler``; answer as `send_logs`.

    The user and token are the handler's ``credentials`` (basic auth), checked before the
    body is read (403); then the rate limit (429), the form (400), and the store.
    """
    config = get_config()
    username, token = _basic_credentials() or ("", None)
    user = await get_authenticator().authenticate(username, token)  # else 403
    await check_rate_limit(user.id, 1)  # else 429, with Retry-After
    received_at = utc_now()
    row = _or_400(load_form_record, await read_form(), config.max_msg_chars, received_at)
    key = request_key()
    fingerprint = batch_fingerprint("send_logs", [row]) if key else ""
    answer = {"code": 200, "message": "Logs added successfully", "added": 1}
    stored = await store_once(user.id, [row], received_at, answer, key, fingerprint)
    note(records=stored.added)
    return json_response(stored.answer, headers=stored.headers)


def _basic_credentials() -> tuple[str, str] | None:
    """(user, token) of ``Authorization: Basic``; None without it."""
    auth = request.authorization
    if auth is None or auth.type != "basic" or auth.username is None:
        return None
    return clean_text(auth.username), auth.password or ""


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
