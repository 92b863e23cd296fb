"""What every schema shares: the `ValidationFailed` error and its ``detail`` text.

A refused request is answered 400 with a ``detail`` naming each bad field by its path and
the rule it breaks, e.g. ``data.logs[3].event_at: not a valid timestamp``; `load` turns
marshmallow's nested errors into that text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from marshmallow import Schema, ValidationError

__all__ = ["ValidationFailed", "flatten_errors", "load", "loads_json"]

#: A ``detail`` names at most this many errors, then says how many more there were.
_SHOWN_ERRORS = 5


class ValidationFailed(ValueError):
    """The request does not follow the schema; `detail` says where and why."""

    def __init__(self, detail: str) -> None:
        """Keep `detail` (``path: rule; path: rule``) for the 400 answer."""
        super().__init__(detail)
        self.detail = detail


def loads_json(raw: bytes) -> Any:
    """`raw` parsed as JSON; `ValidationFailed` (``body: not valid JSON``) when it is not.

    orjson first (fast); the standard library when orjson refuses, because Python clients
    legally send what orjson rejects: ``NaN``/``Infinity`` and lone surrogate escapes such
    as ``"\\udcff"`` (their ``json.dumps`` writes both).
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and UnicodeDecodeError (bytes not UTF-8).
        raise ValidationFailed("body: not valid JSON") from None


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


def load(schema: Schema, data: Any, prefix: str) -> Any:
    """`data` loaded through `schema`; raise `ValidationFailed` naming fields from `prefix`.

    The ``detail`` lists the first five errors, ``path: rule`` each, joined by ``; ``, and
    ``(and N more)`` when there were more.
    """
    try:
        return schema.load(data)
    except ValidationError as exc:
        lines = flatten_errors(exc.normalized_messages(), prefix)
    more = f" (and {len(lines) - _SHOWN_ERRORS} more)" if len(lines) > _SHOWN_ERRORS else ""
    raise ValidationFailed("; ".join(lines[:_SHOWN_ERRORS]) + more)
