"""Reading request bodies: size-limited, parsed as JSON, never trusted.

The body limit is Quart's ``MAX_CONTENT_LENGTH`` (set from ``max_body_bytes``): a declared
``Content-Length`` over it is refused with 413 before anything is read, and a chunked body
is cut off with 413 as soon as it passes the limit, so an oversized body never sits in memory.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import orjson
from quart import request

from bot_logging_server.errors import BadRequest

__all__ = ["parse_json", "read_form", "read_json"]

#: The most fields a form body may hold (a logging record has about 25).
_MAX_FORM_FIELDS = 1000


def parse_json(raw: bytes) -> Any:
    """Parse `raw` as JSON; raise `BadRequest` when it is not.

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
        raise BadRequest("body: not valid JSON") from None


async def read_json() -> Any:
    """The current request's body parsed as JSON, whatever its ``Content-Type``.

    Raises `BadRequest` for a body that is not JSON, and werkzeug's 413 past the body limit.
    """
    raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    return parse_json(raw)


async def read_form() -> dict[str, str]:
    """The current request's body parsed as ``application/x-www-form-urlencoded``.

    A field given twice keeps its last value; bytes that are not UTF-8 become U+FFFD. Raises
    `BadRequest` past `_MAX_FORM_FIELDS` fields, and werkzeug's 413 past the body limit.
    """
    raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    try:
        pairs = parse_qsl(
            raw.decode("utf-8", "replace"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="replace",
            max_num_fields=_MAX_FORM_FIELDS,
        )
    except ValueError:
        raise BadRequest(f"body: more than {_MAX_FORM_FIELDS} form fields") from None
    return dict(pairs)
