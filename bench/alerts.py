"""Ingest throughput with five alert rules active against none (hand-run).

Starts the real server (``python3 app.py``) once on a fresh database, with a local fake
Telegram Bot API and webhook receiver, and drives it with ``--clients`` keep-alive
connections posting 20-record batches (`bench/purge.py`'s client) as fast as they are answered.
The phases alternate, ``--rounds`` times each: **none** (no rule) and **rules** (five rules,
three Telegram and two webhook, that every record matches: the worst case, each record
tested by every rule, every window sent). Rules are added and removed through
``/api/alerts`` between phases, so both run in the same warm process. Per phase: batches and
records per second, p50/p99 latency, and the server's CPU seconds per 1000 batches (from
``/proc``: the figure least disturbed by other load on a shared machine). Checks at the end
that the alerts counted every record of the rules phases. Appends to bench/ALERTS.md.

    python3 bench/alerts.py --backend sqlite
    python3 bench/alerts.py --backend mysql      # MariaDB at 127.0.0.1:3306, root
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from purge import body, client, free_port, wait_ready  # noqa: E402

from bot_logging_server.accounts import create_user  # noqa: E402
from bot_logging_server.alerts.rules import CompiledRule  # noqa: E402
from bot_logging_server.alerts.service import AlertService  # noqa: E402
from bot_logging_server.config import build_config  # noqa: E402
from bot_logging_server.schemas.alerts import load_alert_rule  # noqa: E402
from bot_logging_server.schemas.ingest import load_batch  # noqa: E402
from bot_logging_server.storage import AlertRule, make_storage, utc_now  # noqa: E402

BOT_TOKEN = "123456:bench"
RULES = [
    {"channel": "telegram", "level": "error"},
    {"channel": "telegram", "p_description": "b"},
    {"channel": "telegram", "p_name": "bench", "text": "M"},
    {"channel": "webhook", "level": "warning", "text": "m "},
    {"channel": "webhook", "p_name": "bench", "p_description": "b"},
]


class Receiver:
    """Counts what the alerts deliver (Telegram texts and webhook counts)."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.messages.append({"path": self.path, **json.loads(body)})
                data = b'{"ok": true, "result": {}}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def api(port: int, user: str, token: str, method: str, path: str, body: object = None):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b"" if body is None else json.dumps(body).encode()
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nX-User: {user}\r\nX-User-Token: {token}\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
        + data
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


