"""The body of ``POST /send_logs``, read in the order of the checks (``docs/API.md``).

1. `read_batch`: the body is JSON (else 400 ``body: not valid JSON``) of the shape
   ``{"data": {...}}`` with a string ``data.user`` (else 400); that, and how many records
   ``data.logs`` holds (for the rate limit and the per-request cap), is all the server reads
   before it knows who is asking.
2. `Batch.rows`: every other field, into the `LogRow` list to insert, or
   `ValidationFailed` whose ``detail`` names the field and the rule, e.g.
   ``data.logs[3].event_at: not a valid timestamp``; nothing of a refused batch is written.

Unknown fields are ignored everywhere (forward compatibility). The rules for single values
(levels, timestamps, messages, names) are in `bot_logging_server.schemas.values`.

Two declarations of the same body, one reference:

* the marshmallow schemas (`BatchDataSchema`, `LogRecordSchema`) are the reference: they
  accept and refuse exactly what the contract says, and every 400's ``detail`` is theirs;
* the msgspec structs (`WireData`, `WireRecord`) declare the body's common shape with its
  types, and msgspec decodes a body of that shape straight from its bytes into them (no
  intermediate dicts), several times faster than JSON parsing plus marshmallow. The value
  rules are then applied by the same functions the marshmallow fields use.

A body msgspec does not decode as that shape (a float timestamp, a boolean level, a string
with a lone surrogate escape, ``NaN``...) or a value that breaks a rule takes the reference
path, so the answer is always marshmallow's; ``tests/test_schemas_fast_path.py`` feeds both
paths the same tricky bodies and checks that they agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from marshmallow import EXCLUDE, Schema, fields, post_load

from bot_logging_server.schemas.base import ValidationFailed, load, loads_json
from bot_logging_server.schemas.values import (
    BigInt,
    CutString,
    Level,
    Message,
    Timestamp,
    clean_text,
    cut_name,
    message_text,
    parse_bigint,
    parse_level,
    parse_timestamp,
)
from bot_logging_server.storage import LogRow

__all__ = [
    "Batch",
    "BatchDataSchema",
    "LogRecordSchema",
    "SendLogsBodySchema",
    "WireData",
    "WireRecord",
    "load_batch",
    "load_batch_reference",
    "log_row",
    "prepare_batch",
    "read_batch",
    "read_envelope",
    "record_count",
]


class LogRecordSchema(Schema):
    """One record of ``data.logs``."""

    class Meta:
        unknown = EXCLUDE

    level = Level(required=True)
    msg = Message(required=True, allow_none=True)
    event_at = Timestamp(required=True)
    p_description = CutString(load_default="", allow_none=True)

    @post_load
    def _defaults(self, record: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if record["msg"] is None:
            record["msg"] = "null"
        if record["p_description"] is None:
            record["p_description"] = ""
        return record


class BatchDataSchema(Schema):
    """The ``data`` object of ``POST /send_logs``."""

    class Meta:
        unknown = EXCLUDE

    user = fields.String(required=True)
    pid = BigInt(required=True)
    p_name = CutString(required=True)
    post_time = Timestamp(required=True)
    logs = fields.List(fields.Nested(LogRecordSchema), required=True)


class SendLogsBodySchema(Schema):
    """The whole body of ``POST /send_logs``: ``{"data": {...}}`` (documentation only).

    The handler reads the envelope with `read_batch` and the rest with `Batch.rows`,
    so that the user is checked before the records are.
    """

    class Meta:
        unknown = EXCLUDE

    data = fields.Nested(BatchDataSchema, required=True)


_BATCH_DATA = BatchDataSchema()


def read_envelope(body: object) -> tuple[str, dict[str, Any]]:
    """The user name and the ``data`` object of a ``POST /send_logs`` body.

    Raises `ValidationFailed` (``data: must be a JSON object`` or ``data.user: must be a
    string``) unless `body` is an object whose ``data`` is an object with a string ``user``.
    Nothing else of ``data`` is looked at.
    """
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise ValidationFailed("data: must be a JSON object")
    username = data.get("user")
    if not isinstance(username, str):
        raise ValidationFailed("data.user: must be a string")
    return clean_text(username), data


def record_count(data: Mapping[str, Any]) -> int:
    """How many records ``data.logs`` holds; 0 when it is not a list (the rows say why)."""
    logs = data.get("logs")
    return len(logs) if isinstance(logs, list) else 0


def load_batch(data: Mapping[str, Any], max_msg_chars: int) -> list[LogRow]:
    """Validate a parsed ``data`` object; messages over `max_msg_chars` are cut and flagged.

    Raises `ValidationFailed` (the whole batch is refused) when any field breaks a rule. The
    common shape is converted by msgspec (`WireData`), anything else is left to
    `load_batch_reference` (marshmallow), which then gives the answer.
    """
    try:
        wire = msgspec.convert(data, WireData)
    except msgspec.ValidationError:
        wire = None
    rows = None if wire is None else _wire_rows(wire, max_msg_chars)
    return rows if rows is not None else load_batch_reference(data, max_msg_chars)


def load_batch_reference(data: Mapping[str, Any], max_msg_chars: int) -> list[LogRow]:
    """`load_batch` through marshmallow alone: the reference the fast path must agree with."""
    loaded = load(_BATCH_DATA, data, "data")
    pid, p_name, post_time = loaded["pid"], loaded["p_name"], loaded["post_time"]
    rows = []
    for record in loaded["logs"]:
        rows.append(
            log_row(
                pid,
                p_name,
                record["p_description"],
                record["level"],
                record["msg"],
                record["event_at"],
                post_time,
                max_msg_chars,
            )
        )
    return rows


def log_row(
    pid: int,
    p_name: str,
    p_description: str,
    level: int,
    msg: str,
    event_at: datetime,
    post_time: datetime,
    max_msg_chars: int,
) -> LogRow:
    """A validated record as a `LogRow`; a message over `max_msg_chars` is cut and flagged."""
    length = len(msg)
    truncated = length > max_msg_chars
    return LogRow(
        pid=pid,
        p_name=p_name,
        p_description=p_description,
        level=level,
        msg=msg[:max_msg_chars] if truncated else msg,
        truncated=truncated,
        msg_length=length,
        event_at=event_at,
        post_time=post_time,
    )


# -- The common shape, decoded by msgspec ----------------------------------------------------


class WireRecord(msgspec.Struct, gc=False):
    """One record of ``data.logs`` in its common shape (types only; rules in `_wire_rows`).

    Decoded JSON never holds a reference cycle, so the structs are left out of the garbage
    collector's work (``gc=False``).
    """

    level: int | float | str
    msg: Any
    event_at: str
    p_description: str | None = None


class WireData(msgspec.Struct, gc=False):
    """The ``data`` object in its common shape (unknown fields are skipped)."""

    user: str
    pid: int
    p_name: str
    post_time: str
    logs: list[WireRecord]


class _WireBody(msgspec.Struct, gc=False):
    data: WireData


_DECODE_BODY = msgspec.json.Decoder(_WireBody)
#: orjson (the reference path's parser) reads integers outside this range as floats.
_ORJSON_INTS = range(-(2**63), 2**64)


@dataclass(frozen=True, slots=True)
class Batch:
    """A ``POST /send_logs`` body, read as far as the checks before the records need it.

    `username` is ``data.user`` and `records` the length of ``data.logs`` (0 when it is not
    a list: `rows` then says why). `rows` validates the rest, or gives what `prepare_batch`
    validated already.
    """

    username: str
    records: int
    max_msg_chars: int
    #: The body decoded in its common shape (with `raw`, the body as received), or None.
    wire: WireData | None = None
    raw: bytes | None = None
    #: The parsed ``data`` object when the body is not of the common shape (else None).
    data: Mapping[str, Any] | None = None
    #: The records validated already (`prepare_batch`), unless `problem` says why not.
    prepared: list[LogRow] | None = None
    problem: str | None = None

    def rows(self) -> list[LogRow]:
        """Every record as a `LogRow`, messages over ``max_msg_chars`` cut and flagged.

        Raises `ValidationFailed` (marshmallow's ``detail``) when any field breaks a rule.
        """
        if self.problem is not None:
            raise ValidationFailed(self.problem)
        if self.prepared is not None:
            return self.prepared
        if self.wire is not None:
            rows = _wire_rows(self.wire, self.max_msg_chars)
            if rows is not None:
                return rows
        # Not the common shape, or a value breaks a rule: marshmallow answers, on the body
        # parsed as the reference path parses it.
        data = self.data
        if data is None:
            data = read_envelope(loads_json(self.raw or b""))[1]
        return load_batch_reference(data, self.max_msg_chars)


def read_batch(raw: bytes, max_msg_chars: int) -> Batch:
    """The user name and record count of a ``POST /send_logs`` body, the rest kept for later.

    Raises `ValidationFailed` when `raw` is not JSON (``body: not valid JSON``) or not
    ``{"data": {"user": "<string>", ...}}`` (see `read_envelope`); nothing else is checked.
    """
    try:
        # msgspec does not check the UTF-8 of what it skips (an unknown key's text), where
        # the reference parser refuses the whole body: check it first (a fast C pass).
        raw.decode("utf-8")
        wire = _DECODE_BODY.decode(raw).data
    except (UnicodeDecodeError, msgspec.DecodeError, RecursionError):  # the reference path
        username, data = read_envelope(loads_json(raw))
        return Batch(username, record_count(data), max_msg_chars, data=data)
    return Batch(clean_text(wire.user), len(wire.logs), max_msg_chars, wire=wire, raw=raw)


def prepare_batch(raw: bytes, max_records: int, max_msg_chars: int) -> Batch:
    """`read_batch`, and the records validated in advance (unless there are more than
    `max_records`: the request is refused for that before they would be looked at).

    The `Batch` holds no parsed body, only the rows: small to send between processes.
    """
    batch = read_batch(raw, max_msg_chars)
    if batch.records > max_records:
        return Batch(batch.username, batch.records, max_msg_chars, prepared=[])
    try:
        rows = batch.rows()
    except ValidationFailed as exc:
        return Batch(batch.username, batch.records, max_msg_chars, problem=exc.detail)
    return Batch(batch.username, batch.records, max_msg_chars, prepared=rows)


def _wire_rows(data: WireData, max_msg_chars: int) -> list[LogRow] | None:
    """The rows of a batch of the common shape; None when any value breaks a rule (or when
    it could be read differently by the reference path), so that marshmallow answers."""
    try:
        pid = parse_bigint(data.pid)
        p_name = cut_name(data.p_name)
        post_time = parse_timestamp(data.post_time)
        # A batch repeats a few distinct levels and times: parse each once.
        levels: dict[int | float | str, int] = {}
        times: dict[str, datetime] = {}
        rows = []
        for record in data.logs:
            level = levels.get(record.level)
            if level is None:
                level = levels[record.level] = parse_level(record.level)
            msg = record.msg
            if type(msg) is str:
                msg = clean_text(msg)
            elif _orjson_reads_alike(msg):
                msg = message_text(msg)
            else:
                return None
            event_at = times.get(record.event_at)
            if event_at is None:
                event_at = times[record.event_at] = parse_timestamp(record.event_at)
            description = record.p_description
            description = "" if description is None else cut_name(description)
            rows.append(
                log_row(pid, p_name, description, level, msg, event_at, post_time, max_msg_chars)
            )
    except (ValueError, RecursionError):
        return None
    return rows


def _orjson_reads_alike(value: object) -> bool:
    """Whether a message decoded by msgspec is what orjson reads too: msgspec keeps every
    integer exact, orjson turns those outside 64 bits into floats (stored as ``1e+20``)."""
    if type(value) is int:
        return value in _ORJSON_INTS
    if type(value) is list:
        return all(_orjson_reads_alike(item) for item in value)
    if type(value) is dict:
        return all(_orjson_reads_alike(item) for item in value.values())
    return True
