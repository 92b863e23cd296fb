#!/usr/bin/env python3
"""Ingest benchmark: the real server under wrk, beside the database's own ceiling.

Run from the repository root (see bench/README.md)::

    python3 bench/run.py                      # full matrix, 3 x 10 s per cell, both backends
    python3 bench/run.py --quick              # 1 x 3 s per cell: a smoke run
    python3 bench/run.py --soak 300           # also: RSS over a 5-minute full-load run

For each backend (MariaDB in a scratch database created and dropped here, and a SQLite file
in a temporary directory) it starts ``python3 app.py`` as a subprocess, creates a user with
the CLI, and drives ``bench/load.lua`` (the real client's request) with wrk. After every run it
checks that the rows added equal the acknowledged records (ok200 x batch, plus at most
connections x batch from requests in flight when wrk stopped). Around every run it measures
the database's own ceiling in a fresh database (``bench/slap_ceiling.sh``, or
``bench/sqlite_ceiling.py``), before and after; a run whose two ceilings differ by more than
20 % (the machine's load changed under it) is flagged and left out of the medians. It writes
the medians to bench/RESULTS.md.

The pieces live beside it in bench/: ``benchutil`` (the repository root, ``die``, /proc),
``backends`` (the storages), ``servers`` (the server under test), ``wrk`` (one wrk run),
``results`` (a run's and a cell's figures), ``ceilings`` (the database's own ceiling),
``side_tests`` (the side tests' rows, the soak) and ``report`` (the Markdown report). This
file is the command line and the order of the runs; the names the other bench scripts used
from it are still importable from here.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time

import wrk
from backends import Backend, FloorBackend, MySQLBackend, SQLiteBackend
from benchutil import (
    REPO,
    TICKS,
    cpu_seconds,
    die,
    loadavg,
    mariadbd_pid,
    proc_tree,
    rss_mb,
)
from ceilings import SLAP, Ceilings, slap_ceiling, sqlite_ceiling
from report import ceiling_notes, matrix_table, write_report
from results import CEILING_DRIFT, Cell, Run, fmt
from servers import Server, create_user, free_port
from side_tests import side_line, soak
from wrk import RESULT_RE, run_wrk

__all__ = [
    "AIO",
    "CEILING_DRIFT",
    "GOAL_CELLS",
    "PRODUCTION",
    "REPO",
    "RESULT_RE",
    "SIDE_TESTS",
    "SLAP",
    "TICKS",
    "UVI",
    "Backend",
    "Ceilings",
    "Cell",
    "FloorBackend",
    "MySQLBackend",
    "Run",
    "SQLiteBackend",
    "Server",
    "ceiling_notes",
    "cpu_seconds",
    "create_user",
    "die",
    "fmt",
    "free_port",
    "loadavg",
    "main",
    "mariadbd_pid",
    "matrix_table",
    "proc_tree",
    "rss_mb",
    "run_wrk",
    "side_line",
    "slap_ceiling",
    "soak",
    "sqlite_ceiling",
    "write_report",
]

AIO = ["--event-loop", "asyncio"]
UVI = ["--http-server", "uvicorn"]
#: The documented production command's serving flags (docs/OPERATIONS.md, README).
PRODUCTION = ["--workers", "auto", "--http-server", "uvicorn"]
#: The goals' (batch, connections) cells: >= 50 % of the ceiling at 30 x 64 with p99 < 100 ms,
#: >= 5,000 req/s at 1 x 64, >= 50 % at 1000 x 64, no error at 256 connections.
GOAL_CELLS = ((30, 64), (30, 256), (1, 64), (1000, 64))
#: The side tests (``--side``), besides the matrix.
SIDE_TESTS = ("one-client", "production", "hypercorn-workers", "asyncio", "uvicorn", "floor")


def __getattr__(name: str) -> object:
    """``LOAD_LUA`` and ``WRK_RUNS`` are read from ``wrk``, where they are set and counted."""
    if name in ("LOAD_LUA", "WRK_RUNS"):
        return getattr(wrk, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Parse the flags, run the matrix and the side tests on each backend, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=3, help="runs per cell (median reported)")
    parser.add_argument("--batches", default="1,30,1000", help="records per request")
    parser.add_argument("--conns", default="8,64", help="wrk connections")
    parser.add_argument(
        "--extra", default="30:256", help="extra BATCH:CONNS cells (the overload check)"
    )
    parser.add_argument("--backends", default="mysql,sqlite")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--python", default=sys.executable, help="interpreter for app.py")
    parser.add_argument("--mysql", default="root@127.0.0.1:3306", help="USER[:PW]@HOST:PORT")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the ceilings")
    parser.add_argument(
        "--slap-queries",
        type=int,
        default=0,
        help="INSERTs per MySQL ceiling measurement (default: slap_ceiling.sh's own)",
    )
    parser.add_argument("--no-extras", action="store_true", help="skip every side test")
    parser.add_argument(
        "--side",
        default=",".join(SIDE_TESTS),
        help=f"side tests to run, of: {', '.join(SIDE_TESTS)} (default: all)",
    )
    parser.add_argument("--soak", type=float, default=0, help="RSS soak run seconds (0: none)")
    parser.add_argument("--server-args", default="", help="extra flags for app.py")
    parser.add_argument("--quick", action="store_true", help="1 run x 3 s per cell")
    parser.add_argument("--out", default=str(REPO / "bench" / "RESULTS.md"))
    args = parser.parse_args()
    if args.quick:
        args.runs, args.duration = 1, 3
    side = set() if args.no_extras else set(filter(None, args.side.split(",")))
    if side - set(SIDE_TESTS):
        die(f"--side: unknown {', '.join(sorted(side - set(SIDE_TESTS)))}")
    if not wrk.LOAD_LUA.exists():
        die(f"{wrk.LOAD_LUA} is missing")
    if shutil.which("wrk") is None:
        die("wrk is not installed (apt-get install -y wrk)")
    batches = [int(b) for b in args.batches.split(",") if b]
    conns = [int(c) for c in args.conns.split(",") if c]
    extras = [tuple(int(x) for x in e.split(":")) for e in args.extra.split(",") if e]
    cred, _, hostport = args.mysql.rpartition("@")
    my_user, _, my_pw = cred.partition(":")
    my_host, _, my_port = hostport.partition(":")
    server_extra = args.server_args.split()
    db_pid = mariadbd_pid()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    loads = [f"start {loadavg()}"]

    cells: list[Cell] = []
    notes: list[str] = []
    extra_lines: list[str] = []

    def log(msg: str) -> None:
        print(msg, flush=True)

    for backend_name in args.backends.split(","):
        backend: Backend = (
            MySQLBackend(my_host, int(my_port or 3306), my_user, my_pw)
            if backend_name == "mysql"
            else SQLiteBackend()
        )
        ceilings = Ceilings(
            backend.name, args.python, args.duration, not args.no_ceiling, log, args.slap_queries
        )
        backend.setup()
        try:
            token = create_user(args.python, backend)
            plan = [(b, c) for b in batches for c in conns] + [
                (b, c) for b, c in extras if b in batches
            ]
            with Server(args.python, backend, 1, server_extra) as server:
                # Warm-up: the auth cache, the pool, the first pages of the table.
                run_wrk(server, token, 30, 8, 2, args.threads, db_pid)
                # Runs are interleaved (run 1 of every cell of a batch size, then run 2...),
                # each between two measurements of the ceiling, so the server and the ceiling
                # it is compared with see the same background load.
                by_cell = {(b, n): Cell(backend.name, b, n) for b, n in plan}
                for batch in dict.fromkeys(b for b, _ in plan):
                    for i in range(args.runs):
                        for b, n in plan:
                            if b != batch:
                                continue
                            r = ceilings.around(
                                b,
                                lambda b=b, n=n, server=server, token=token: run_wrk(
                                    server, token, b, n, args.duration, args.threads, db_pid
                                ),
                            )
                            by_cell[(b, n)].runs.append(r)
                            log(
                                f"{backend.name} batch={b} conns={n} run {i + 1}: "
                                f"{r.req_s:.0f} req/s {r.logs_s:.0f} rec/s p50 {r.p50:.1f} "
                                f"p99 {r.p99:.1f} non200 {r.non200} sock {r.sock_err} "
                                f"rows {'ok' if r.rows_ok else 'MISMATCH'} ({r.detail}) "
                                f"cpu srv {r.cpu_server:.2f} db {r.cpu_db:.2f} "
                                f"wrk {r.cpu_wrk:.2f}"
                                + (f" ceiling {r.ceilings_text()}" if r.ceiling else "")
                                + (" FLAGGED" if r.flagged else "")
                            )
                            if not r.rows_ok:
                                notes.append(f"{backend.name} {b}/{n}: {r.detail}")
                cells.extend(by_cell.values())
                for cell in by_cell.values():
                    notes.extend(ceiling_notes(backend.name, cell.runs))
                if "one-client" in side:
                    # One kept-alive client, 30-record batches, as the real client sends.
                    one = [
                        ceilings.around(
                            30,
                            lambda server=server, token=token: run_wrk(
                                server, token, 30, 1, args.duration, 1, db_pid
                            ),
                        )
                        for _ in range(args.runs)
                    ]
                    notes.extend(ceiling_notes(f"{backend.name} one client", one))
                    one = [r for r in one if not r.flagged]
                    if one:
                        p50 = statistics.median(r.p50 for r in one)
                        p99 = statistics.median(r.p99 for r in one)
                        rps = statistics.median(r.req_s for r in one)
                        extra_lines.append(
                            f"| {backend.name} | one kept-alive client, batch 30 | p50 "
                            f"{p50:.2f} ms, p99 {p99:.2f} ms, {rps:,.0f} req/s |"
                        )
                    else:
                        extra_lines.append(
                            f"| {backend.name} | one kept-alive client, batch 30 | flagged: "
                            "the ceiling moved more than 20 % during every run |"
                        )
                    log(extra_lines[-1])
                if args.soak and backend.name == "mysql":
                    extra_lines.append(soak(server, token, args, db_pid, log))
            # (side test, label, workers, flags, (batch, conns) cells); --workers 1 on
            # hypercorn is the matrix. The production command is checked against every goal.
            variants = [
                ("production", "production: " + " ".join(PRODUCTION), 1, PRODUCTION, GOAL_CELLS),
                ("hypercorn-workers", "hypercorn --workers 2", 2, [], ((1, 64), (30, 64))),
                ("asyncio", "hypercorn --event-loop asyncio (no uvloop)", 1, AIO, ((30, 64),)),
                ("uvicorn", "--http-server uvicorn", 1, UVI, ((1, 64), (30, 64))),
            ]
            if backend.name == "sqlite":
                variants = [
                    ("uvicorn", "--http-server uvicorn", 1, UVI, ((30, 64), (1000, 64))),
                    (
                        "production",
                        "production: " + " ".join(PRODUCTION),
                        1,
                        PRODUCTION,
                        ((30, 64), (1000, 64)),
                    ),
                ]
            for name, label, workers, flags, sizes in variants:
                if name not in side:
                    continue
                with Server(args.python, backend, workers, server_extra + flags) as server:
                    run_wrk(server, token, 30, 8, 2, args.threads, db_pid)
                    for batch, n in sizes:
                        line, runs = side_line(
                            label, server, token, batch, n, args, db_pid, ceilings
                        )
                        extra_lines.append(line)
                        notes.extend(ceiling_notes(f"{backend.name} {label}", runs))
                        log(extra_lines[-1])
        finally:
            backend.teardown()
        loads.append(f"after {backend_name} {loadavg()}")

    if "floor" in side:
        # The HTTP stack alone (no parsing, auth, validation or storage): the floor.
        floors = [
            ("quart", "hypercorn", (1, 30)),
            ("quart", "uvicorn", (1, 30)),
            ("asgi", "hypercorn", (1,)),
        ]
        no_ceiling = Ceilings("floor", args.python, args.duration, False, log)
        for kind, http, sizes in floors:
            flags = ["--kind", kind, "--http-server", http]
            with Server(args.python, FloorBackend(kind), 1, flags) as server:
                run_wrk(server, "0" * 32, 1, 8, 2, args.threads, db_pid)
                for batch in sizes:
                    label = f"HTTP floor: bare {kind} app on {http} + uvloop, no work"
                    line, _ = side_line(
                        label, server, "0" * 32, batch, 64, args, db_pid, no_ceiling
                    )
                    extra_lines.append(line)
                    log(extra_lines[-1])

    write_report(args, started, loads, cells, extra_lines, notes)


if __name__ == "__main__":
    main()
