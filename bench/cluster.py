#!/usr/bin/env python3
"""Cluster benchmark: one MariaDB vs a 3-node Galera cluster, and the failover time.

Run from the repository root (needs wrk, Debian's galera-4 and mariadb-server, rsync)::

    python3 bench/cluster.py                 # 8 s per wrk run, writes bench/CLUSTER.md
    python3 bench/cluster.py --seconds 4     # shorter

In one run, one after the other on this machine:

1. **Throughput**: the real server (``python3 app.py``, 1 worker) under wrk with
   ``bench/load.lua`` (the real client's request) at BATCH records x CONNS
   connections, first on the MariaDB of this machine (one node, no replication), then on a
   3-node Galera cluster on loopback (`tests/galera.py`, the test suite's cluster, with
   Galera's default failure detection), the server writing through node 1 of the list.
   The rows added are checked against the acknowledged records after each run.
2. **Failover**: on the same cluster, 16 senders of BATCH-record batches; node 1 (the one in
   use) is killed with ``kill -9``; reported: the time to the first 200 after the kill, the
   longest time without a 200, what the batches in flight got, then node 1's restart (IST)
   with the senders still running, and whether every acknowledged batch is stored once.
3. The same failover with the test suite's short failure detection (suspect after 2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench"), str(REPO / "tests")]

import support.galera as galera_module  # noqa: E402  (tests/support/galera.py)
import wrk as wrk_module  # noqa: E402  (bench/wrk.py)
from backends import MySQLBackend  # noqa: E402  (bench/backends.py)
from benchutil import die, loadavg  # noqa: E402  (bench/benchutil.py)
from servers import Server, create_user  # noqa: E402  (bench/servers.py)
from support import ServerProcess, add_user, batch_body, client_headers, http  # noqa: E402
from support.galera import GaleraCluster  # noqa: E402
from wrk import LOAD_LUA, run_wrk  # noqa: E402


class ClusterBackend(MySQLBackend):
    """A scratch database on the cluster; the server gets every node, node 1 first."""

    def __init__(self, cluster: GaleraCluster) -> None:
        first = cluster.node(1)
        super().__init__(first.host, first.port, cluster.user, "")
        self.name = "galera-3"
        hosts = ",".join(f"{n.host}:{n.port}" for n in cluster.nodes)
        self.url = f"mysql://{cluster.user}@{hosts}/{self.db}"

    def _run(self, sql: str) -> tuple:
        conn = self._pymysql.connect(**self._args, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION wsrep_sync_wait = 1")  # see every node's commits
                cur.execute(sql)
                return cur.fetchone() or ()
        finally:
            conn.close()


def throughput(args: argparse.Namespace, backend: MySQLBackend) -> str:
    """One warm-up and one measured wrk run; a Markdown table row."""
    backend.setup()
    try:
        token = create_user(sys.executable, backend)
        with Server(sys.executable, backend, 1, []) as server:
            run_wrk(server, token, args.batch, 8, 2, 2, None)
            run = run_wrk(server, token, args.batch, args.conns, args.seconds, 2, None)
    finally:
        backend.teardown()
    return (
        f"| {backend.name} | {args.batch} x {args.conns} | {run.req_s:,.0f} | "
        f"{run.logs_s:,.0f} | {run.p50:.1f} | {run.p99:.1f} | {run.non200} | "
        f"{'ok' if run.rows_ok else 'MISMATCH'} | {run.cpu_server:.2f} | {run.cpu_us_req:.0f} |"
    )


async def failover(args: argparse.Namespace, cluster: GaleraCluster, label: str) -> str:
    """Kill node 1 under load, restart it under load; a Markdown table row."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    hosts = ",".join(f"{n.host}:{n.port}" for n in cluster.nodes)
    url = f"mysql://{cluster.user}@{hosts}/{name}"
    user = await add_user(url)
    results: dict[str, tuple[int | str, float, float]] = {}  # status, sent, answered
    stop = asyncio.Event()

    async def sender(worker: int, port: int) -> None:
        seq = 0
        while not stop.is_set():
            p_name = f"f{worker}-{seq}"
            seq += 1
            body = batch_body(user.name, p_name, args.batch)
            sent = time.monotonic()
            try:
                reply = await http(
                    port, "POST", "//send_logs", body, client_headers(user.token), timeout=60
                )
                status: int | str = reply.status
            except (TimeoutError, OSError) as exc:
                status = type(exc).__name__
            results[p_name] = (status, sent, time.monotonic())
            if status != 200:
                await asyncio.sleep(0.05)

    with ServerProcess(url, Path("/tmp")) as server:
        await server.wait_ready()
        tasks = [asyncio.ensure_future(sender(w, server.port)) for w in range(16)]
        await asyncio.sleep(3)
        killed_at = time.monotonic()
        await asyncio.to_thread(cluster.kill, 1)
        await asyncio.sleep(args.after_kill)
        rejoin_began = time.monotonic()
        rejoin = await asyncio.to_thread(cluster.restart, 1)
        rejoined_at = time.monotonic()
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*tasks)
    oks = sorted(done for status, _, done in results.values() if status == 200)
    after = [t for t in oks if t > killed_at]
    # The first 200 to a batch sent after the kill (earlier ones may have committed before).
    first = min(
        (done for status, sent, done in results.values() if status == 200 and sent > killed_at),
        default=float("inf"),
    )
    gaps = [b - a for a, b in zip([killed_at, *after], after, strict=False)]
    during = sum(1 for t in oks if rejoin_began < t < rejoined_at)
    statuses: dict[int | str, int] = {}
    for status, sent, done in results.values():
        if done > killed_at and sent < killed_at + 10:
            statuses[status] = statuses.get(status, 0) + 1
    counted = stored_batches(cluster, name, user.id)
    acked = {p for p, (status, _, _) in results.items() if status == 200}
    exact = all(counted.get(p) == args.batch for p in acked) and all(
        n == args.batch for n in counted.values()
    )
    conn = cluster.connect(2)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()
    shown = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=str))
    return (
        f"| {label} | {first - killed_at:.2f} s | {max(gaps):.2f} s | {shown} | {rejoin:.1f} s "
        f"({cluster.last_state_transfer(1)}), {during} x 200 meanwhile | "
        f"{len(acked)} acked, {'each stored once' if exact else 'MISMATCH'} |"
    )


