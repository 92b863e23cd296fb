#!/usr/bin/env python3
"""Validation speed: µs to turn one ``POST /send_logs`` body (bytes) into the rows to insert.

Run from the repository root: ``python3 bench/validate_speed.py`` (about 30 s; no server, no
database). The body is the one ``bench/load.lua`` sends (the real client's shape), at 30 and
at 1000 records. Each way of reading it is timed from the raw bytes to the `LogRow` list,
in interleaved rounds (so that a busy machine slows every variant alike); the table gives
the best and the median round, in µs per batch.

* ``msgspec`` (the server's path): `read_batch` decodes the body into typed msgspec structs,
  `Batch.rows` applies the value rules;
* ``hand-written``: orjson, then the plain loop over the parsed dicts that the msgspec path
  replaced (kept below only as this comparison's baseline), with msgspec `LogRow`\\ s, and
  with the frozen dataclass `LogRow` used before;
* ``marshmallow``: orjson, then the reference schemas alone (every unusual body's path).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot_logging_server.json_body import parse_json
from bot_logging_server.schemas.ingest import (
    load_batch_reference,
    read_batch,
    read_envelope,
)
from bot_logging_server.schemas.values import (
    clean_text,
    cut_name,
    message_text,
    parse_bigint,
    parse_level,
    parse_timestamp,
)
from bot_logging_server.storage import LogRow

LIMIT = 65_536


@dataclass(frozen=True, slots=True)
class DataclassRow:
    """`LogRow` as it was: a frozen dataclass with the same fields."""

    pid: int
    p_name: str
    p_description: str
    level: int
    msg: str
    truncated: bool
    msg_length: int
    event_at: datetime
    post_time: datetime


def body(records: int) -> bytes:
    """What load.lua sends: levels 30/40/50, distinct messages, one timestamp."""
    now = "2026-11-30T20:00:00"
    logs = [
        {
            "level": (30, 40, 50)[i % 3],
            "event_at": now,
            "msg": f"bench message {i + 1} of {records} from wrk thread 1",
            "p_description": "bench_load",
        }
        for i in range(records)
    ]
    data = {"post_time": now, "pid": 40001, "p_name": "wrk", "logs": logs, "user": "bench"}
    return orjson.dumps({"data": data})


def hand_written(data: Mapping[str, Any], row: Callable[..., Any]) -> list[Any] | None:
    """The hand-written loop the msgspec path replaced (None: marshmallow must answer)."""
    try:
        user, logs = data["user"], data["logs"]
        if not isinstance(user, str) or type(logs) is not list:
            return None
        pid = parse_bigint(data["pid"])
        p_name = cut_name(data["p_name"])
        post_time = parse_timestamp(data["post_time"])
        levels: dict[object, int] = {}
        times: dict[str, datetime] = {}
        rows = []
        for record in logs:
            if type(record) is not dict:
                return None
            level_in = record["level"]
            key = (type(level_in), level_in)
            level = levels.get(key)
            if level is None:
                level = levels[key] = parse_level(level_in)
            msg_in = record["msg"]
            msg = clean_text(msg_in) if type(msg_in) is str else message_text(msg_in)
            stamp = record["event_at"]
            event_at = times.get(stamp) if type(stamp) is str else None
            if event_at is None:
                event_at = times[stamp] = parse_timestamp(stamp)
            description = record.get("p_description")
            description = "" if description is None else cut_name(description)
            length = len(msg)
            truncated = length > LIMIT
            rows.append(
                row(
                    pid=pid,
                    p_name=p_name,
                    p_description=description,
                    level=level,
                    msg=msg[:LIMIT] if truncated else msg,
                    truncated=truncated,
                    msg_length=length,
                    event_at=event_at,
                    post_time=post_time,
                )
            )
    except (KeyError, ValueError, TypeError, RecursionError):
        return None
    return rows


def variants() -> dict[str, Callable[[bytes], list[Any]]]:
    """Each way of reading a body, from its bytes to its rows."""

    def with_msgspec(raw: bytes) -> list[Any]:
        return read_batch(raw, LIMIT).rows()

    def hand_msgspec_rows(raw: bytes) -> list[Any]:
        rows = hand_written(read_envelope(parse_json(raw))[1], LogRow)
        assert rows is not None
        return rows

    def hand_dataclass_rows(raw: bytes) -> list[Any]:
        rows = hand_written(read_envelope(parse_json(raw))[1], DataclassRow)
        assert rows is not None
        return rows

    def marshmallow(raw: bytes) -> list[Any]:
        return load_batch_reference(read_envelope(parse_json(raw))[1], LIMIT)

    return {
        "msgspec (the server's path)": with_msgspec,
        "hand-written, msgspec LogRow": hand_msgspec_rows,
        "hand-written, dataclass LogRow (before)": hand_dataclass_rows,
        "marshmallow alone": marshmallow,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="30,1000", help="records per body")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--seconds", type=float, default=0.2, help="per variant per round")
    args = parser.parse_args()
    ways = variants()
    print("| records | variant | best µs/batch | median µs/batch | times msgspec (median) |")
    print("|---:|---|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        raw = body(size)
        expected = ways["msgspec (the server's path)"](raw)
        for fn in ways.values():
            rows = fn(raw)
            assert len(rows) == len(expected) and rows[-1].msg == expected[-1].msg
        numbers = {}
        for name, fn in ways.items():
            once = timeit.timeit(lambda fn=fn, raw=raw: fn(raw), number=3) / 3
            numbers[name] = max(1, int(args.seconds / max(once, 1e-9)))
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, fn in ways.items():
                n = numbers[name]
                elapsed = timeit.timeit(lambda fn=fn, raw=raw: fn(raw), number=n)
                times[name].append(1e6 * elapsed / n)
        base = statistics.median(times["msgspec (the server's path)"])
        for name, values in times.items():
            med = statistics.median(values)
            print(f"| {size} | {name} | {min(values):,.1f} | {med:,.1f} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
