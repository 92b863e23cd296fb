"""Every request schema, in one place: marshmallow fields and schemas, instantiated once.

The wire rules are those of ``docs/API.md`` ("Field rules"):

* levels: an integer 0-100, a string of digits, or a name (``notset debug info warning warn
  error critical fatal``, any case); stored as the number;
* timestamps: ISO 8601 with or without offset, ``T`` or space, optional fraction, ``Z``;
  naive means UTC; stored as naive UTC; outside years 1000..9999 (in UTC) is invalid;
* ``msg``: any JSON value; non-strings are stored as their JSON text;
* ``p_name`` and ``p_description``: cut to 255 characters, never rejected for length;
* unknown fields are ignored everywhere (forward compatibility).

`load_batch` turns a request's ``data`` object into a `Batch` of `LogRow`, or raises
`ValidationFailed` whose `detail` names the field and the rule, e.g.
``data.logs[3].event_at: not a valid timestamp``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate

from bot_logging_server.storage import BUCKETS, MAX_PAGE, LogRow

__all__ = [
    "EXPORT_FORMATS",
    "LEVEL_NAMES",
    "USERNAME_RE",
    "USERNAME_RULE",
    "Batch",
    "CreateUserResultSchema",
    "CreateUserSchema",
    "ErrorSchema",
    "ExportQuerySchema",
    "HealthSchema",
    "LogPageSchema",
    "LogQuerySchema",
    "LogsQuerySchema",
    "SendLogsBodySchema",
    "SendLogsResultSchema",
    "StatsQuerySchema",
    "StatsSchema",
    "StoredLogSchema",
    "ValidationFailed",
    "clean_text",
    "cut_name",
    "decode_cursor",
    "encode_cursor",
    "flatten_errors",
    "level_name",
    "load_batch",
    "load_batch_reference",
    "load_create_user",
    "load_query",
    "log_row",
    "message_text",
    "parse_bigint",
    "parse_level",
    "parse_timestamp",
]

#: Level names the contract accepts (any case), with the number stored for each.
LEVEL_NAMES: dict[str, int] = {
    "notset": 0,
    "debug": 10,
    "info": 20,
    "warning": 30,
    "warn": 30,
    "error": 40,
    "critical": 50,
    "fatal": 50,
}
#: ``p_name`` and ``p_description`` keep this many characters; longer values are cut.
NAME_CHARS = 255
#: What a user name may be (the contract's rule), and how errors state it.
USERNAME_RULE = "1-64 characters, no whitespace or control characters"
_BIGINT = 2**63
_MIN_YEAR, _MAX_YEAR = 1000, 9999
_SURROGATE = re.compile(r"[\ud800-\udfff]")
USERNAME_RE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,64}\Z")


class ValidationFailed(ValueError):
    """The request does not follow the schema; `detail` says where and why."""

    def __init__(self, detail: str) -> None:
        """Keep `detail` (``path: rule; path: rule``) for the 400 answer."""
        super().__init__(detail)
        self.detail = detail


def clean_text(text: str) -> str:
    """`text` with lone UTF-16 surrogates (legal in JSON escapes, not storable) as U+FFFD."""
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


def parse_level(value: object) -> int:
    """The stored number for a wire level; raise `ValueError` with the rule when invalid."""
    if isinstance(value, bool):
        raise ValueError("must be an integer 0-100 or a level name")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            # Leading zeros are still that number; more than 3 digits left is out of range
            # (and never handed to int(), which refuses thousands of digits).
            digits = text.lstrip("0") or "0"
            if len(digits) > 3:
                raise ValueError("must be between 0 and 100")
            value = int(digits)
        elif text.lower() in LEVEL_NAMES:
            return LEVEL_NAMES[text.lower()]
        else:
            raise ValueError("not a level name or number")
    if isinstance(value, int):
        if 0 <= value <= 100:
            return value
        raise ValueError("must be between 0 and 100")
    raise ValueError("must be an integer 0-100 or a level name")


def parse_timestamp(value: object) -> datetime:
    """A wire timestamp as a naive UTC datetime; raise `ValueError` with the rule when invalid."""
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("not a valid timestamp")
    if "t" in value or "z" in value:
        value = value.upper()  # RFC 3339 allows lower-case "t" and "z"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not a valid timestamp") from None
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            raise ValueError("outside 1000-01-01 .. 9999-12-31") from None
    if not _MIN_YEAR <= moment.year <= _MAX_YEAR:
        raise ValueError("outside 1000-01-01 .. 9999-12-31")
    return moment


def json_text(value: object) -> str:
    """A non-string message as its JSON text (compact, non-ASCII kept, NaN kept as NaN)."""
    return clean_text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def parse_bigint(value: object) -> int:
    """A JSON integer (not a boolean) that fits a signed 64-bit column; else `ValueError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    if not -_BIGINT <= value < _BIGINT:
        raise ValueError("out of range")
    return value


def cut_name(value: object) -> str:
    """A string cut to `NAME_CHARS` characters; `ValueError` when not a string."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return clean_text(value[:NAME_CHARS])


def message_text(value: object) -> str:
    """A message as stored: a string as itself, ``None`` as ``null``, anything else as JSON."""
    if isinstance(value, str):
        return clean_text(value)
    return "null" if value is None else json_text(value)


class _Parsed(fields.Field):
    """A field loaded by one of the parsers above; their `ValueError` is the field's error."""

    #: The parser: the wire value in, the stored value out, `ValueError` with the rule.
    parse: Callable[[Any], Any]

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            return type(self).parse(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        except RecursionError:
            # orjson parses up to 1024 levels, json.dumps gives up earlier: such a message
            # can never be stored, so this is a 400, not a 500.
            raise ValidationError("nested too deeply") from None


class Level(_Parsed):
    """A log level: number 0-100, digit string, or name; loads to the number."""

    parse = staticmethod(parse_level)


class Timestamp(_Parsed):
    """An ISO 8601 timestamp; loads to a naive UTC datetime."""

    parse = staticmethod(parse_timestamp)


class CutString(_Parsed):
    """A string cut to `NAME_CHARS` characters (a 400 would kill the client's sender)."""

    parse = staticmethod(cut_name)


class Message(_Parsed):
    """Any JSON value; strings load as themselves, anything else as its JSON text."""

    parse = staticmethod(message_text)


class BigInt(_Parsed):
    """A JSON integer (not a boolean, not a string) that fits a signed 64-bit column."""

    parse = staticmethod(parse_bigint)


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


class CreateUserSchema(Schema):
    """The body of ``POST /create_user``: ``{"user", "password", "tel_id"}``."""

    class Meta:
        unknown = EXCLUDE

    user = fields.String(
        required=True,
        validate=validate.Regexp(USERNAME_RE, error=USERNAME_RULE),
    )
    password = fields.String(load_default=None, allow_none=True)
    tel_id = fields.Integer(load_default=None, allow_none=True, strict=False)


_BATCH_DATA = BatchDataSchema()
_CREATE_USER = CreateUserSchema()


@dataclass(frozen=True)
class Batch:
    """A validated ``data`` object: the user name and the rows to insert."""

    user: str
    rows: list[LogRow]


def flatten_errors(errors: Mapping[Any, Any] | list[Any], prefix: str) -> list[str]:
    """marshmallow's nested error dict as ``data.logs[3].event_at: rule`` lines."""
    if isinstance(errors, list):
        return [f"{prefix}: {_sentence(str(message))}" for message in errors]
    lines: list[str] = []
    for key, value in errors.items():
        path = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}"
        lines.extend(flatten_errors(value, path))
    return lines


def _sentence(message: str) -> str:
    message = message.rstrip(".")
    return message[:1].lower() + message[1:]


def _raise(errors: Mapping[Any, Any], prefix: str) -> NoReturn:
    lines = flatten_errors(errors, prefix)
    more = f" (and {len(lines) - 5} more)" if len(lines) > 5 else ""
    raise ValidationFailed("; ".join(lines[:5]) + more)


def load_batch(data: Mapping[str, Any], max_msg_chars: int) -> Batch:
    """Validate a ``data`` object; messages over `max_msg_chars` are cut and flagged.

    Raises `ValidationFailed` (the whole batch is refused) when any field breaks a rule.

    The common shape (every field present and valid) goes through `_load_batch_fast`, a
    plain loop over the same parse functions the marshmallow fields use; anything it does not
    accept as it stands is handed to `load_batch_reference` (marshmallow), which then gives
    the answer, so every error and its ``detail`` come from marshmallow.
    """
    batch = _load_batch_fast(data, max_msg_chars)
    return batch if batch is not None else load_batch_reference(data, max_msg_chars)


def load_batch_reference(data: Mapping[str, Any], max_msg_chars: int) -> Batch:
    """`load_batch` through marshmallow alone: the reference the fast path must agree with."""
    try:
        loaded = _BATCH_DATA.load(data)
    except ValidationError as exc:
        _raise(exc.normalized_messages(), "data")
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
    return Batch(user=clean_text(loaded["user"]), rows=rows)


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


def _load_batch_fast(data: Mapping[str, Any], max_msg_chars: int) -> Batch | None:
    """The batch when every field is present and valid; None for anything else.

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
    return Batch(user=clean_text(user), rows=rows)


def load_create_user(body: object) -> dict[str, Any]:
    """Validate a ``/create_user`` body; raise `ValidationFailed` naming the field."""
    if not isinstance(body, Mapping):
        raise ValidationFailed("body: must be a JSON object")
    try:
        return _CREATE_USER.load(body)
    except ValidationError as exc:
        _raise(exc.normalized_messages(), "body")


# -- the read side: query strings and answers ----------------------------------------------

#: ``format`` values of ``GET /api/logs/export``.
EXPORT_FORMATS = ("ndjson", "csv")
_LEVEL_LABELS = {0: "NOTSET", 10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}
_CURSOR_PREFIX = "id:"


def level_name(level: int) -> str:
    """The name Python's logging gives `level`: ``ERROR`` for 40, ``Level 35`` for 35."""
    return _LEVEL_LABELS.get(level, f"Level {level}")


def encode_cursor(last_id: int) -> str:
    """The opaque ``next_cursor`` that continues after the record `last_id`."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The record id a cursor continues after; raise `ValueError` when it is not ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:
        raise ValueError("not a valid cursor") from None
    digits = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not digits.isdigit() or len(digits) > 20:
        raise ValueError("not a valid cursor")
    return int(digits)


class Cursor(fields.Field):
    """A ``next_cursor`` from a previous page; loads to the id to continue before."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, str):
            raise ValidationError("not a valid cursor")
        try:
            return decode_cursor(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


_LEVEL_DOC = {
    "description": "Minimum level: a number 0-100 or a name (debug, info, warning, error...).",
    "example": "warning",
}
_TIME_DOC = {"description": "ISO 8601; naive means UTC.", "example": "2020-05-05T12:00:00Z"}


class LogQuerySchema(Schema):
    """The filters shared by every read endpoint (query string); empty values are ignored.

    Loads to the keyword arguments of `bot_logging_server.storage.LogQuery`.
    """

    class Meta:
        unknown = EXCLUDE

    min_level = Level(data_key="level", metadata=_LEVEL_DOC)
    since = Timestamp(metadata={**_TIME_DOC, "description": "event_at >= since (ISO 8601)."})
    until = Timestamp(metadata={**_TIME_DOC, "description": "event_at < until (ISO 8601)."})
    q = fields.String(
        validate=validate.Length(max=1000),
        metadata={"description": "Case-insensitive substring of msg."},
    )
    p_name = fields.String(validate=validate.Length(max=NAME_CHARS))
    p_description = fields.String(validate=validate.Length(max=NAME_CHARS))
    pid = fields.Integer(validate=validate.Range(-_BIGINT, _BIGINT - 1))

    @pre_load
    def _drop_empty(self, data: Any, **kwargs: Any) -> Any:
        # An HTML form sends every field, empty ones as "": empty means "no filter".
        if isinstance(data, Mapping):
            return {key: value for key, value in data.items() if value != ""}
        return data


class LogsQuerySchema(LogQuerySchema):
    """``GET /api/logs``: the filters, a page size and the previous page's cursor."""

    limit = fields.Integer(
        load_default=100,
        validate=validate.Range(1, MAX_PAGE),
        metadata={"description": f"Records per page, 1-{MAX_PAGE}."},
    )
    before_id = Cursor(
        data_key="cursor", metadata={"description": "next_cursor of the previous page."}
    )


class ExportQuerySchema(LogQuerySchema):
    """``GET /api/logs/export``: the filters, the format, an optional cap and cursor."""

    format = fields.String(
        load_default="ndjson",
        validate=validate.OneOf(EXPORT_FORMATS),
        metadata={"description": "ndjson (one JSON record a line) or csv."},
    )
    limit = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1),
        metadata={"description": "Stop after this many records (default: all)."},
    )
    before_id = Cursor(data_key="cursor", metadata={"description": "Start after this cursor."})


class StatsQuerySchema(LogQuerySchema):
    """``GET /api/stats``: the filters and the bucket width."""

    bucket = fields.String(load_default="hour", validate=validate.OneOf(BUCKETS))


_LOGS_QUERY = LogsQuerySchema()
_EXPORT_QUERY = ExportQuerySchema()
_STATS_QUERY = StatsQuerySchema()
_TAIL_QUERY = LogQuerySchema()
_QUERY_SCHEMAS = {
    "logs": _LOGS_QUERY,
    "export": _EXPORT_QUERY,
    "stats": _STATS_QUERY,
    "tail": _TAIL_QUERY,
}


def load_query(kind: str, args: Mapping[str, str]) -> dict[str, Any]:
    """Validate the query string of read endpoint `kind` (``logs export stats tail``).

    Raises `ValidationFailed` naming the parameter, e.g. ``query.level: not a level name``.
    """
    try:
        return _QUERY_SCHEMAS[kind].load(dict(args))
    except ValidationError as exc:
        _raise(exc.normalized_messages(), "query")


# -- answers (documentation of the wire shapes; /openapi.json is generated from these) -----


class _Open(Schema):
    """Extra keys are allowed (the contract may add keys to an answer, never remove one)."""

    class Meta:
        unknown = EXCLUDE


class StoredLogSchema(_Open):
    """One stored record as the read endpoints answer it; times are ISO 8601 UTC with ``Z``."""

    id = fields.Integer(required=True)
    user_id = fields.Integer(required=True)
    level = fields.Integer(required=True, metadata={"example": 40})
    level_name = fields.String(required=True, metadata={"example": "ERROR"})
    msg = fields.String(required=True)
    p_name = fields.String(required=True)
    p_description = fields.String(required=True)
    pid = fields.Integer(required=True)
    truncated = fields.Boolean(required=True)
    msg_length = fields.Integer(required=True)
    event_at = fields.DateTime(required=True)
    post_time = fields.DateTime(required=True)
    received_at = fields.DateTime(required=True)


class LogPageSchema(_Open):
    """``GET /api/logs``: one page, newest first, and the cursor of the next (null at the end)."""

    logs = fields.List(fields.Nested(StoredLogSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class LevelCountSchema(_Open):
    """One histogram bar: records of `level` in the bucket starting at `start`."""

    start = fields.DateTime(required=True)
    level = fields.Integer(required=True)
    level_name = fields.String(required=True)
    count = fields.Integer(required=True)


class StatsSchema(_Open):
    """``GET /api/stats``: counts per (bucket, level), newest bucket first."""

    bucket = fields.String(required=True, validate=validate.OneOf(BUCKETS))
    counts = fields.List(fields.Nested(LevelCountSchema), required=True)
    partial = fields.Boolean(
        required=True, metadata={"description": "True when older buckets were left out."}
    )


class ErrorSchema(_Open):
    """Every answer that is not a success (docs/API.md, "Conventions")."""

    code = fields.Integer(required=True, metadata={"example": 403})
    message = fields.String(required=True, metadata={"example": "Forbidden"})
    detail = fields.String()


class SendLogsBodySchema(_Open):
    """The body of ``POST /send_logs``: ``{"data": {...}}``."""

    data = fields.Nested(BatchDataSchema, required=True)


class SendLogsResultSchema(_Open):
    """The 200 answer of ``POST /send_logs``."""

    code = fields.Integer(required=True, metadata={"example": 200})
    message = fields.String(required=True, metadata={"example": "Logs added successfully"})
    added = fields.Integer(required=True)


class CreateUserResultSchema(_Open):
    """The 200 answer of ``POST /create_user``: the new token, shown this once."""

    code = fields.Integer(required=True, metadata={"example": 200})
    message = fields.String(required=True, metadata={"example": "User created"})
    user = fields.String(required=True)
    token = fields.String(required=True, metadata={"example": "5f4dcc3b5aa765d61d8327deb882cf99"})


class HealthSchema(_Open):
    """The 200 answer of ``GET /healthz``."""

    status = fields.String(required=True, metadata={"example": "ok"})
    storage = fields.String(required=True, metadata={"example": "mysql"})
