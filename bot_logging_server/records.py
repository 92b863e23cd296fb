"""How a stored record looks on the wire: JSON objects, NDJSON lines, CSV rows, SSE events.

A record carries every column of ``user_logs`` under its name, ``level`` as the number plus
``level_name``, and every time in ISO 8601 UTC with microseconds and ``Z``
(``2020-05-05T12:22:21.000000Z``). Usage events (`event_json`) and sessions
(`session_json`) follow the same rules.

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

from bot_logging_server.storage import Session, StoredEvent, StoredLog

__all__ = [
    "CSV_COLUMNS",
    "csv_cell",
    "csv_header",
    "csv_rows",
    "event_json",
    "iso",
    "level_name",
    "ndjson_lines",
    "record_json",
    "session_json",
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


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


def event_json(event: StoredEvent) -> dict[str, Any]:
    """A stored usage event as the read endpoints answer it
    (`openapi.responses.StoredEventSchema`)."""
    return {
        "id": event.id,
        "source": event.source,
        "session": event.session,
        "session_id": event.session_id,
        "ingest_key_id": event.ingest_key_id,
        "category": event.category,
        "name": event.name,
        "page": event.page,
        "data": event.data,
        "data_raw": event.data_raw,
        "client_time": event.client_time,
        "client_at": _iso(event.client_at),
        "time_valid": event.time_valid,
        "event_at": iso(event.event_at),
        "received_at": iso(event.received_at),
        "sequence": event.sequence,
        "ip": event.ip,
        "user_agent": event.user_agent,
    }


def session_json(session: Session) -> dict[str, Any]:
    """A session as the read endpoints answer it (`openapi.responses.SessionSchema`)."""
    return {
        "id": session.id,
        "source": session.source,
        "session": session.key,
        "ingest_key_id": session.ingest_key_id,
        "started_at": iso(session.started_at),
        "started_client_time": session.started_client_time,
        "started_client_at": _iso(session.started_client_at),
        "stopped_at": _iso(session.stopped_at),
        "stopped_client_time": session.stopped_client_time,
        "stopped_client_at": _iso(session.stopped_client_at),
        "attributes": session.attributes,
        "ip": session.ip,
        "user_agent": session.user_agent,
        "event_count": session.event_count,
        "last_event_at": _iso(session.last_event_at),
        "last_event_name": session.last_event_name,
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
