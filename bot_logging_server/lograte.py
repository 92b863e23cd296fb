"""Rate-limited logging: one line per distinct fault per interval.

A fault that hits every request (a full disk, a database that went away) would otherwise
write one line, or one traceback, per request: hundreds a second, burying everything else.
`RateLimitedLog` writes the first line of each distinct key, then stays quiet about that key
for `interval` seconds; the next line it lets through says how many it held back.
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["INTERVAL_SECONDS", "RateLimitedLog"]

#: Default quiet time per distinct fault.
INTERVAL_SECONDS = 10.0
# Keys remembered at most (the oldest are forgotten first): faults are few, but a key must
# never let memory grow without bound.
_MAX_KEYS = 1000


class RateLimitedLog:
    """Log through `logger`, at most once per `interval` seconds per key."""

    def __init__(self, logger: logging.Logger, interval: float = INTERVAL_SECONDS) -> None:
        """Write to `logger`; a key is quiet for `interval` seconds after each line."""
        self._logger = logger
        self._interval = interval
        # key -> (when its last line was written, lines held back since)
        self._seen: dict[str, tuple[float, int]] = {}

    def log(self, level: int, key: str, msg: str, *args: Any, exc_info: Any = None) -> bool:
        """Write ``msg % args`` at `level` unless `key` was written in the last interval.

        Returns whether the line was written. A written line that follows held-back ones
        ends with ``(N more like it in the last S s)``.
        """
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self._interval:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            msg += " (%d more like it in the last %.0f s)"
            args = (*args, last[1], now - last[0])
        self._seen.pop(key, None)
        self._seen[key] = (now, 0)
        while len(self._seen) > _MAX_KEYS:
            del self._seen[next(iter(self._seen))]
        self._logger.log(level, msg, *args, exc_info=exc_info)
        return True
