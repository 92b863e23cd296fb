"""Read-side speed on MariaDB: 1,000,000 records for one user, 1,000,000 for others.

Hand-run (never collected by pytest)::

    python3 bench/read_speed.py                      # loads, serves, measures, drops
    python3 bench/read_speed.py --keep               # keep the database for another run
    python3 bench/read_speed.py --reuse              # measure again on a kept database
    python3 bench/read_speed.py --reuse --no-search-index   # ... with the search index off

The records are loaded straight into MariaDB with multi-row INSERTs (not through HTTP), then
the stats counters are filled from them as the migration that made them does; the
server is the real one (``python3 app.py`` on a free port) and every figure is the time of a
full HTTP request to it, measured from this process over a kept-alive connection. Each query
is run once cold and then `--repeat` times; the median and the worst warm run are printed.
Target: every query under 200 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pymysql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bot_logging_server.storage.migrations import COUNTS_FILL

ROOT = Path(__file__).resolve().parents[1]
USER = "bench_reader"
OTHERS = [f"bench_other_{i}" for i in range(9)]
DAYS = 30
CHUNK = 5000
LEVELS = [10, 20, 30, 40, 50]
LEVEL_WEIGHTS = [10, 30, 35, 20, 5]
PROCESSES = ["python3", "worker", "celery", "gunicorn"]
LOGGERS = ["billing", "web", "disk", "auth", "mailer", "scheduler", "api", "cache"]
TEMPLATES = [
    "request {n} handled in {ms} ms",
    "payment failed for order {n}: card declined",
    "disk usage at {p}% on /var",
    "user {n} logged in from 10.0.{p}.{ms}",
    "retrying job {n} (attempt {p})",
    '{{"order": {n}, "status": "error", "latency_ms": {ms}}}',
    "cache miss for key session:{n}",
    "Timeout talking to upstream after {ms} ms",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="mysql://root@127.0.0.1:3306", help="MariaDB URL")
    parser.add_argument("--db", default="bls_read_bench", help="database (dropped first)")
    parser.add_argument("--records", type=int, default=1_000_000, help="records of the user")
    parser.add_argument("--others", type=int, default=1_000_000, help="records of others")
    parser.add_argument("--repeat", type=int, default=7, help="warm runs per query")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="measure a kept database")
    parser.add_argument(
        "--no-search-index", action="store_true", help="measure with the search index off"
    )
    return parser.parse_args()


def connect(server: str, db: str | None = None) -> pymysql.Connection:
    url = urlsplit(server)
    return pymysql.connect(
        host=url.hostname,
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=db,
        autocommit=False,
        init_command="SET time_zone = '+00:00'",
    )


def run_cli(db_url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--database-url", db_url, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return done.stdout.strip()


def rows(user_id: int, count: int, start: datetime, rng: random.Random):
    """`count` records spread evenly over `DAYS` days from `start`, oldest first."""
    step = timedelta(days=DAYS) / max(count, 1)
    received = datetime.now(UTC).replace(tzinfo=None)
    for i in range(count):
        event_at = start + step * i
        template = rng.choice(TEMPLATES)
        msg = template.format(
            n=rng.randrange(10**6), ms=rng.randrange(1, 5000), p=rng.randrange(100)
        )
        yield (
            user_id,
            rng.randrange(1000, 1020),
            rng.choice(PROCESSES),
            rng.choice(LOGGERS),
            rng.choices(LEVELS, LEVEL_WEIGHTS)[0],
            msg,
            0,
            len(msg),
            event_at,
            event_at,
            received,
        )


def load(conn: pymysql.Connection, ids: dict[str, int], records: int, others: int) -> None:
    """Interleave the user's and the others' records in id order, as real traffic would."""
    rng = random.Random(6)
    start = (datetime.now(UTC) - timedelta(days=DAYS)).replace(tzinfo=None, microsecond=0)
    mine = rows(ids[USER], records, start, rng)
    theirs = [rows(ids[name], others // len(OTHERS), start, rng) for name in OTHERS]
    sql = (
        "INSERT INTO user_logs (user_id, pid, p_name, p_description, level, msg, truncated, "
        "msg_length, event_at, post_time, received_at) VALUES "
    )
    placeholders = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    started = time.monotonic()
    loaded = 0
    sources = [mine, *theirs]
    shares = [records, *[others // len(OTHERS)] * len(OTHERS)]
    total = sum(shares)
    with conn.cursor() as cur:
        while loaded < total:
            batch = []
            for source, share in zip(sources, shares, strict=True):
                # Each source contributes in proportion to its share, so times stay aligned.
                take = max(1, round(CHUNK * share / total))
                for _ in range(take):
                    row = next(source, None)
                    if row is None:
                        break
                    batch.append(row)
            if not batch:
                break
            cur.execute(sql + ", ".join([placeholders] * len(batch)), [v for r in batch for v in r])
            conn.commit()
            loaded += len(batch)
            if loaded % 200_000 < len(batch):
                print(f"  loaded {loaded:,} rows ({time.monotonic() - started:.0f} s)", flush=True)
        cur.execute("ANALYZE TABLE user_logs")
        cur.fetchall()
        print(f"loaded {loaded:,} rows in {time.monotonic() - started:.1f} s")
        # Loaded past the server: its counters are filled as its migration fills them.
        started = time.monotonic()
        for statement in COUNTS_FILL["mysql"]:
            cur.execute(statement)
        conn.commit()
        cur.execute("ANALYZE TABLE log_counts, log_counts_hour")
        cur.fetchall()
    print(f"filled the stats counters in {time.monotonic() - started:.1f} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def measure(port: int, token: str, repeat: int) -> list[tuple[str, float, float, float, str]]:
    """Each query: cold time, warm median, warm worst (ms), and what it answered."""
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    day = (now - timedelta(days=10)).replace(hour=0, minute=0, second=0)
    span = {"since": day.isoformat() + "Z", "until": (day + timedelta(days=1)).isoformat() + "Z"}
    queries = [
        ("first page (100 newest)", "/api/logs", {}),
        ("first page, limit 1000", "/api/logs", {"limit": 1000}),
        ("first page, arrival order (sort=id)", "/api/logs", {"sort": "id"}),
        ("first page, oldest first", "/api/logs", {"order": "asc"}),
        ("filtered page: level >= error", "/api/logs", {"level": "error"}),
        ("filtered page: level critical", "/api/logs", {"level": "critical"}),
        ("filtered page: logger = billing", "/api/logs", {"p_description": "billing"}),
        ("filtered page: pid = 1007", "/api/logs", {"pid": 1007}),
        ("text search over one day", "/api/logs", {"q": "payment failed", **span}),
        ("text search over one day, rare", "/api/logs", {"q": "order 123456", **span}),
        ("text search over all 30 days", "/api/logs", {"q": "timeout talking"}),
        ("text search over all 30 days, rare", "/api/logs", {"q": "order 123456"}),
        ("hourly stats over one day", "/api/stats", {"bucket": "hour", **span}),
        (
            "hourly stats over 7 days",
            "/api/stats",
            {"bucket": "hour", "since": (now - timedelta(days=7)).isoformat() + "Z"},
        ),
        ("hourly stats over all 30 days", "/api/stats", {"bucket": "hour"}),
        (
            "hourly stats of a rare search, 30 days",
            "/api/stats",
            {"bucket": "hour", "q": "order 123456"},
        ),
        ("text search for a rare word, 30 days", "/api/logs", {"q": "123456"}),
        ("text search inside words (*), 30 days", "/api/logs", {"q": "*123456"}),
        ("page 50 (cursor after 4,900)", "/api/logs", None),
    ]
    headers = {"X-User": USER, "X-User-Token": token}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(path: str, params: dict) -> tuple[float, dict]:
        started = time.perf_counter()
        conn.request("GET", path + "?" + urlencode(params), headers=headers)
        response = conn.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status == 200, body[:300]
        return elapsed, json.loads(body)

    # The deep page: follow 49 cursors first (not timed).
    cursor_params: dict = {}
    for _ in range(49):
        _, page = get("/api/logs", cursor_params)
        cursor_params = {"cursor": page["next_cursor"]}
    results = []
    for name, path, params in queries:
        params = cursor_params if params is None else params
        cold, body = get(path, params)
        warm = [get(path, params)[0] for _ in range(repeat)]
        if "logs" in body:
            answer = f"{len(body['logs'])} records"
        else:
            answer = (
                f"{len(body['counts'])} bars, {sum(c['count'] for c in body['counts']):,} records"
            )
        results.append((name, cold, statistics.median(warm), max(warm), answer))
    return results


def main() -> None:
    args = parse_args()
    db_url = f"{args.server.rstrip('/')}/{args.db}"
    admin = connect(args.server)
    if not args.reuse:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{args.db}`")
            cur.execute(f"CREATE DATABASE `{args.db}` CHARACTER SET utf8mb4")
    admin.close()
    # Users through the CLI (it also creates the tables); tokens come back once.
    token_file = ROOT / "bench" / "out" / f"{args.db}.token"
    if args.reuse:
        token = token_file.read_text().strip()
    else:
        token = run_cli(db_url, "users", "add", USER)
        for name in OTHERS:
            run_cli(db_url, "users", "add", name)
        token_file.parent.mkdir(exist_ok=True)
        token_file.write_text(token)
        conn = connect(args.server, args.db)
        with conn.cursor() as cur:
            cur.execute("SELECT username, id FROM users")
            ids = dict(cur.fetchall())
        load(conn, ids, args.records, args.others)
        conn.close()
    # The search index (on unless --no-search-index): built after the load, as by an operator.
    print(run_cli(db_url, "search-index", "off" if args.no_search_index else "on"))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--database-url", db_url, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(port, proc)
        print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores, shared)")
        results = measure(port, token, args.repeat)
        print(f"load average after:  {os.getloadavg()[0]:.2f}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    print(f"\n{'query':<38} {'cold':>8} {'median':>8} {'worst':>8}  answer")
    for name, cold, median, worst, answer in results:
        flag = "" if median < 200 else "  <-- over 200 ms"
        print(f"{name:<38} {cold:>6.1f}ms {median:>6.1f}ms {worst:>6.1f}ms  {answer}{flag}")
    if not args.keep:
        admin = connect(args.server)
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{args.db}`")
        admin.close()


if __name__ == "__main__":
    main()
