"""The body of ``POST /send_logs``, read in the order of the checks (``docs/API.md``).

1. `read_envelope`: the body is ``{"data": {...}}`` with a string ``data.user`` (else 400);
   that is all the server reads before it knows who is asking.
2. `record_count`: how many records ``data.logs`` holds, for the rate limit and the
   per-request cap, before any record is validated.
3. `load_batch`: every other field, into the `LogRow` list to insert, or `ValidationFailed`
   whose ``detail`` names the field and the rule, e.g.
   ``data.logs[3].event_at: not a valid timestamp``; nothing of a refused batch is written.

Unknown fields are ignored everywhere (forward compatibility). The rules for single values
(levels, timestamps, messages, names) are in `bot_logging_server.schemas.values`.

From the raw body, `read_batch` does step 1 and keeps the rest for `Batch.rows` (step 3,
after the user is checked); `prepare_batch` does all three at once, for a body large enough
to be read in a helper process (`bot_logging_server.offload`): its `Batch` carries the rows
(or why they are refused) instead of the parsed body, and says so only when asked, in the
same order of checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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

    The handler reads the envelope with `read_envelope` and the rest with `load_batch`, so
    that the user is checked before the records are.
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


@dataclass(frozen=True)
class Batch:
    """A ``POST /send_logs`` body whose envelope is read: who sends, and how many records.

    `rows` validates the records (or gives what `prepare_batch` validated already).
    """

    username: str
    records: int
    max_msg_chars: int
    #: The ``data`` object, still to validate (`read_batch`).
    data: Mapping[str, Any] | None = None
    #: The records validated already (`prepare_batch`), unless `problem` says why not.
    prepared: list[LogRow] | None = None
    problem: str | None = None

    def rows(self) -> list[LogRow]:
        """The `LogRow` list to insert; `ValidationFailed` naming the field and the rule."""
        if self.problem is not None:
            raise ValidationFailed(self.problem)
        if self.prepared is not None:
            return self.prepared
        return load_batch(self.data or {}, self.max_msg_chars)


def read_batch(raw: bytes, max_msg_chars: int) -> Batch:
    """Step 1 on a raw body: JSON, then the envelope; `ValidationFailed` when either fails."""
    username, data = read_envelope(loads_json(raw))
    return Batch(username, record_count(data), max_msg_chars, data=data)


def prepare_batch(raw: bytes, max_records: int, max_msg_chars: int) -> Batch:
    """`read_batch`, and the records validated in advance (unless there are more than
    `max_records`: the request is refused for that before they would be looked at).

    The `Batch` holds no parsed body, only the rows: small to send between processes.
    """
    batch = read_batch(raw, max_msg_chars)
    if batch.records > max_records:
        return Batch(batch.username, batch.records, max_msg_chars, prepared=[])
    try:
        rows = load_batch(batch.data or {}, max_msg_chars)
    except ValidationFailed as exc:
        return Batch(batch.username, batch.records, max_msg_chars, problem=exc.detail)
    return Batch(batch.username, batch.records, max_msg_chars, prepared=rows)


def record_count(data: Mapping[str, Any]) -> int:
    """How many records ``data.logs`` holds; 0 when it is not a list (`load_batch` says so)."""
    logs = data.get("logs")
    return len(logs) if isinstance(logs, list) else 0


def load_batch(data: Mapping[str, Any], max_msg_chars: int) -> list[LogRow]:
    """Validate a ``data`` object; messages over `max_msg_chars` are cut and flagged.

    Raises `ValidationFailed` (the whole batch is refused) when any field breaks a rule.

    The common shape (every field present and valid) goes through `_load_batch_fast`, a
    plain loop over the same parse functions the marshmallow fields use; anything it does not
    accept as it stands is handed to `load_batch_reference` (marshmallow), which then gives
    the answer, so every error and its ``detail`` come from marshmallow.
    """
    rows = _load_batch_fast(data, max_msg_chars)
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


_MISSING: Any = object()


def _load_batch_fast(data: Mapping[str, Any], max_msg_chars: int) -> list[LogRow] | None:
    """The rows when every field is present and valid; None for anything else.

    It applies exactly the rules of `BatchDataSchema` and `LogRecordSchema` (the same parse
    functions, the same defaults for a missing or null ``p_description`` and a null ``msg``),
    and gives up (None) wherever marshmallow would report an error, so the caller can let
    marshmallow produce it. Profiling showed marshmallow's per-field machinery, not the rules,
    taking most of the time of a 1000-record batch.
    """
    try:
        user = data["user"]
        logs = data["logs"]
        if not isinstance(user, str) or type(logs) is not list:
            return None
        pid = parse_bigint(data["pid"])
        p_name = cut_name(data["p_name"])
        post_time = parse_timestamp(data["post_time"])
        # A batch repeats a few distinct levels and times: parse each once.
        levels: dict[object, int] = {}
        times: dict[str, datetime] = {}
        rows = []
        for record in logs:
            if type(record) is not dict:
                return None
            level_in = record["level"]
            # Key on the type too: True == 1 == 1.0 as dict keys, but not as levels.
            key = (type(level_in), level_in)
            level = levels.get(key)
            if level is None:
                level = levels[key] = parse_level(level_in)
            msg_in = record["msg"]
            msg = clean_text(msg_in) if type(msg_in) is str else message_text(msg_in)
            stamp = record["event_at"]
            event_at = times.get(stamp) if type(stamp) is str else None
            if event_at is None:
                event_at = parse_timestamp(stamp)
                times[stamp] = event_at
            description = record.get("p_description", _MISSING)
            if description is None or description is _MISSING:
                description = ""
            else:
                description = cut_name(description)
            rows.append(
                log_row(pid, p_name, description, level, msg, event_at, post_time, max_msg_chars)
            )
    except (KeyError, ValueError, TypeError, RecursionError):
        return None
    return rows
