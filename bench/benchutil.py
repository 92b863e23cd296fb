"""Shared helpers of the ingest benchmark (bench/run.py) and the scripts beside it.

The repository root, the way a benchmark gives up (``die``), and what it reads from /proc:
a process tree, its CPU time and resident memory, the MariaDB server's pid, the load average.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def die(message: str) -> None:
    """Print `message` on stderr, prefixed ``bench:``, and exit with status 2."""
    print(f"bench: {message}", file=sys.stderr)
    sys.exit(2)


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
    """The pid of the local mariadbd (or mysqld), None when neither runs."""
    out = subprocess.run(["pidof", "mariadbd"], capture_output=True, text=True).stdout.split()
    if not out:
        out = subprocess.run(["pidof", "mysqld"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def loadavg() -> str:
    """The 1, 5 and 15-minute load averages, as /proc/loadavg gives them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
