"""What one wrk run measured (``Run``), the runs of one matrix cell (``Cell``), and ``fmt``,
the number format of the report.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

#: A run whose ceilings before and after differ by more than this share is flagged.
CEILING_DRIFT = 0.20


@dataclass
class Run:
    """One wrk run's figures: throughput, latency, errors, memory, CPU, rows check."""

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


@dataclass
class Cell:
    """The runs of one (backend, batch, connections) cell of the matrix."""

    backend: str
    batch: int
    conns: int
    runs: list[Run] = field(default_factory=list)

    @property
    def quoted(self) -> list[Run]:
        """The runs whose ceilings held steady (all of them when none were measured)."""
        return [r for r in self.runs if not r.flagged]

    def med(self, attr: str) -> float:
        """The median of `attr` over the quoted runs (None values left out; 0.0 if none)."""
        values = [getattr(r, attr) for r in self.quoted]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else 0.0

    @property
    def clean(self) -> bool:
        """No non-200, no socket error and the rows check passed in every run."""
        return all(r.non200 == 0 and r.sock_err == 0 and r.rows_ok for r in self.runs)


def fmt(n: float) -> str:
    """`n` with thousands separators: no decimals from 100 up, one below."""
    return f"{n:,.0f}" if n >= 100 else f"{n:,.1f}"
