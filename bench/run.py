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
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOAD_LUA = REPO / "bench" / "load.lua"
SLAP = REPO / "bench" / "slap_ceiling.sh"
TICKS = os.sysconf("SC_CLK_TCK")
RESULT_RE = re.compile(r"^RESULT (.*)$", re.M)
AIO = ["--event-loop", "asyncio"]
UVI = ["--http-server", "uvicorn"]
#: The documented production command's serving flags (docs/OPERATIONS.md, README).
PRODUCTION = ["--workers", "auto", "--http-server", "uvicorn"]
#: A run whose ceilings before and after differ by more than this share is flagged.
CEILING_DRIFT = 0.20
#: The goals' (batch, connections) cells: >= 50 % of the ceiling at 30 x 64 with p99 < 100 ms,
#: >= 5,000 req/s at 1 x 64, >= 50 % at 1000 x 64, no error at 256 connections.
GOAL_CELLS = ((30, 64), (30, 256), (1, 64), (1000, 64))
#: The side tests (``--side``), besides the matrix.
SIDE_TESTS = ("one-client", "production", "hypercorn-workers", "asyncio", "uvicorn", "floor")


def die(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr)
    sys.exit(2)


# -- /proc helpers ------------------------------------------------------------------------


def proc_tree(root: int) -> list[int]:
    """`root` and all its descendants (hypercorn workers are children of the server)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of `pids` (from /proc/<pid>/stat), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields_[11]) + int(fields_[12])
    return total / TICKS


def rss_mb(pids: list[int]) -> float:
    """Summed VmRSS of `pids`, in MiB."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def mariadbd_pid() -> int | None:
    out = subprocess.run(["pidof", "mariadbd"], capture_output=True, text=True).stdout.split()
    if not out:
        out = subprocess.run(["pidof", "mysqld"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- databases ----------------------------------------------------------------------------


class Backend:
    """Where the server stores rows, and how the benchmark counts them."""

    name: str
    url: str

    def setup(self) -> None: ...
    def teardown(self) -> None: ...
    def count(self) -> int: ...


class MySQLBackend(Backend):
    def __init__(self, host: str, port: int, user: str, password: str) -> None:
        import pymysql

        self.name = "mysql"
        self._pymysql = pymysql
        self._args = {"host": host, "port": port, "user": user, "password": password}
        self.db = f"bench_{uuid.uuid4().hex[:10]}"
        cred = user + (f":{password}" if password else "")
        self.url = f"mysql://{cred}@{host}:{port}/{self.db}"

    def _run(self, sql: str) -> tuple:
        conn = self._pymysql.connect(**self._args, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchone() or ()
        finally:
            conn.close()

    def setup(self) -> None:
        self._run(f"CREATE DATABASE `{self.db}` CHARACTER SET utf8mb4")

    def teardown(self) -> None:
        self._run(f"DROP DATABASE IF EXISTS `{self.db}`")

    def count(self) -> int:
        return int(self._run(f"SELECT COUNT(*) FROM `{self.db}`.user_logs")[0])


class SQLiteBackend(Backend):
    def __init__(self) -> None:
        self.name = "sqlite"
        self._dir = tempfile.mkdtemp(prefix="bench_sqlite_")
        self.path = os.path.join(self._dir, "bench.db")
        self.url = f"sqlite:///{self.path}"

    def teardown(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def count(self) -> int:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM user_logs").fetchone()[0])
        finally:
            conn.close()


class FloorBackend(Backend):
    """No database: bench/floor_app.py, the HTTP stack's own cost (rows are not counted)."""

    def __init__(self, kind: str) -> None:
        self.name = f"floor-{kind}"
        self.url = ""

    def count(self) -> int:
        return 0


# -- the server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python3 app.py`` on `backend`, started and stopped by the benchmark."""

    def __init__(self, python: str, backend: Backend, workers: int, extra: list[str]) -> None:
        self.backend = backend
        self.port = free_port()
        fd, self.log_path = tempfile.mkstemp(prefix="bench_server_", suffix=".log")
        self.log = os.fdopen(fd, "w")
        if isinstance(backend, FloorBackend):
            self.args = [python, "bench/floor_app.py", "--port", str(self.port), *extra]
        else:
            self.args = [python, "app.py", "--database-url", backend.url]
            self.args += ["--port", str(self.port), "--workers", str(workers)]
            self.args += ["--log-level", "WARNING", *extra]
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                die(f"server exited at start-up; see {self.log_path}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return self
            time.sleep(0.2)
        self.__exit__()
        die(f"server did not answer within 30 s; see {self.log_path}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def pids(self) -> list[int]:
        assert self.proc is not None
        return proc_tree(self.proc.pid)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def create_user(python: str, backend: Backend) -> str:
    out = subprocess.run(
        [python, "app.py", "--database-url", backend.url, "users", "add", "bench"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        die(f"users add failed: {out.stderr.strip()}")
    return out.stdout.strip().splitlines()[-1]


# -- one wrk run --------------------------------------------------------------------------

#: wrk runs so far (a ceiling measured since the last one is still "just before" the next).
WRK_RUNS = 0


@dataclass
class Run:
    batch: int
    conns: int
    req_s: float
    logs_s: float
    p50: float
    p99: float
    non200: int
    sock_err: int
    rss: float
    cpu_server: float
    cpu_db: float
    cpu_wrk: float
    rows_ok: bool
    cpu_us_req: float
    detail: str = ""
    #: The database's own ceiling (rows/s) measured just before and just after this run.
    ceiling_before: float | None = None
    ceiling_after: float | None = None

    @property
    def ceiling(self) -> float | None:
        """The mean of the two ceilings (None when not measured)."""
        if self.ceiling_before is None or self.ceiling_after is None:
            return None
        return (self.ceiling_before + self.ceiling_after) / 2

    @property
    def of_ceiling(self) -> float | None:
        """Records/s as a share of `ceiling`."""
        return None if not self.ceiling else self.logs_s / self.ceiling

    @property
    def flagged(self) -> bool:
        """The two ceilings differ by more than `CEILING_DRIFT`: the load changed, no quote."""
        low, high = sorted((self.ceiling_before or 0, self.ceiling_after or 0))
        return self.ceiling is not None and (low == 0 or high / low - 1 > CEILING_DRIFT)

    def ceilings_text(self) -> str:
        """``before → after`` rows/s."""
        return f"{fmt(self.ceiling_before or 0)} → {fmt(self.ceiling_after or 0)}"


def run_wrk(
    server: Server,
    token: str,
    batch: int,
    conns: int,
    seconds: float,
    threads: int,
    db_pid: int | None,
    path: str = "//send_logs",
) -> Run:
    backend = server.backend
    before = backend.count()
    pids = server.pids
    cpu0 = cpu_seconds(pids), cpu_seconds([db_pid] if db_pid else [])
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = dict(os.environ, LOAD_TOKEN=token, LOAD_USER="bench", LOAD_BATCH=str(batch))
    env["LOAD_PATH"] = path
    global WRK_RUNS
    WRK_RUNS += 1
    threads = min(threads, conns)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds:.0f}s", "--latency"]
    cmd += ["--timeout", "30s"]
    cmd += ["-s", str(LOAD_LUA), server.base]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Requests in flight when wrk stopped may still commit: let them land before counting.
    time.sleep(1.0)
    cpu1 = cpu_seconds(pids), cpu_seconds([db_pid] if db_pid else [])
    match = RESULT_RE.search(out.stdout)
    if out.returncode != 0 or match is None:
        die(f"wrk failed: {out.stderr.strip() or out.stdout[-500:]}")
    res = dict(kv.split("=") for kv in match.group(1).split())
    ok = int(res["ok200"])
    added = backend.count() - before
    low, high = ok * batch, (ok + conns) * batch
    rows_ok = low <= added <= high or isinstance(backend, FloorBackend)
    wall = seconds
    return Run(
        batch=batch,
        conns=conns,
        req_s=float(res["req_s"]),
        logs_s=float(res["logs_s"]),
        p50=float(res["p50_ms"]),
        p99=float(res["p99_ms"]),
        non200=int(res["non200"]),
        sock_err=int(res["sock_err"]),
        rss=rss_mb(pids),
        cpu_server=(cpu1[0] - cpu0[0]) / wall,
        cpu_db=(cpu1[1] - cpu0[1]) / wall,
        cpu_wrk=(kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime) / wall,
        rows_ok=rows_ok,
        cpu_us_req=1e6 * (cpu1[0] - cpu0[0]) / max(1, int(res["requests"])),
        detail=f"rows added {added}, acknowledged {low} (allowed up to {high})",
    )


@dataclass
class Cell:
    backend: str
    batch: int
    conns: int
    runs: list[Run] = field(default_factory=list)

    @property
    def quoted(self) -> list[Run]:
        """The runs whose ceilings held steady (all of them when none were measured)."""
        return [r for r in self.runs if not r.flagged]

    def med(self, attr: str) -> float:
        values = [getattr(r, attr) for r in self.quoted]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else 0.0

    @property
    def clean(self) -> bool:
        return all(r.non200 == 0 and r.sock_err == 0 and r.rows_ok for r in self.runs)


# -- ceilings -----------------------------------------------------------------------------


def slap_ceiling(batch: int, conc: int = 8, queries: int = 0) -> float:
    """bench/slap_ceiling.sh: mariadb-slap's multi-row INSERTs into a fresh database
    (`queries` INSERTs; 0: the script's own count for the batch size)."""
    cmd = [str(SLAP), str(batch), str(conc)] + ([str(queries)] if queries else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"rows_s=([0-9.]+)", out.stdout)
    if m is None:
        die(f"slap_ceiling.sh failed: {out.stderr.strip() or out.stdout}")
    return float(m.group(1))


def sqlite_ceiling(python: str, batch: int, seconds: float) -> float:
    """bench/sqlite_ceiling.py: a bare Python loop of multi-row INSERTs into a fresh file."""
    script = REPO / "bench" / "sqlite_ceiling.py"
    out = subprocess.run(
        [python, str(script), "--batch", str(batch), "--seconds", str(seconds)],
        capture_output=True,
        text=True,
    )
    m = re.search(r"rows_s=([0-9.]+)", out.stdout)
    if m is None:
        die(f"sqlite_ceiling.py failed: {out.stderr.strip()}")
    return float(m.group(1))


class Ceilings:
    """The database's own ceiling, measured in a fresh database before and after each run.

    The ceiling measured after one run is also the one before the next when nothing ran in
    between at the same batch size. Off for `backend` names without a ceiling (the floors)
    and with ``--no-ceiling``.
    """

    def __init__(
        self, backend: str, python: str, seconds: float, enabled: bool, log, queries: int = 0
    ) -> None:
        self.backend = backend
        self.queries = queries
        self.python = python
        self.seconds = seconds
        self.enabled = enabled and backend in ("mysql", "sqlite")
        self.log = log
        self._last: tuple[int, int, float] | None = None  # (batch, WRK_RUNS, rows/s)

    def measure(self, batch: int) -> float:
        if self.backend == "mysql":
            rows_s = slap_ceiling(batch, queries=self.queries)
        else:
            rows_s = sqlite_ceiling(self.python, batch, min(self.seconds, 10))
        self.log(f"{self.backend} ceiling batch={batch}: {rows_s:,.0f} rows/s")
        self._last = (batch, WRK_RUNS, rows_s)
        return rows_s

    def around(self, batch: int, run: Callable[[], Run]) -> Run:
        """`run()` with the ceiling measured just before and just after it."""
        if not self.enabled:
            return run()
        last = self._last
        fresh = last is not None and last[0] == batch and last[1] == WRK_RUNS
        before = last[2] if fresh else self.measure(batch)
        result = run()
        result.ceiling_before, result.ceiling_after = before, self.measure(batch)
        return result


# -- the report ---------------------------------------------------------------------------


def fmt(n: float) -> str:
    return f"{n:,.0f}" if n >= 100 else f"{n:,.1f}"


def matrix_table(cells: list[Cell]) -> list[str]:
    lines = [
        "| backend | batch | conns | runs quoted | req/s | records/s | ceiling rec/s "
        "| of ceiling | p50 ms | p99 ms | non-200 | rows check | RSS MiB | CPU server "
        "| CPU db | CPU wrk | server CPU µs/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        errors = sum(r.non200 + r.sock_err for r in c.runs)
        check = "ok" if all(r.rows_ok for r in c.runs) else "MISMATCH"
        quoted = f"{len(c.quoted)}/{len(c.runs)}"
        if not c.quoted:
            flagged = "flagged: the ceiling moved more than 20 % during every run (see the notes)"
            cols = [c.backend, c.batch, c.conns, quoted, flagged, *[""] * 5, errors, check]
            lines.append("| " + " | ".join(str(col) for col in [*cols, *[""] * 5]) + " |")
            continue
        ceiling = c.med("ceiling")
        ratio = f"**{100 * c.med('of_ceiling'):.0f}%**" if ceiling else "-"
        lines.append(
            f"| {c.backend} | {c.batch} | {c.conns} | {quoted} | {fmt(c.med('req_s'))} "
            f"| {fmt(c.med('logs_s'))} | {fmt(ceiling) if ceiling else '-'} | {ratio} "
            f"| {c.med('p50'):.1f} | {c.med('p99'):.1f} | {errors} | {check} "
            f"| {c.med('rss'):.0f} | {c.med('cpu_server'):.2f} | {c.med('cpu_db'):.2f} "
            f"| {c.med('cpu_wrk'):.2f} | {c.med('cpu_us_req'):,.0f} |"
        )
    return lines


def ceiling_notes(label: str, runs: list[Run]) -> list[str]:
    """One note per run with its two ceilings; flagged runs say so."""
    notes = []
    for i, r in enumerate(runs, 1):
        if r.ceiling is None:
            continue
        flag = " **flagged, not quoted**" if r.flagged else ""
        notes.append(
            f"{label} batch {r.batch} x {r.conns} run {i}: ceiling {r.ceilings_text()} rows/s, "
            f"{r.logs_s:,.0f} records/s{flag}"
        )
    return notes


def main() -> None:
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
    if not LOAD_LUA.exists():
        die(f"{LOAD_LUA} is missing")
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


def side_line(
    label: str,
    server: Server,
    token: str,
    batch: int,
    conns: int,
    args: argparse.Namespace,
    db_pid: int | None,
    ceilings: Ceilings,
) -> tuple[str, list[Run]]:
    """Median of `args.runs` runs at `batch` records and `conns` connections, as a table row
    (runs whose ceiling moved more than 20 % left out), and the runs."""
    rs = [
        ceilings.around(
            batch,
            lambda: run_wrk(server, token, batch, conns, args.duration, args.threads, db_pid),
        )
        for _ in range(args.runs)
    ]
    quoted = [r for r in rs if not r.flagged]
    head = f"| {server.backend.name} | {label}; batch {batch}, {conns} conns |"
    errs = sum(r.non200 + r.sock_err for r in rs)
    rows = "ok" if all(r.rows_ok for r in rs) else "MISMATCH"
    if not quoted:
        return f"{head} flagged: the ceiling moved more than 20 % during every run |", rs

    def med(attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in quoted)

    share = ""
    if quoted[0].ceiling:
        share = f" = **{100 * med('of_ceiling'):.0f}%** of the ceiling {fmt(med('ceiling'))}"
    return (
        f"{head} {med('req_s'):,.0f} req/s, {med('logs_s'):,.0f} rec/s{share}, "
        f"p50 {med('p50'):.1f} ms, p99 {med('p99'):.1f} ms, "
        f"server CPU {med('cpu_server'):.2f} cores = {med('cpu_us_req'):,.0f} µs/req, "
        f"db CPU {med('cpu_db'):.2f}, errors {errs}, rows {rows}, "
        f"runs quoted {len(quoted)}/{len(rs)} |"
    ), rs


def soak(server: Server, token: str, args: argparse.Namespace, db_pid: int | None, log) -> str:
    """Full load (batch 30, 64 conns) for `args.soak` seconds; RSS sampled every 10 %."""
    env = dict(os.environ, LOAD_TOKEN=token, LOAD_USER="bench", LOAD_BATCH="30")
    cmd = ["wrk", f"-t{args.threads}", "-c64", f"-d{args.soak:.0f}s", "--timeout", "30s"]
    cmd += ["-s", str(LOAD_LUA), server.base]
    before = server.backend.count()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    samples = []
    step = args.soak / 10
    for _ in range(10):
        time.sleep(step)
        samples.append(rss_mb(server.pids))
        log(f"soak RSS {samples[-1]:.1f} MiB")
    out, _ = proc.communicate()
    time.sleep(1.0)
    m = RESULT_RE.search(out)
    res = dict(kv.split("=") for kv in m.group(1).split()) if m else {}
    ok = int(res.get("ok200", 0))
    added = server.backend.count() - before
    rows = "ok" if ok * 30 <= added <= (ok + 64) * 30 else f"MISMATCH ({added} vs {ok * 30})"
    # The first sample is after 10 % of the run: warm caches, pool full.
    growth = 100 * (samples[-1] - samples[0]) / samples[0]
    return (
        f"| mysql | soak {args.soak:.0f} s, batch 30, 64 conns | RSS "
        f"{' '.join(f'{s:.1f}' for s in samples)} MiB (growth {growth:+.1f}% from the first "
        f"sample), {float(res.get('logs_s', 0)):,.0f} rec/s, non-200 {res.get('non200')}, "
        f"rows {rows} |"
    )


def write_report(args, started, loads, cells, extra_lines, notes) -> None:
    lines = [
        "# Ingest benchmark results",
        "",
        f"Generated by `python3 bench/run.py` ({' '.join(sys.argv[1:]) or 'defaults'}) "
        f"started {started}; {args.runs} run(s) x {args.duration:g} s per cell, medians; "
        f"wrk -t{args.threads} with `bench/load.lua` on `//send_logs`.",
        f"Load average (1/5/15 min): {'; '.join(loads)}. Machine: {os.cpu_count()} cores, "
        "server, database and wrk on the same box.",
        "",
        "**of ceiling** = server records/s / the database's own ceiling at the same batch "
        "size, measured in a fresh database just before and just after each run (their mean): "
        "`bench/slap_ceiling.sh BATCH 8` (mariadb-slap, C, no HTTP) for MySQL, "
        "`bench/sqlite_ceiling.py` (bare Python loop of multi-row INSERTs, same file "
        "settings) for SQLite. A run whose two ceilings differ by more than 20 % (the "
        "machine's load changed under it) is **flagged and not quoted**: the medians are "
        "over the other runs (**runs quoted**), every run's ceilings are in the notes. CPU "
        "columns are cores used (utime+stime / wall time): the server process tree, "
        "mariadbd, wrk. Rows check: rows added == 200s x batch (plus at most conns x batch in "
        "flight) after every run. Runs are interleaved: for each batch size, one run of each "
        "connection count, three times.",
        "",
        *matrix_table(cells),
        "",
    ]
    if extra_lines:
        lines += ["| backend | test | result |", "|---|---|---|", *extra_lines, ""]
    if notes:
        lines += ["Notes (each run's ceilings; any row-count mismatch):"]
        lines += [f"- {n}" for n in notes] + [""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
