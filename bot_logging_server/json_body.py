"""Reading request bodies: size-limited, parsed as JSON, never trusted.

The body limit is Quart's ``MAX_CONTENT_LENGTH`` (set from ``max_body_bytes``): a declared
``Content-Length`` over it is refused with 413 before anything is read, and a chunked body
is cut off with 413 as soon as it passes the limit, so an oversized body never sits in memory.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from quart import request

from bot_logging_server.errors import BadRequest

__all__ = ["parse_json", "read_json"]


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
