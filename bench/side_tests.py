"""The side tests beside the matrix, each summed up as one row of the report: the median of
a few runs at one cell (a serving variant, one client, the HTTP floor), and the RSS soak.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time

import wrk
from benchutil import rss_mb
from ceilings import Ceilings
from results import Run, fmt
from servers import Server
from wrk import RESULT_RE, run_wrk


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
    cmd += ["-s", str(wrk.LOAD_LUA), server.base]
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
