"""The server's own log lines: text for people, or one JSON object per line for collectors.

``--log-format text`` (the default) writes ``2026-01-01 12:00:00,123 INFO logger: message``;
``--log-format json`` writes every line as one JSON object::

    {"time": "2026-01-01T12:00:00.123Z", "level": "INFO", "logger": "bot_logging_server.access",
     "message": "POST /send_logs 200 3.1ms user=alice records=2", "method": "POST", ...}

with ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` (the arguments already
merged in), ``exception`` (the traceback, when there is one) and every extra the caller
passed (``log.info(..., extra={...})``; values JSON cannot hold are written as text). Both go
to stderr, hypercorn's and uvicorn's messages included.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["FORMATS", "JSONFormatter", "configure"]

#: The values of ``--log-format``.
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: The attributes every `logging.LogRecord` has: anything else on a record is an extra.
_STANDARD = frozenset(
    vars(logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


class JSONFormatter(logging.Formatter):
    """Format a record as one line of JSON: time, level, logger, message, then the extras."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line (no newline inside it, ever)."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry and not name.startswith("_"):
                entry[name] = value
        return orjson.dumps(entry, default=str).decode()


def configure(level: str, log_format: str = "text") -> None:
    """Send every logger's messages to stderr at `level`, as text or JSON lines.

    Does nothing when the root logger already has a handler (as `logging.basicConfig`).
    """
    if log_format == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JSONFormatter())
        logging.basicConfig(level=level, handlers=[handler])
    else:
        logging.basicConfig(level=level, format=TEXT_FORMAT)
