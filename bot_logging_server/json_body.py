"""Reading request bodies: size-limited, parsed as JSON, never trusted.

The body limit is Quart's ``MAX_CONTENT_LENGTH`` (set from ``max_body_bytes``): a declared
``Content-Length`` over it is refused with 413 before anything is read, and a chunked body
is cut off with 413 as soon as it passes the limit, so an oversized body never sits in memory.
`read_body` can set a smaller limit for one request (past it, nothing more is read), and how
many body bytes all requests hold at once is bounded by `bot_logging_server.admission`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from quart import request

from bot_logging_server.errors import BadRequest
from bot_logging_server.schemas.base import ValidationFailed, loads_json

__all__ = ["parse_json", "read_body", "read_form", "read_json"]

#: The most fields a form body may hold (a logging record has about 25).
_MAX_FORM_FIELDS = 1000


def parse_json(raw: bytes) -> Any:
    """Parse `raw` as JSON; raise `BadRequest` when it is not.

    orjson, or the standard library for what only it accepts (``NaN``, lone surrogate
    escapes): `bot_logging_server.schemas.base.loads_json`.
    """
    try:
        return loads_json(raw)
    except ValidationFailed as exc:
        raise BadRequest(exc.detail) from None


async def read_body(most: int | None = None) -> bytes | None:
    """The current request's body; None when it is longer than `most` bytes.

    With `most`, a declared ``Content-Length`` over it answers None before anything is
    read, and a body without one is read only until it passes `most`. Raises werkzeug's 413
    past the app's body limit.
    """
    if most is None:
        return await request.get_data(cache=False, as_text=False, parse_form_data=False)
    if request.content_length is not None and request.content_length > most:
        return None
    chunks, size = [], 0
    async for chunk in request.body:
        size += len(chunk)
        if size > most:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json() -> Any:
    """The current request's body parsed as JSON, whatever its ``Content-Type``.

    Raises `BadRequest` for a body that is not JSON, and werkzeug's 413 past the body limit.
    """
    return parse_json(await request.get_data(cache=False, as_text=False, parse_form_data=False))


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
