#!/usr/bin/env python3
"""SQLite's own ceiling for log rows: a bare Python loop, no HTTP, no asyncio, no validation.

Creates a SQLite file with the server's own schema (its migrations) and the server's pragmas
(WAL, ``synchronous=FULL``), then for `--seconds` commits multi-row INSERTs of `--batch` log
rows, one transaction each, with the same row values load.lua sends. Prints
``sqlite batch=B rows=N secs=S rows_s=R``. The server on SQLite cannot beat this number on
the same machine; bench/run.py reports the server's records/s as a fraction of it.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot_logging_server.storage.sqlite import MIGRATIONS

COLUMNS = (
    "user_id, pid, p_name, p_description, level, msg, truncated, msg_length, event_at, "
    "post_time, received_at"
)
MAX_PARAMS = 32_766  # SQLite's default limit of host parameters per statement (3.32+)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--path", help="SQLite file (default: a temporary one, removed after)")
    args = parser.parse_args()
    tmp = None
    path = args.path
    if path is None:
        tmp = tempfile.TemporaryDirectory(prefix="sqlite_ceiling_")
        path = os.path.join(tmp.name, "ceiling.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    for migration in MIGRATIONS:
        for statement in migration.statements:
            conn.execute(statement)
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    rows = [
        (1, 40001, "wrk", "bench_load", (30, 40, 50)[i % 3],
         f"bench message {i + 1} of {args.batch} from wrk thread 1", 0, 40, now, now, now)
        for i in range(args.batch)
    ]  # fmt: skip
    per_stmt = max(1, MAX_PARAMS // 11)
    chunks = [rows[i : i + per_stmt] for i in range(0, len(rows), per_stmt)]
    statements = [
        (
            f"INSERT INTO user_logs ({COLUMNS}) VALUES "
            + ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk)),
            [v for row in chunk for v in row],
        )
        for chunk in chunks
    ]
    done = 0
    start = time.perf_counter()
    deadline = start + args.seconds
    while time.perf_counter() < deadline:
        conn.execute("BEGIN IMMEDIATE")
        for sql, params in statements:
            conn.execute(sql, params)
        conn.execute("COMMIT")
        done += args.batch
    secs = time.perf_counter() - start
    conn.close()
    if tmp is not None:
        tmp.cleanup()
    print(f"sqlite batch={args.batch} rows={done} secs={secs:.2f} rows_s={done / secs:.0f}")


if __name__ == "__main__":
    main()
