"""The ``log_counts`` table: how many records each user has per minute of ``event_at``, per
level, kept in the transactions that write and delete ``user_logs``.

`GET /api/stats` without a text or field filter sums these counters instead of grouping the
rows (at a million records a month, a user has at most 43,200 minutes x levels of them). They
are exact as long as every change of ``user_logs`` goes through here, in its own transaction:

* an insert adds its rows' counts (`add_inserted`) after the idempotency keys have left out
  the rows of a replayed batch, so a replay is never counted twice;
* a delete of some rows takes their counts away (`subtract_deleted`), read under the
  deleted rows' locks in the same transaction; a counter that reaches 0 is deleted;
* removing a user drops their counters (`forget_user`).

A minute is stored as the minute's start, in the same form as ``event_at`` (MySQL DATETIME,
SQLite text ``YYYY-MM-DD HH:MM:00.000000``), so the dialect's stats buckets read it as they
read ``event_at``. Keys are written in one order (user, minute, level) by every transaction,
so two never wait for each other's counters crosswise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from bot_logging_server.storage.base import Dialect, Transaction, time_text

__all__ = [
    "COUNTS_TABLE",
    "add_inserted",
    "ceil_minute",
    "floor_minute",
    "forget_user",
    "minute_of",
    "subtract_deleted",
]

#: The table of counters.
COUNTS_TABLE = "log_counts"
_COLUMNS = ("user_id", "minute", "level", "n")
_KEYS = ("user_id", "minute", "level")
#: Counters per upsert statement (4 parameters each).
_PER_STATEMENT = 250
_Key = tuple[int, str, int]


def minute_of(event_at: str) -> str:
    """The stored minute of an encoded ``event_at`` (`time_text`): its minute's start."""
    return event_at[:16] + ":00.000000"


def floor_minute(moment: datetime) -> datetime:
    """The start of `moment`'s minute."""
    return moment.replace(second=0, microsecond=0)


def ceil_minute(moment: datetime) -> datetime:
    """`moment` when it starts a minute, else the start of the next minute."""
    start = floor_minute(moment)
    return start if start == moment else start + timedelta(minutes=1)


async def _apply(tx: Transaction, dialect: Dialect, counts: Counter[_Key]) -> None:
    """Add `counts` (negative: take away) to the counters, in key order, in `tx`."""
    keys = sorted(key for key, n in counts.items() if n)
    for start in range(0, len(keys), _PER_STATEMENT):
        part = keys[start : start + _PER_STATEMENT]
        await tx.execute(
            dialect.upsert(COUNTS_TABLE, _COLUMNS, _KEYS, rows=len(part), add=("n",)),
            [value for key in part for value in (*key, counts[key])],
        )


async def add_inserted(tx: Transaction, dialect: Dialect, rows: Iterable[Sequence]) -> None:
    """Count `rows` (``user_logs`` insert tuples: user_id first, level fifth, the encoded
    event_at ninth), which `tx` inserts."""
    counts: Counter[_Key] = Counter()
    for row in rows:
        counts[(row[0], minute_of(row[8]), row[4])] += 1
    await _apply(tx, dialect, counts)


async def subtract_deleted(
    tx: Transaction, dialect: Dialect, user_id: int, where: str, args: Sequence
) -> None:
    """Take away the counts of `user_id`'s rows matching `where` (with `args`), which `tx`
    is about to delete: call it just before the DELETE, with the same clause.

    The rows are read locked (MySQL), so the ones counted are the ones the DELETE finds.
    """
    bucket, start = dialect.bucket("event_at", "minute")
    found = await tx.fetch(
        f"SELECT {bucket} AS minute, level, COUNT(*) FROM user_logs "
        f"WHERE user_id = ? AND {where} GROUP BY minute, level{dialect.lock_rows}",
        (user_id, *args),
    )
    if not found:
        return
    counts: Counter[_Key] = Counter()
    for minute, level, n in found:
        counts[(user_id, time_text(start(minute)), int(level))] -= int(n)
    await _apply(tx, dialect, counts)
    keys = sorted(counts)
    await tx.execute(
        f"DELETE FROM {COUNTS_TABLE} WHERE user_id = ? AND minute >= ? AND minute <= ? AND n <= 0",
        (user_id, keys[0][1], keys[-1][1]),
    )


async def forget_user(tx: Transaction, user_id: int) -> None:
    """Delete every counter of `user_id` (whose rows `tx` deletes)."""
    await tx.execute(f"DELETE FROM {COUNTS_TABLE} WHERE user_id = ?", (user_id,))