def stored_batches(cluster: GaleraCluster, name: str, user_id: int) -> dict[str, int]:
    """Rows per batch marker, read on node 3 after every commit."""
    conn = cluster.connect(3, database=name)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION wsrep_sync_wait = 1")
            cur.execute(
                "SELECT p_name, COUNT(*) FROM user_logs WHERE user_id = %s GROUP BY p_name",
                (user_id,),
            )
            return {p: int(n) for p, n in cur.fetchall()}
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8, help="seconds per wrk run")
    parser.add_argument("--batch", type=int, default=30, help="records per request")
    parser.add_argument("--conns", type=int, default=64, help="wrk connections")
    parser.add_argument("--mysql", default="root@127.0.0.1:3306", help="USER@HOST:PORT")
    parser.add_argument("--after-kill", type=float, default=8, help="seconds before restart")
    parser.add_argument("--out", default=str(REPO / "bench" / "CLUSTER.md"))
    parser.add_argument("--load-lua", default=str(LOAD_LUA), help="the wrk script")
    args = parser.parse_args()
    wrk_module.LOAD_LUA = Path(args.load_lua)  # the script run_wrk gives wrk
    if not wrk_module.LOAD_LUA.exists():
        die(f"{wrk_module.LOAD_LUA} is missing (--load-lua)")
    missing = galera_module.missing_prerequisites()
    if missing:
        die(f"cannot run a Galera cluster: missing {', '.join(missing)}")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    loads = [f"start {loadavg()}"]
    user, _, hostport = args.mysql.rpartition("@")
    host, _, port = hostport.partition(":")
    rows = [throughput(args, MySQLBackend(host, int(port or 3306), user, ""))]
    print(rows[-1], flush=True)
    failovers = []
    # Galera's default failure detection (suspect a silent node after 5 s), as in production.
    galera_module.FAILURE_DETECTION = {}
    with GaleraCluster(size=3, name="blst_bench") as cluster:
        rows.append(throughput(args, ClusterBackend(cluster)))
        print(rows[-1], flush=True)
        loads.append(f"after throughput {loadavg()}")
        failovers.append(asyncio.run(failover(args, cluster, "Galera defaults (suspect 5 s)")))
        print(failovers[-1], flush=True)
    galera_module.FAILURE_DETECTION = {
        "evs.keepalive_period": "PT0.5S",
        "evs.inactive_check_period": "PT0.5S",
        "evs.suspect_timeout": "PT2S",
        "evs.inactive_timeout": "PT4S",
        "evs.install_timeout": "PT4S",
    }
    with GaleraCluster(size=3, name="blst_bench") as cluster:
        failovers.append(asyncio.run(failover(args, cluster, "suspect after 2 s (the tests)")))
        print(failovers[-1], flush=True)
    loads.append(f"end {loadavg()}")
    lines = [
        "# Cluster benchmark results",
        "",
        f"Generated by `python3 bench/cluster.py` started {started}: one wrk run of "
        f"{args.seconds:g} s per backend after a 2 s warm-up, wrk -t2 with "
        "`bench/load.lua` on `//send_logs`, the server with 1 worker (hypercorn). "
        f"Load average (1/5/15 min): {'; '.join(loads)}. Machine: 2 cores shared by the "
        "server, wrk and every database node (the cluster's three nodes on one box).",
        "",
        "| database | records x conns | req/s | records/s | p50 ms | p99 ms | non-200 | rows "
        "| server cores | server CPU µs/req |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Failover: 16 senders of {args.batch}-record batches; `kill -9` of node 1 (the node "
        f"in use) after 3 s; node 1 restarted {args.after_kill:g} s later, senders running.",
        "",
        "| failure detection | first 200 to a batch sent after the kill | longest without a "
        "200 | answers in the 10 s after the kill | rejoin (senders running) | stored |",
        "|---|---|---|---|---|---|",
        *failovers,
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
