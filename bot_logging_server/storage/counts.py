"""The counters of ``user_logs``: how many records each user has per minute of ``event_at``
(``log_counts``) and per hour (``log_counts_hour``), per level, kept in the transactions that
write and delete the rows.

`GET /api/stats` without a text or field filter sums these counters instead of grouping the
rows: a range's whole hours from the hourly counters (at most 720 hours x levels a month),
its whole minutes at either end from the per-minute ones, and only its partial minutes from
the rows. They are exact as long as every change of ``user_logs`` goes through here, in its
own transaction:

* an insert adds its rows' counts (`add_inserted`) after the idempotency keys have left out
  the rows of a replayed batch, so a replay is never counted twice;
* a delete of some rows takes their counts away (`subtract_deleted`), read under the
  deleted rows' locks in the same transaction; a counter that reaches 0 is deleted;
* removing a user drops their counters (`forget_user`).

A minute or an hour is stored as its start, in the same form as ``event_at`` (MySQL
DATETIME, SQLite text ``YYYY-MM-DD HH:MM:00.000000``), so the dialect's stats buckets read
it as they read ``event_at``.

Each process adds to counter rows of its own (column ``writer``, `writer_id`), and a count
is the sum over writers: on a Galera cluster, servers writing through different nodes never
update the same row, so their inserts never fail certification on a busy minute's counter
(only a delete's clean-up of emptied counters touches other writers' rows). Keys are written
in one order (minutes, then hours; each by user, start, level) by every transaction, so two
never wait for each other's counters crosswise.
"""

from __future__ import annotations

import os
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from bot_logging_server.storage.base import Transaction
from bot_logging_server.storage.dialect import Dialect, time_text

__all__ = [
    "COUNTERS",
    "add_inserted",
    "ceil_to",
    "floor_to",
    "forget_user",
    "hour_of",
    "minute_of",
    "subtract_deleted",
    "writer_id",
]

#: The counter tables by width: (table, the column holding the minute's or hour's start).
COUNTERS = {"minute": ("log_counts", "minute"), "hour": ("log_counts_hour", "hour")}
#: Counters per upsert statement (5 parameters each), or per clean-up read.
_PER_STATEMENT = 250
_Key = tuple[int, str, int]
#: This process's writer id, with the process it was drawn in (a forked worker draws anew).
_writer: tuple[int, int] | None = None


def writer_id() -> int:
    """The ``writer`` of this process's counter rows: drawn at random once per process
    (never 0, the rows filled by the migration)."""
    global _writer
    if _writer is None or _writer[0] != os.getpid():
        _writer = (os.getpid(), 1 + secrets.randbelow(2**31 - 1))
    return _writer[1]


def minute_of(event_at: str) -> str:
    """The stored minute of an encoded ``event_at`` (`time_text`): its minute's start."""
    return event_at[:16] + ":00.000000"


def hour_of(minute: str) -> str:
    """The stored hour of a stored minute: its hour's start."""
    return minute[:13] + ":00:00.000000"


def floor_to(moment: datetime, width: str) -> datetime:
    """The start of `moment`'s minute or hour (`width`: ``"minute"`` or ``"hour"``)."""
    if width == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(second=0, microsecond=0)


def ceil_to(moment: datetime, width: str) -> datetime:
    """`moment` when it starts a minute (an hour), else the start of the next one."""
    start = floor_to(moment, width)
    if start == moment:
        return start
    return start + (timedelta(hours=1) if width == "hour" else timedelta(minutes=1))


async def _upsert(tx: Transaction, dialect: Dialect, width: str, counts: Counter[_Key]) -> None:
    """Add `counts` (negative: take away) to the counters of `width`, in key order."""
    table, column = COUNTERS[width]
    columns = ("user_id", column, "level", "writer", "n")
    keys = sorted(key for key, n in counts.items() if n)
    writer = writer_id()
    for start in range(0, len(keys), _PER_STATEMENT):
        part = keys[start : start + _PER_STATEMENT]
        await tx.defer(
            dialect.upsert(table, columns, columns[:4], rows=len(part), add=("n",)),
            [value for key in part for value in (*key, writer, counts[key])],
        )


async def _apply(tx: Transaction, dialect: Dialect, minutes: Counter[_Key]) -> None:
    """Add the per-minute `minutes` (negative: take away) to both tables, in `tx`."""
    hours: Counter[_Key] = Counter()
    for (user_id, minute, level), n in minutes.items():
        hours[(user_id, hour_of(minute), level)] += n
    await _upsert(tx, dialect, "minute", minutes)
    await _upsert(tx, dialect, "hour", hours)


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
    await _drop_emptied(tx, user_id, "minute", sorted({key[1] for key in counts}))
    await _drop_emptied(tx, user_id, "hour", sorted({hour_of(key[1]) for key in counts}))


async def _drop_emptied(tx: Transaction, user_id: int, width: str, starts: list[str]) -> None:
    """Delete every writer's rows of `user_id`'s counters of `width` at `starts` whose sum
    over writers is 0 (an emptied minute or hour leaves nothing behind)."""
    table, column = COUNTERS[width]
    for first in range(0, len(starts), _PER_STATEMENT):
        part = starts[first : first + _PER_STATEMENT]
        marks = ", ".join("?" * len(part))
        emptied = await tx.fetch(
            f"SELECT {column}, level FROM {table} WHERE user_id = ? AND {column} IN ({marks}) "
            f"GROUP BY {column}, level HAVING SUM(n) <= 0",
            (user_id, *part),
        )
        if emptied:
            pairs = ", ".join(["(?, ?)"] * len(emptied))
            await tx.execute(
                f"DELETE FROM {table} WHERE user_id = ? AND ({column}, level) IN ({pairs})",
                (user_id, *(value for start, level in emptied for value in (start, level))),
            )


async def forget_user(tx: Transaction, user_id: int) -> None:
    """Delete every counter of `user_id` (whose rows `tx` deletes)."""
    for table, _ in COUNTERS.values():
        await tx.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
