"""How a stored record looks on the wire: JSON objects, NDJSON lines, CSV rows, SSE events.

A record carries every column of ``user_logs`` under its name, ``level`` as the number plus
``level_name``, and every time in ISO 8601 UTC with microseconds and ``Z``
(``2020-05-05T12:22:21.000000Z``).

In CSV, a text cell that a spreadsheet would run as a formula (it begins with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return) is written with a leading ``'`` (`csv_cell`): an
exported log line must never execute in the reader's spreadsheet. NDJSON and the other
formats carry the text unchanged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson

from bot_logging_server.storage import StoredLog

__all__ = [
    "CSV_COLUMNS",
    "csv_cell",
    "csv_header",
    "csv_rows",
    "iso",
    "level_name",
    "ndjson_lines",
    "record_json",
    "sse",
]

#: The columns of a CSV export, in order (the keys of `record_json`).
CSV_COLUMNS = (
    "id",
    "user_id",
    "level",
    "level_name",
    "msg",
    "p_name",
    "p_description",
    "pid",
    "truncated",
    "msg_length",
    "event_at",
    "post_time",
    "received_at",
)
#: What a spreadsheet reads as the start of a formula (OWASP's list for CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_LEVEL_LABELS = {0: "NOTSET", 10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


def level_name(level: int) -> str:
    """The name Python's logging gives `level`: ``ERROR`` for 40, ``Level 35`` for 35."""
    return _LEVEL_LABELS.get(level, f"Level {level}")


def iso(moment: datetime) -> str:
    """A naive UTC datetime as ISO 8601 with microseconds and ``Z``."""
    return moment.isoformat(timespec="microseconds") + "Z"


def record_json(log: StoredLog) -> dict[str, Any]:
    """`log` as the JSON object the read endpoints answer (`openapi.responses.StoredLogSchema`)."""
    return {
        "id": log.id,
        "user_id": log.user_id,
        "level": log.level,
        "level_name": level_name(log.level),
        "msg": log.msg,
        "p_name": log.p_name,
        "p_description": log.p_description,
        "pid": log.pid,
        "truncated": log.truncated,
        "msg_length": log.msg_length,
        "event_at": iso(log.event_at),
        "post_time": iso(log.post_time),
        "received_at": iso(log.received_at),
    }


def ndjson_lines(logs: Iterable[StoredLog]) -> bytes:
    """One JSON object per line, each line ending in ``\\n``."""
    return b"".join(orjson.dumps(record_json(log)) + b"\n" for log in logs)


def _csv(rows: Iterable[Iterable[object]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode()


def csv_cell(value: object) -> object:
    """`value` as a CSV cell: text a spreadsheet would run as a formula gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_header() -> bytes:
    """The CSV header line (`CSV_COLUMNS`)."""
    return _csv([CSV_COLUMNS])


def csv_rows(logs: Iterable[StoredLog]) -> bytes:
    """CSV lines (RFC 4180 quoting, CRLF) for `logs`; booleans as ``true``/``false``.

    Every cell goes through `csv_cell` (no formula injection).
    """
    rows = []
    for log in logs:
        record = record_json(log)
        record["truncated"] = "true" if log.truncated else "false"
        rows.append([csv_cell(record[column]) for column in CSV_COLUMNS])
    return _csv(rows)


def sse(log: StoredLog, event_id: int) -> bytes:
    """One Server-Sent Event carrying `log` (``data:`` is one JSON line), with ``id: event_id``."""
    return b"id: %d\ndata: %s\n\n" % (event_id, orjson.dumps(record_json(log)))
