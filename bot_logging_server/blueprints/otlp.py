"""``POST /v1/logs``: OpenTelemetry logs over OTLP/HTTP, protobuf or JSON (docs/API.md).

An OTLP exporter pointed at the server (``endpoint="http://HOST:PORT/v1/logs"``) names the
user in its headers: ``X-User`` with ``X-User-Token`` or ``Authorization: Bearer <token>``,
or both at once as ``Authorization: Basic`` (user:token). What a record becomes is
`bot_logging_server.schemas.otlp`'s business. The order of checks, one step a line in
`export_logs`: credentials (403, before the body is read), content type and encoding (415),
body (413 past the limit, also once decompressed; 400 when not a request), rate limit (429),
record count (413), ``Idempotency-Key`` (400 when malformed); then the accepted records are
stored in one transaction and the answer is an ``ExportLogsServiceResponse`` in the
request's encoding, with ``partial_success`` when records were rejected.

Errors keep the contract's JSON for a JSON request. A protobuf request gets them as OTLP/HTTP
requires, a protobuf ``google.rpc.Status`` (the gRPC code for the HTTP status, and the
``detail`` or ``message`` as its message), with the same HTTP status and headers.
"""

from __future__ import annotations

import orjson
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from quart import Blueprint, Response, request

from bot_logging_server.auth import get_authenticator, header_credentials
from bot_logging_server.config import get_config
from bot_logging_server.errors import APIError, BadRequest, Forbidden, PayloadTooLarge
from bot_logging_server.idempotency import fingerprint, request_key, store_once
from bot_logging_server.json_body import parse_json
from bot_logging_server.observe import note
from bot_logging_server.ratelimit import check_rate_limit
from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.otlp import (
    JSON,
    PROTOBUF,
    TooLarge,
    UnsupportedEncoding,
    count_records,
    decode_request,
    decompress,
    encode_response,
    load_records,
    response_document,
)
from bot_logging_server.schemas.values import clean_text
from bot_logging_server.storage import utc_now

__all__ = ["bp", "export_logs"]

bp = Blueprint("otlp", __name__)

# The gRPC status code for an HTTP status (google.rpc.Code), as OTLP's Status carries it.
_GRPC_CODES = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 5,  # NOT_FOUND
    408: 4,  # DEADLINE_EXCEEDED
    413: 8,  # RESOURCE_EXHAUSTED
    415: 3,  # INVALID_ARGUMENT
    422: 9,  # FAILED_PRECONDITION
    429: 8,  # RESOURCE_EXHAUSTED
    500: 13,  # INTERNAL
    503: 14,  # UNAVAILABLE
}


class UnsupportedMediaType(APIError):
    """415: a content type or encoding OTLP/HTTP does not use."""

    status = 415


@bp.post("/v1/logs")
async def export_logs() -> Response:
    """Store the log records of one OTLP export; answer an ``ExportLogsServiceResponse``."""
    config = get_config()
    user = await get_authenticator().authenticate(*_credentials())  # else 403
    mimetype = _mimetype()  # else 415
    raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)  # 413
    data = _decompressed(raw, config.max_body_bytes)  # 415, 413, 400
    message = _decode(data, mimetype)  # else 400
    records = count_records(message)
    await check_rate_limit(user.id, records)  # else 429, with Retry-After
    if records > config.max_records:
        raise PayloadTooLarge(f"logRecords: more than {config.max_records} records")
    received_at = utc_now()
    loaded = load_records(message, config.max_msg_chars, received_at)  # rejects counted
    key = request_key()  # the optional Idempotency-Key; malformed: 400
    seen = fingerprint("v1/logs", mimetype.encode() + b"\0" + data) if key else ""
    answer = response_document(loaded)
    stored = await store_once(user.id, loaded.rows, received_at, answer, key, seen)
    note(records=stored.added)
    body = encode_response(stored.answer, mimetype)
    return Response(body, content_type=mimetype, headers=stored.headers)


def _credentials() -> tuple[str, str | None]:
    """(user, token): ``X-User`` with its token header, else ``Authorization: Basic``;
    `Forbidden` when neither names a user."""
    username, token = header_credentials()
    if not username:
        auth = request.authorization
        if auth is None or auth.type != "basic" or not auth.username:
            raise Forbidden()
        return clean_text(auth.username), auth.password
    return username, token


def _mimetype() -> str:
    mimetype = request.mimetype
    if mimetype not in (PROTOBUF, JSON):
        raise UnsupportedMediaType(f"Content-Type: {PROTOBUF} or {JSON}")
    return mimetype


def _decompressed(raw: bytes, limit: int) -> bytes:
    try:
        return decompress(raw, request.headers.get("Content-Encoding", ""), limit)
    except UnsupportedEncoding as exc:
        raise UnsupportedMediaType(str(exc)) from None
    except TooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None
    except ValidationFailed as exc:
        raise BadRequest(exc.detail) from None


def _decode(data: bytes, mimetype: str) -> ExportLogsServiceRequest:
    try:
        return decode_request(data, mimetype, parse_json)
    except ValidationFailed as exc:
        raise BadRequest(exc.detail) from None


@bp.after_request
async def _errors_as_status(response: Response) -> Response:
    """A protobuf request's error answer as a protobuf ``google.rpc.Status``."""
    if response.status_code < 400 or request.mimetype != PROTOBUF:
        return response
    if response.mimetype != JSON:
        return response
    try:
        error = orjson.loads(await response.get_data(as_text=False))
        text = str(error.get("detail") or error.get("message") or "")
    except (orjson.JSONDecodeError, AttributeError):
        text = ""
    status = Status(code=_GRPC_CODES.get(response.status_code, 2), message=text)  # 2: UNKNOWN
    response.set_data(status.SerializeToString())
    response.mimetype = PROTOBUF
    return response
