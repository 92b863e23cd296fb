"""OpenTelemetry logs (OTLP/HTTP): the body of ``POST /v1/logs`` read into log rows.

The body is an ``ExportLogsServiceRequest`` (the classes of ``opentelemetry-proto``),
binary protobuf (``application/x-protobuf``) or OTLP's JSON (``application/json``: field
names in lowerCamelCase or as in the proto, 64-bit integers as numbers or strings, trace and
span ids in hex), optionally ``gzip`` or ``deflate`` compressed. Each log record becomes one
row:

* ``p_name``: the resource's ``service.name``; ``pid``: its ``process.pid`` (else 0);
  ``p_description``: the instrumentation scope's name (a Python logger's name).
* ``level``: ``severity_number`` 1-24 as a Python level: TRACE 1-4 is 5-8, DEBUG 5-8 is
  10-13, INFO 9-12 is 20-23, WARN 13-16 is 30-33, ERROR 17-20 is 40-43, FATAL 21-24 is 50-53
  (the inverse of the OpenTelemetry SDK's own mapping). Unspecified (0): the level named by
  ``severity_text`` (``trace``, ``debug``, ``info``, ``warn``, ``error``, ``fatal`` ...), else
  0. Any other number rejects the record.
* ``msg``: a JSON object: ``body`` (the record's body as a JSON value: bytes as base64),
  ``attributes`` (when there are any), ``trace_id`` and ``span_id`` (hex, when set) and
  ``event_name`` (when set).
* ``event_at``: ``time_unix_nano``, else ``observed_time_unix_nano``, else the receive time;
  ``post_time``: the receive time.

Rejected records are counted for the answer's ``partial_success``; the others are stored.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.ingest import log_row
from bot_logging_server.schemas.values import LEVEL_NAMES, cut_name, json_text
from bot_logging_server.storage import LogRow

__all__ = [
    "JSON",
    "PROTOBUF",
    "Loaded",
    "TooLarge",
    "UnsupportedEncoding",
    "count_records",
    "decode_request",
    "decompress",
    "encode_response",
    "load_records",
    "response_document",
    "severity_level",
]

#: The two content types of OTLP/HTTP.
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_EPOCH = datetime(1970, 1, 1)
#: Python level of the first number of each OTLP severity range (TRACE, DEBUG, ... FATAL).
_RANGE_BASE = (5, 10, 20, 30, 40, 50)
_SEVERITY_NAMES = {**LEVEL_NAMES, "trace": 5}
_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id")


class UnsupportedEncoding(ValueError):
    """A ``Content-Encoding`` the server does not decode (answered 415)."""


class TooLarge(ValueError):
    """The decompressed body is over the body limit (answered 413)."""


def decompress(raw: bytes, encoding: str, limit: int) -> bytes:
    """`raw` decoded from ``Content-Encoding`` `encoding` (identity, gzip or deflate).

    Raises `TooLarge` past `limit` bytes decompressed (never inflating more than that),
    `UnsupportedEncoding` for another encoding and `ValidationFailed` for broken data.
    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise UnsupportedEncoding(f"Content-Encoding {encoding[:32]!r}: not gzip or deflate")
    inflater = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib, told by the header
    try:
        data = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise ValidationFailed(f"body: not valid {encoding} data") from None
    if len(data) > limit:
        raise TooLarge(f"body: more than {limit} bytes once decompressed")
    if not inflater.eof:
        raise ValidationFailed(f"body: {encoding} data cut short")
    return data


def _hex_ids_as_base64(document: object) -> None:
    """OTLP/JSON writes trace and span ids in hex where protobuf's JSON expects base64."""
    if not isinstance(document, dict):
        return
    for resource in _list(document, "resourceLogs", "resource_logs"):
        for scope in _list(resource, "scopeLogs", "scope_logs"):
            for record in _list(scope, "logRecords", "log_records"):
                if not isinstance(record, dict):
                    continue
                for name in _ID_FIELDS:
                    value = record.get(name)
                    if isinstance(value, str):
                        try:
                            record[name] = base64.b64encode(bytes.fromhex(value)).decode()
                        except ValueError:
                            raise ValidationFailed(f"{name}: not hexadecimal") from None


def _list(parent: object, *names: str) -> list[Any]:
    if not isinstance(parent, dict):
        return []
    for name in names:
        value = parent.get(name)
        if isinstance(value, list):
            return value
    return []


