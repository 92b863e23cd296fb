"""Reading request bodies: size-limited, parsed as JSON, never trusted.

The body limit is Quart's ``MAX_CONTENT_LENGTH`` (set from ``max_body_bytes``): a declared
``Content-Length`` over it is refused with 413 before anything is read, and a chunked body
is cut off with 413 as soon as it passes the limit, so an oversized body never sits in memory.
A body that does not arrive whole within ``--body-timeout`` (Quart's ``BODY_TIMEOUT``) is
answered 408.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
from quart import request
from werkzeug.exceptions import RequestTimeout

from bot_logging_server.errors import BadRequest

__all__ = ["parse_json", "read_body", "read_json"]


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


async def read_body() -> bytes:
    """The current request's body as bytes (werkzeug's 413 past the body limit, 408 when it
    does not arrive within the body timeout).

    What ``request.get_data()`` does, with a cheaper timer: Quart's own runs the body through
    ``asyncio.wait_for``, a task per request (a few percent of a small request's CPU time).
    """
    body = request.body
    try:
        async with asyncio.timeout(request.body_timeout):
            raw = await body
    except TimeoutError:
        raise RequestTimeout() from None
    body.clear()  # the bytes are ours now: no second copy kept for the request's lifetime
    return raw


async def read_json() -> Any:
    """The current request's body parsed as JSON, whatever its ``Content-Type``.

    Raises `BadRequest` for a body that is not JSON, and werkzeug's 413 past the body limit.
    """
    return parse_json(await read_body())
