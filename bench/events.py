#!/usr/bin/env python3
"""Events benchmark: single-event requests/s through ``/eye/collector`` and ``/track``
beside ``/send_logs`` at batch 1, and events/s through ``/api/events`` at 100 per request
beside ``/send_logs`` at batch 100, on MariaDB, in the same run.

Run from the repository root (hand-run, never collected by pytest)::

    python3 bench/events.py                 # 3 rounds x 10 s per interface, 64 connections
    python3 bench/events.py --quick         # 1 round x 3 s: a smoke run
    python3 bench/events.py --out bench/events-results.md

It creates a scratch MariaDB database (dropped at the end), starts ``python3 app.py`` on it,
creates a user with the CLI and an ingest key for it, and drives ``bench/events.lua`` with
wrk. The interfaces take turns within each round (logs, eye, track, logs100, api), so
drifting load on a shared machine hits them alike. After every run it checks that the rows
added (``user_logs`` for logs, ``events`` for the others) equal the acknowledged requests,
plus at most one per connection from requests in flight when wrk stopped (times 100 for
the batch kinds). The table shows medians, and each interface's requests/s as a share of
``/send_logs``'s at the same batch size (the goal: within 10%).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import backends  # bench/backends.py: the scratch MariaDB database
import benchutil  # bench/benchutil.py: die and the /proc helpers
import servers  # bench/servers.py: the server under test and its user

REPO = benchutil.REPO
LUA = REPO / "bench" / "events.lua"
RESULT_RE = re.compile(r"^RESULT (.*)$", re.M)
KINDS = ("logs", "eye", "track", "logs100", "api")
LABELS = {
    "logs": "POST //send_logs (batch 1)",
    "eye": "POST /eye/collector",
    "track": "POST /track",
    "logs100": "POST //send_logs (batch 100)",
    "api": "POST /api/events (batch 100)",
}
TABLES = {"logs": "user_logs", "eye": "events", "track": "events"}
TABLES.update(logs100="user_logs", api="events")
#: Records or events per request of each kind.
PER_REQUEST = {"logs100": 100, "api": 100}

# Run with the server's interpreter: an ingest key for user "bench", printed once.
_MAKE_KEY = """
import asyncio, sys
from bot_logging_server.config import build_config
from bot_logging_server.storage import make_storage
from bot_logging_server.tokens import hash_token, key_lookup, random_token

async def main():
    storage = make_storage(build_config({"database_url": sys.argv[1]}, environ={}))
    await storage.open()
    try:
        user = await storage.get_user("bench")
        value = random_token()
        await storage.create_key(user.id, "bench-key", key_lookup(value), hash_token(value))
        print(value)
    finally:
        await storage.close()

