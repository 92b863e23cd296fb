#!/usr/bin/env bash
# Side by side: the ingest rate of two checkouts of this server, interleaved in one run.
#
#   bash bench/compare.sh OLD_DIR NEW_DIR [ROUNDS] [SECONDS]
#
# For each round, each checkout serves on MariaDB (root@127.0.0.1:3306, a scratch database
# per server run, dropped after) and wrk drives it with bench/load.lua at 1 record x 64
# connections and 30 records x 64 connections. Prints one RESULT line per run and, at the end,
# the median req/s and records/s of each checkout per cell and NEW/OLD. Needs wrk and the
# server's dependencies in the interpreter given as PYTHON (default: python3).
set -euo pipefail
old=$(cd "$1" && pwd); new=$(cd "$2" && pwd)
rounds=${3:-3}; seconds=${4:-8}
python=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
lua="$here/load.lua"
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_one() {  # DIR LABEL ROUND
  local dir=$1 label=$2 round=$3 db port
  db="bench_cmp_$$_${label}_$round"
  port=$(free_port)
  mariadb -h127.0.0.1 -uroot -e "CREATE DATABASE $db"
  local url="mysql://root@127.0.0.1:3306/$db"
  local token
  token=$(cd "$dir" && "$python" app.py --database-url "$url" users add bench --password pw 2>/dev/null)
  (cd "$dir" && exec "$python" app.py --database-url "$url" --port "$port" >"$out/server.log" 2>&1) &
  local pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  for batch in 1 30; do
    LOAD_TOKEN=$token LOAD_USER=bench LOAD_BATCH=$batch LOAD_PATH=//send_logs \
      wrk -t2 -c64 -d"${seconds}s" --timeout 30s -s "$lua" "http://127.0.0.1:$port" \
      | grep '^RESULT' | sed "s/^RESULT/RESULT which=$label round=$round/" | tee -a "$out/results"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  mariadb -h127.0.0.1 -uroot -e "DROP DATABASE $db"
}

for round in $(seq "$rounds"); do
  run_one "$old" old "$round"
  run_one "$new" new "$round"
done

"$python" - "$out/results" <<'PY'
import re, statistics, sys
rows = [dict(re.findall(r"(\w+)=(\S+)", line)) for line in open(sys.argv[1])]
for batch in ("1", "30"):
    med = {}
    for which in ("old", "new"):
        runs = [r for r in rows if r["which"] == which and r["batch"] == batch]
        bad = sum(int(r["non200"]) + int(r["sock_err"]) for r in runs)
        med[which] = (statistics.median(float(r["req_s"]) for r in runs),
                      statistics.median(float(r["logs_s"]) for r in runs),
                      statistics.median(float(r["p99_ms"]) for r in runs), bad)
        print(f"batch={batch} {which}: median req/s {med[which][0]:.0f}, records/s "
              f"{med[which][1]:.0f}, p99 {med[which][2]:.1f} ms, non-200+errors {bad} "
              f"({len(runs)} runs)")
    print(f"batch={batch} new/old records/s: {med['new'][1] / med['old'][1]:.2f}")
PY