def decode_request(data: bytes, mimetype: str, parse_json: Any) -> ExportLogsServiceRequest:
    """The ``ExportLogsServiceRequest`` in `data`, protobuf or JSON as `mimetype` says.

    `parse_json` turns bytes into a JSON value (raising the server's 400 itself). Raises
    `ValidationFailed` when `data` is not such a request.
    """
    message = ExportLogsServiceRequest()
    if mimetype == PROTOBUF:
        try:
            message.ParseFromString(data)
        except (DecodeError, RecursionError):
            raise ValidationFailed("body: not an OTLP ExportLogsServiceRequest") from None
        return message
    document = parse_json(data)
    _hex_ids_as_base64(document)
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ValidationFailed(f"body: not an OTLP ExportLogsServiceRequest ({detail})") from None
    return message


def count_records(message: ExportLogsServiceRequest) -> int:
    """How many log records `message` holds."""
    resources = message.resource_logs
    return sum(len(scope.log_records) for resource in resources for scope in resource.scope_logs)


def severity_level(number: int, text: str) -> int | None:
    """The Python level of an OTLP severity (see the module); None when `number` is invalid."""
    if 1 <= number <= 24:
        return _RANGE_BASE[(number - 1) // 4] + (number - 1) % 4
    if number != 0:
        return None
    return _SEVERITY_NAMES.get(text.strip().lower(), 0)


def _value(value: AnyValue) -> object:
    """An AnyValue as a JSON value."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, object]:
    """Key-value pairs as a dict (a repeated key keeps its last value)."""
    return {pair.key: _value(pair.value) for pair in pairs}


def _moment(nanos: int) -> datetime | None:
    return _EPOCH + timedelta(microseconds=nanos // 1000) if nanos else None


def _message(record: LogRecord) -> str:
    document: dict[str, object] = {"body": _value(record.body)}
    if record.attributes:
        document["attributes"] = _attributes(record.attributes)
    if record.trace_id:
        document["trace_id"] = record.trace_id.hex()
    if record.span_id:
        document["span_id"] = record.span_id.hex()
    event_name = getattr(record, "event_name", "")  # newer protos only
    if event_name:
        document["event_name"] = event_name
    return json_text(document)


def _pid(attributes: dict[str, object]) -> int:
    value = attributes.get("process.pid")
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip()) if len(value.strip()) < 19 else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass
class Loaded:
    """The rows to store, and how many records were rejected (with the first reason)."""

    rows: list[LogRow] = field(default_factory=list)
    rejected: int = 0
    reason: str = ""


def load_records(
    message: ExportLogsServiceRequest, max_msg_chars: int, received_at: datetime
) -> Loaded:
    """Every log record of `message` as a row; records with an invalid severity rejected."""
    loaded = Loaded()
    for resource in message.resource_logs:
        attributes = _attributes(resource.resource.attributes)
        name = attributes.get("service.name", "")
        p_name = cut_name(name if isinstance(name, str) else json_text(name))
        pid = _pid(attributes)
        for scope in resource.scope_logs:
            p_description = cut_name(scope.scope.name)
            for record in scope.log_records:
                level = severity_level(record.severity_number, record.severity_text)
                if level is None:
                    loaded.rejected += 1
                    loaded.reason = loaded.reason or "severity_number outside 0-24"
                    continue
                event_at = (
                    _moment(record.time_unix_nano)
                    or _moment(record.observed_time_unix_nano)
                    or received_at
                )
                loaded.rows.append(
                    log_row(
                        pid,
                        p_name,
                        p_description,
                        level,
                        _message(record),
                        event_at,
                        received_at,
                        max_msg_chars,
                    )
                )
    return loaded


def encode_response(answer: dict[str, Any], mimetype: str) -> bytes:
    """The ``ExportLogsServiceResponse`` whose OTLP/JSON form is `answer`, encoded as
    `mimetype` (protobuf or JSON)."""
    if mimetype == PROTOBUF:
        return json_format.ParseDict(answer, ExportLogsServiceResponse()).SerializeToString()
    return json_format.MessageToJson(
        json_format.ParseDict(answer, ExportLogsServiceResponse()), indent=None
    ).encode()


def response_document(loaded: Loaded) -> dict[str, Any]:
    """The OTLP/JSON ``ExportLogsServiceResponse`` for `loaded`: empty, or a
    ``partialSuccess`` with the rejected count and the reason."""
    if not loaded.rejected:
        return {}
    return {
        "partialSuccess": {
            "rejectedLogRecords": str(loaded.rejected),
            "errorMessage": f"{loaded.rejected} log record{'s' if loaded.rejected > 1 else ''} "
            f"rejected: {loaded.reason}",
        }
    }
