"""The wire side of `bot_logging_server.handler.Handler`: what it sends and how.

A record and a batch in the format of ``POST /send_logs`` (``docs/API.md``), one HTTP attempt
with the batch's ``Idempotency-Key``, and what the answer means (`PERMANENT_STATUSES`, the
``Retry-After`` delay, a one-line description of an error answer). The handler's queue, its
sender thread and its retries are in `bot_logging_server.handler`.

Standard library only, like the handler: nothing here needs the server's dependencies.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["PERMANENT_STATUSES", "batch_body", "post_batch", "process_name", "wire_record"]

#: Answers that no retry can fix: the batch is dropped and counted (``dropped_rejected``).
#: A 413 is split first; only a single record that is still too large is dropped.
PERMANENT_STATUSES = frozenset({400, 404, 405, 410, 411, 413, 414, 415, 422})

_MAX_LEVEL = 100  # the server accepts levels 0..100
_DETAIL_CHARS = 200


def process_name() -> str:
    """The process's name as ``psutil.Process().name()`` gives it on Linux, else the exe's."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        name = Path("/proc/self/comm").read_text().strip()
        if name:
            return name
    return os.path.basename(sys.executable) or "python"


def _clean(text: str) -> str:
    """`text` safe to encode as UTF-8 (lone surrogates escaped, not a 400 for the batch)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _describe(status: int, body: bytes) -> str:
    """``HTTP 400 BadRequest: data.logs[0].level: ...`` from an error answer."""
    text = f"HTTP {status}"
    with contextlib.suppress(ValueError, AttributeError):
        answer = json.loads(body)
        text += f" {answer.get('message', '')}".rstrip()
        if answer.get("detail"):
            text += f": {str(answer['detail'])[:_DETAIL_CHARS]}"
    return text


def wire_record(record: logging.LogRecord, msg: str) -> dict[str, Any]:
    """The wire record of `record`, `msg` its formatted message: ``{"level", "msg",
    "event_at", "p_description"}``."""
    return {
        "level": min(max(int(record.levelno), 0), _MAX_LEVEL),
        "msg": _clean(msg),
        "event_at": datetime.fromtimestamp(record.created, UTC).isoformat(),
        "p_description": _clean(str(record.name)),
    }


def batch_body(user: str, p_name: str, records: list[dict[str, Any]]) -> bytes:
    """The request body for `records` (the wire format of ``POST /send_logs``)."""
    data = {
        "user": user,
        "pid": os.getpid(),
        "p_name": _clean(p_name),
        "post_time": datetime.now(UTC).isoformat(),
        "logs": records,
    }
    return json.dumps({"data": data}, ensure_ascii=False, separators=(",", ":")).encode()


def post_batch(
    opener: urllib.request.OpenerDirector,
    url: str,
    token: str,
    body: bytes,
    key: str,
    timeout: float,
) -> tuple[int | None, float | None, str]:
    """One attempt: (status or None, Retry-After seconds or None, error description)."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-User-Token": token,
            "Idempotency-Key": key,
            "User-Agent": "bot-logging-server-handler",
        },
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read()
            return response.status, None, ""
    except urllib.error.HTTPError as exc:
        with exc:
            answer = exc.read(65536)
        return (
            exc.code,
            _retry_after(exc.headers.get("Retry-After")),
            _describe(exc.code, answer),
        )
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return None, None, f"{type(exc).__name__}: {exc}"