async def run_phase(port: int, user: str, token: str, clients: int, seconds: float, pid: int):
    stop, latencies = asyncio.Event(), []
    cpu = cpu_seconds(pid)
    tasks = [
        asyncio.ensure_future(client(port, user, token, stop, latencies)) for _ in range(clients)
    ]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    cpu = cpu_seconds(pid) - cpu
    ordered = sorted(latencies)
    return {
        "batches": len(ordered),
        "per_second": len(ordered) / seconds,
        "p50": ordered[len(ordered) // 2] * 1000,
        "p99": ordered[int(len(ordered) * 0.99)] * 1000,
        "cpu_ms_per_batch": cpu * 1000 / max(1, len(ordered)),
    }


def matching_cost(batches: int = 20_000) -> tuple[float, float]:
    """Microseconds the stored-logs hook takes per batch of `body`'s records: with the five
    rules (every record matching), and with no rule (the dictionary lookup alone)."""
    data = json.loads(body("bench"))["data"]
    rows = load_batch(data, 65536)
    service = AlertService(None, build_config({}, {}))  # type: ignore[arg-type]
    now = utc_now()
    rules = []
    for number, rule in enumerate(RULES, 1):
        spec = load_alert_rule(
            {**rule, "url": "http://x/"} if rule["channel"] == "webhook" else rule
        )
        rules.append(CompiledRule(AlertRule(number, 1, secret=None, created_at=now, **spec)))
    timings = []
    for rules_of_user in ({1: rules}, {}):
        service._rules = rules_of_user
        started = time.perf_counter()
        for _ in range(batches):
            service.observe(1, rows, now)
        timings.append((time.perf_counter() - started) / batches * 1e6)
        service._gathered.clear()
    return timings[0], timings[1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "mysql"], default="sqlite")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10, help="per phase")
    parser.add_argument("--rounds", type=int, default=3, help="phases of each kind")
    parser.add_argument("--window", type=float, default=10, help="--alert-window")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="alerts-bench-"))
    name = f"blst_bench_{uuid.uuid4().hex[:8]}"
    url = (
        f"sqlite:///{tmp}/bench.db"
        if args.backend == "sqlite"
        else f"mysql://root@127.0.0.1:3306/{name}"
    )
    receiver = Receiver()
    storage = make_storage(build_config({"database_url": url}, environ={}))
    await storage.open()
    made = await create_user(storage, "bench", None, 42)
    await storage.close()
    user, token = made.user.username, made.token
    port, log = free_port(), tmp / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGGER_")}
    env["LOGGER_TELEGRAM_TOKEN"] = BOT_TOKEN
    command = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--database-url", url]
    flags = ["--alert-window", str(args.window), "--telegram-api-url", receiver.url]
    flags += ["--purge-interval", "0"]
    with open(log, "ab") as out:
        proc = subprocess.Popen([*command, *flags], env=env, stdout=out, stderr=subprocess.STDOUT)
    results: dict[str, list[dict]] = {"none": [], "rules": []}
    rules_batches = 0
    try:
        await wait_ready(port)
        await run_phase(port, user, token, args.clients, 2, proc.pid)  # warm-up
        for round_ in range(args.rounds):
            for kind in ("none", "rules") if round_ % 2 == 0 else ("rules", "none"):
                ids = []
                if kind == "rules":
                    for rule in RULES:
                        if rule["channel"] == "webhook":
                            rule = {**rule, "url": receiver.url + "/hook"}
                        made_rule = await api(port, user, token, "POST", "/api/alerts", rule)
                        ids.append(made_rule["alert"]["id"])
                result = await run_phase(port, user, token, args.clients, args.seconds, proc.pid)
                results[kind].append(result)
                print(f"{kind:>5}: {json.dumps({k: round(v, 2) for k, v in result.items()})}")
                if kind == "rules":
                    rules_batches += result["batches"]
                    await asyncio.sleep(args.window + 6)  # the last windows are sent
                    for rule_id in ids:
                        await api(port, user, token, "DELETE", f"/api/alerts/{rule_id}")
    finally:
        proc.terminate()
        proc.wait(30)
        if args.backend == "mysql":
            import pymysql

            conn = pymysql.connect(host="127.0.0.1", user="root")
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            conn.close()
    (tmp / "messages.json").write_text(json.dumps(receiver.messages))
    # Every record of the rules phases matched both webhook rules.
    per_batch = len(json.loads(body("x"))["data"]["logs"])
    hooked = sum(m["count"] for m in receiver.messages if m["path"] == "/hook") // 2
    messages = len(receiver.messages)

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    none_rate, rules_rate = median("none", "per_second"), median("rules", "per_second")
    change = (rules_rate / none_rate - 1) * 100
    cpu_change = median("rules", "cpu_ms_per_batch") / median("none", "cpu_ms_per_batch") - 1
    lines = [
        f"\n## {args.backend}, {args.clients} clients, {per_batch}-record batches, {args.rounds} x "
        f"{args.seconds:g} s per kind, window {args.window:g} s ({time.strftime('%Y-%m-%d')})\n",
        "| phase | batches/s (median) | records/s | p50 ms | p99 ms | server CPU ms/batch |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("none", "rules"):
        lines.append(
            f"| {'no rule' if kind == 'none' else '5 matching rules'} | "
            f"{median(kind, 'per_second'):.0f} | {median(kind, 'per_second') * per_batch:.0f} | "
            f"{median(kind, 'p50'):.1f} | {median(kind, 'p99'):.1f} | "
            f"{median(kind, 'cpu_ms_per_batch'):.2f} |"
        )
    lines.append(
        f"\nThroughput with rules: {change:+.1f}% (per phase: "
        + ", ".join(f"{r['per_second']:.0f}" for r in results["none"])
        + " without; "
        + ", ".join(f"{r['per_second']:.0f}" for r in results["rules"])
        + f" with); server CPU per batch {cpu_change * 100:+.1f}%. "
        f"{messages} alert messages sent; the webhook rules counted {hooked} records of the "
        f"{rules_batches * per_batch} stored during the rules phases (load average at the end: "
        f"{Path('/proc/loadavg').read_text().split()[0]}).\n"
    )
    with_rules, without = matching_cost()
    lines.append(
        f"The matching itself (in process, no I/O): {with_rules:.1f} µs per {per_batch}-record "
        f"batch with the five rules, {without:.2f} µs with none.\n"
    )
    print("\n".join(lines))
    with open(ROOT / "bench" / "ALERTS.md", "a") as out:
        out.write("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