asyncio.run(main())
"""


class Backend(backends.MySQLBackend):
    """The scratch MariaDB database, counting any table."""

    def count_table(self, table: str) -> int:
        return int(self._run(f"SELECT COUNT(*) FROM `{self.db}`.{table}")[0])


@dataclass
class Result:
    kind: str
    req_s: float
    p50: float
    p99: float
    non200: int
    sock_err: int
    rows_ok: bool
    cpu_us_req: float
    detail: str


def make_key(python: str, backend: Backend) -> str:
    out = subprocess.run(
        [python, "-c", _MAKE_KEY, backend.url], cwd=REPO, capture_output=True, text=True
    )
    if out.returncode != 0:
        benchutil.die(f"could not create the ingest key: {out.stderr.strip()[-500:]}")
    return out.stdout.strip().splitlines()[-1]


def run_wrk(
    server: servers.Server,
    backend: Backend,
    kind: str,
    env: dict[str, str],
    args: argparse.Namespace,
    db_pid: int | None,
) -> Result:
    table = TABLES[kind]
    per = PER_REQUEST.get(kind, 1)
    before = backend.count_table(table)
    pids = server.pids
    cpu0 = benchutil.cpu_seconds(pids)
    env = dict(os.environ, **env, LOAD_KIND=kind)
    threads = min(args.threads, args.conns)
    cmd = ["wrk", f"-t{threads}", f"-c{args.conns}", f"-d{args.duration:.0f}s", "--latency"]
    cmd += ["--timeout", "30s", "-s", str(LUA), server.base]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    time.sleep(1.0)  # requests in flight when wrk stopped may still commit
    cpu1 = benchutil.cpu_seconds(pids)
    match = RESULT_RE.search(out.stdout)
    if out.returncode != 0 or match is None:
        benchutil.die(f"wrk failed: {out.stderr.strip() or out.stdout[-500:]}")
    res = dict(kv.split("=") for kv in match.group(1).split())
    ok = int(res["ok200"])
    added = backend.count_table(table) - before
    return Result(
        kind=kind,
        req_s=float(res["req_s"]),
        p50=float(res["p50_ms"]),
        p99=float(res["p99_ms"]),
        non200=int(res["non200"]),
        sock_err=int(res["sock_err"]),
        rows_ok=ok * per <= added <= (ok + args.conns) * per,
        cpu_us_req=1e6 * (cpu1 - cpu0) / max(1, int(res["requests"])),
        detail=f"{kind}: rows added {added}, acknowledged {ok}",
    )


def table(results: dict[str, list[Result]]) -> list[str]:
    med = {
        k: {
            a: statistics.median(getattr(r, a) for r in rs)
            for a in ("req_s", "p50", "p99", "cpu_us_req")
        }
        for k, rs in results.items()
        if rs
    }
    lines = [
        "| interface | req/s | items/s | p50 ms | p99 ms | server CPU µs/req | vs logs at the "
        "same batch size | non-200 | rows |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, rs in results.items():
        if not rs:
            continue
        m = med[kind]
        per = PER_REQUEST.get(kind, 1)
        base = med.get("logs100" if per > 1 else "logs", {}).get("req_s")
        share = f"{100 * m['req_s'] / base:.0f}%" if base else "-"
        bad = sum(r.non200 + r.sock_err for r in rs)
        rows = "ok" if all(r.rows_ok for r in rs) else "MISMATCH"
        lines.append(
            f"| {LABELS[kind]} | {m['req_s']:.0f} | {m['req_s'] * per:.0f} | {m['p50']:.1f} | "
            f"{m['p99']:.1f} | {m['cpu_us_req']:.0f} | {share} | {bad} | {rows} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--runs", type=int, default=3, help="rounds (each runs every kind)")
    parser.add_argument("--conns", type=int, default=64, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--kinds", default=",".join(KINDS), help="subset of " + ",".join(KINDS))
    parser.add_argument("--mysql", default="root@127.0.0.1:3306", help="USER[:PW]@HOST:PORT")
    parser.add_argument("--python", default=sys.executable, help="interpreter for app.py")
    parser.add_argument("--server-args", default="", help="extra flags for app.py")
    parser.add_argument("--quick", action="store_true", help="--runs 1 --duration 3")
    parser.add_argument("--out", help="also write the Markdown report here")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.duration = 1, 3
    kinds = [k for k in args.kinds.split(",") if k]
    if not set(kinds) <= set(KINDS):
        benchutil.die(f"--kinds: choose from {','.join(KINDS)}")
    cred, _, where = args.mysql.rpartition("@")
    user, _, password = cred.partition(":")
    host, _, port = where.partition(":")
    backend = Backend(host, int(port or 3306), user or "root", password)
    backend.setup()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    results: dict[str, list[Result]] = {k: [] for k in kinds}
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        token = servers.create_user(args.python, backend)
        key = make_key(args.python, backend)
        env = {"LOAD_KEY": key, "LOAD_TOKEN": token, "LOAD_USER": "bench"}
        extra = args.server_args.split()
        with servers.Server(args.python, backend, 1, extra) as server:
            db_pid = benchutil.mariadbd_pid()
            for round_ in range(args.runs):
                for kind in kinds:
                    result = run_wrk(server, backend, kind, env, args, db_pid)
                    results[kind].append(result)
                    print(
                        f"round {round_ + 1} {kind}: {result.req_s:.0f} req/s, p99 "
                        f"{result.p99:.1f} ms, non-200 {result.non200}, {result.detail}",
                        flush=True,
                    )
    finally:
        backend.teardown()
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [
        f"# Events benchmark ({started})",
        "",
        f"MariaDB, 1 server process, wrk {args.conns} connections x {args.threads} threads, "
        f"{args.runs} round(s) x {args.duration:.0f} s per interface; medians. "
        f"Load average at the end: {benchutil.loadavg()}. wrk CPU: "
        f"{kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime:.1f} s.",
        "",
        *table(results),
    ]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
