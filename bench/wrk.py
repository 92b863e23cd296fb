"""One wrk run against the server under test, with ``bench/load.lua`` (the real client's
request), and what it measured: the ``RESULT`` line, CPU of the server, the database and wrk,
the server's memory, and the check that the rows added equal the acknowledged records.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import time

from backends import FloorBackend
from benchutil import REPO, cpu_seconds, die, rss_mb
from results import Run
from servers import Server

#: The wrk script (bench/cluster.py points this at its ``--load-lua``).
LOAD_LUA = REPO / "bench" / "load.lua"
RESULT_RE = re.compile(r"^RESULT (.*)$", re.M)


#: wrk runs so far (a ceiling measured since the last one is still "just before" the next).
WRK_RUNS = 0


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
    """wrk with `conns` connections for `seconds` at `batch` records per request on `path`;
    then the rows check (``die`` when wrk fails)."""
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
