"""The rules for single wire values, as plain parse functions and as marshmallow fields.

The rules (``docs/API.md``):

* levels: an integer 0-100, a string of digits, or a name (``notset debug info warning warn
  error critical fatal``, any case); stored as the number;
* timestamps: ISO 8601 with or without offset, ``T`` or space, optional fraction, ``Z``;
  naive means UTC; stored as naive UTC; outside years 1000..9999 (in UTC) is invalid;
* ``msg``: any JSON value; non-strings are stored as their JSON text;
* ``p_name`` and ``p_description``: cut to 255 characters, never rejected for length.

Each rule is a function (the wire value in, the stored value out, `ValueError` stating the
rule) used directly by the ingest fast path, and wrapped as a field (`Level`, `Timestamp`,
`CutString`, `Message`, `BigInt`) for the schemas, so both apply the very same rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, fields

__all__ = [
    "BIGINT",
    "LEVEL_NAMES",
    "NAME_CHARS",
    "BigInt",
    "CutString",
    "Level",
    "Message",
    "Timestamp",
    "clean_text",
    "cut_name",
    "json_text",
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
#: A signed 64-bit column holds -BIGINT .. BIGINT - 1.
BIGINT = 2**63
_MIN_YEAR, _MAX_YEAR = 1000, 9999
_SURROGATE = re.compile(r"[\ud800-\udfff]")


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
    if not -BIGINT <= value < BIGINT:
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
