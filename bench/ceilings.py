"""The database's own ceiling: how fast it takes multi-row INSERTs with no HTTP and no server.

MariaDB: bench/slap_ceiling.sh (mariadb-slap, a C client). SQLite: bench/sqlite_ceiling.py (a
bare Python loop, same file settings). ``Ceilings`` measures one just before and just after
each wrk run, so a run can be compared with the ceiling under the same background load.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

import wrk
from benchutil import REPO, die
from results import Run

SLAP = REPO / "bench" / "slap_ceiling.sh"


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
        """Measure the ceiling at `batch` records per INSERT now, in rows/s, and log it."""
        if self.backend == "mysql":
            rows_s = slap_ceiling(batch, queries=self.queries)
        else:
            rows_s = sqlite_ceiling(self.python, batch, min(self.seconds, 10))
        self.log(f"{self.backend} ceiling batch={batch}: {rows_s:,.0f} rows/s")
        self._last = (batch, wrk.WRK_RUNS, rows_s)
        return rows_s

    def around(self, batch: int, run: Callable[[], Run]) -> Run:
        """`run()` with the ceiling measured just before and just after it."""
        if not self.enabled:
            return run()
        last = self._last
        fresh = last is not None and last[0] == batch and last[1] == wrk.WRK_RUNS
        before = last[2] if fresh else self.measure(batch)
        result = run()
        result.ceiling_before, result.ceiling_after = before, self.measure(batch)
        return result
