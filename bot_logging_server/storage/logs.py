"""The ``user_logs`` table: batches written by group commit, pages and stats read back.

Written once for every backend (see `storage.dialect.Dialect`). Every read is scoped to one
user (`query_where` always starts with ``user_id = ?``), whatever the filters.

A batch is authenticated before it is written, and a user may be removed or disabled (by
another process) in between: the group's transaction therefore reads its users again, first
(locking their rows until the commit on MySQL), and leaves out the batches of users no longer
active, whose requests get `UserNotActive`; the other batches of the group are stored.

A message longer than the backend takes in one value (`Database.max_value_bytes`: MySQL's
``max_allowed_packet``) is stored cut to fit, with ``truncated`` set and its original length
kept, as for ``--max-msg-chars``; and a group commit never grows past that size, so one large
batch goes alone and can never fail the batches sent beside it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

import msgspec

from bot_logging_server.storage.base import (
    MAX_STAT_ROWS,
    Database,
    LevelCount,
    LogRow,
    StoredLog,
    Table,
    Transaction,
    UserNotActive,
    cut_to_size,
    join_filters,
)
from bot_logging_server.storage.counts import COUNTERS, add_inserted, ceil_to, floor_to
from bot_logging_server.storage.group_commit import GroupCommit, Refusals
from bot_logging_server.storage.idempotency import Claim, claim_keys
from bot_logging_server.storage.log_query import LogQuery, answered_by_counters, query_where
from bot_logging_server.storage.log_search import SearchPlan, common_in_window, plan_search
from bot_logging_server.storage.search_index import find_word_index, set_word_index

__all__ = ["LogTable"]

log = logging.getLogger(__name__)

_LOG_COLUMNS = (
    "id, user_id, pid, p_name, p_description, level, msg, truncated, msg_length, "
    "event_at, post_time, received_at"
)
_INSERT_COLUMNS = (
    "user_id",
    "pid",
    "p_name",
    "p_description",
    "level",
    "msg",
    "truncated",
    "msg_length",
    "event_at",
    "post_time",
    "received_at",
)
#: The index of (user_id, event_at, id): the records in event-time order, the keyset, and
#: time ranges.
_EVENT_ID_INDEX = "ix_user_logs_user_event_id"
#: The index of (user_id, id): the records in arrival order.
_ID_INDEX = "ix_user_logs_user_id"
#: Bytes a row takes besides its message, at most (p_name and p_description are 255
#: characters of up to four bytes, escaped; numbers and times), and the INSERT around it.
_ROW_BYTES = 4096
#: `LogTable.suggest_values` looks at this many of a user's newest rows, at most.
SUGGEST_WINDOW = 20_000
#: ... and answers this many values, at most.
SUGGEST_LIMIT = 20
#: Distinct values read for a suggestion before sorting (a bound on what one read returns).
_SUGGEST_DISTINCT = 1000
#: A time range with fewer rows than this is read through `_EVENT_ID_INDEX` (where the
#: backend can be told to).
_SMALL_RANGE = 50_000


def _fit(rows: Sequence[LogRow], max_value_bytes: int | None) -> Sequence[LogRow]:
    """`rows`, each message cut to `max_value_bytes` (and flagged) where it is longer."""
    if max_value_bytes is None or all(len(r.msg) * 4 <= max_value_bytes for r in rows):
        return rows
    fitted = []
    for row in rows:
        msg = cut_to_size(row.msg, max_value_bytes)
        fitted.append(
            row if msg is row.msg else msgspec.structs.replace(row, msg=msg, truncated=True)
        )
    return fitted


def _weight(rows: Sequence[LogRow]) -> int:
    """Roughly the bytes `rows` take in an INSERT (for the group commit's size bound)."""
    return sum(
        len(r.msg or "") + len(r.p_name or "") + len(r.p_description or "") + 100 for r in rows
    )


def _params(
    user_id: int,
    rows: Sequence[LogRow],
    received_at: datetime,
    encode_time: Callable[[datetime], object],
) -> list[tuple]:
    """The insert's argument tuples (in `_INSERT_COLUMNS` order) for a batch of `rows`.

    A batch repeats a handful of distinct times: each is encoded once (the driver's own time
    escaping was the slowest part of a large batch).
    """
    times: dict[datetime, object] = {}
    received = times[received_at] = encode_time(received_at)
    return [
        (
            user_id,
            r.pid,
            r.p_name,
            r.p_description,
            r.level,
            r.msg,
            int(r.truncated),
            r.msg_length,
            times.get(r.event_at) or times.setdefault(r.event_at, encode_time(r.event_at)),
            times.get(r.post_time) or times.setdefault(r.post_time, encode_time(r.post_time)),
            received,
        )
        for r in rows
    ]


def _merged(parts: Sequence[Sequence[LevelCount]]) -> list[LevelCount]:
    """The counts of `parts` summed per (start, level): newest first, levels ascending, at
    most `MAX_STAT_ROWS`."""
    merged: dict[tuple[datetime, int], int] = {}
    for counts in parts:
        for c in counts:
            merged[(c.start, c.level)] = merged.get((c.start, c.level), 0) + c.count
    # Newest first, levels ascending (a stable sort keeps the levels' order).
    ordered = sorted(sorted(merged, key=lambda key: key[1]), key=lambda key: key[0], reverse=True)
    return [LevelCount(at, level, merged[(at, level)]) for at, level in ordered][:MAX_STAT_ROWS]


class LogTable(Table):
    """The queries of ``user_logs``; inserts share transactions through a `GroupCommit`."""

    def __init__(self, db: Database) -> None:
        """Run on `db`; up to ``db.writers`` group-commit transactions in flight."""
        super().__init__(db)
        self._group: GroupCommit[tuple] = GroupCommit(self._write_log_rows, writers=db.writers)
        self._on_stored: Callable[[int, Sequence[LogRow], datetime], None] | None = None

    def observe_group_commits(self, hook: Callable[[int, int], None] | None) -> None:
        """Call ``hook(batches, rows)`` after every committed group-commit transaction."""
        self._group.on_commit = hook

    def _value_limit(self) -> int | None:
        """The most bytes a message may take (`Database.max_value_bytes` less a row's rest)."""
        limit = self.db.max_value_bytes
        return None if limit is None else max(1, limit - _ROW_BYTES)

    def observe_stored_logs(
        self, hook: Callable[[int, Sequence[LogRow], datetime], None] | None
    ) -> None:
        """Call ``hook(user_id, rows, received_at)`` after each batch's commit (the alerts'
        matching). It runs on the event loop, so it must be quick; what it raises is logged,
        never given to the request."""
        self._on_stored = hook

    async def drain(self) -> None:
        """Finish every pending group commit."""
        await self._group.drain()
        await super().drain()

    async def insert_logs(
        self,
        user_id: int,
        rows: Sequence[LogRow],
        received_at: datetime,
        claim: Claim | None = None,
    ) -> int:
        """Insert every row in one transaction, shared with concurrent calls; return how many.

        Returns after the commit that holds these rows; raises (and stores none of them) when
        that shared transaction fails, and `UserNotActive` when the user was removed or
        disabled before it began. A message too long for the backend is stored cut. With a
        `claim` (an idempotency key) the key is recorded in the same transaction, unless it is
        on record already: then nothing is stored, ``claim.duplicate`` holds the record, and 0
        is returned.
        """
        if not rows:
            return 0
        rows = _fit(rows, self._value_limit())
        # A group grows up to the backend's packet size (known once the database is open).
        self._group.max_bytes = self.db.max_value_bytes
        params = _params(user_id, rows, received_at, self.db.dialect.encode_time)
        if claim is None:
            await self._group.submit(params, _weight(rows))
        else:
            await self._group.submit([claim._replace(rows=len(params)), *params], _weight(rows))
            if claim.duplicate is not None:
                return 0  # stored by an earlier request: its records were matched then
        if self._on_stored is not None:
            try:
                self._on_stored(user_id, rows, received_at)
            except Exception:
                log.exception("the stored-logs hook failed")
        return len(rows)

    async def _write_log_rows(self, params: list[tuple]) -> Refusals[tuple] | None:
        """A group's transaction: every active user's rows in one bulk insert.

        The users are read again first: the rows of a user removed or disabled meanwhile are
        left out (their members get `UserNotActive`). A member sent with an idempotency key
        starts with its `Claim` (whose first item is the owner too): the keys of the members
        left are claimed next, in the same transaction, and a duplicate's rows are left out.
        The rows inserted are counted last (`storage.counts`), still in that transaction.
        """
        inactive: set[int] = set()
        claims = claim_keys(self.db.dialect) if any(type(r) is Claim for r in params) else None

        async def keep(tx: Transaction, rows: list[tuple]) -> list[tuple]:
            owners = {row[0] for row in rows}
            marks = ", ".join("?" * len(owners))
            found = await tx.fetch(
                f"SELECT id FROM users WHERE id IN ({marks}) AND disabled = 0"
                f"{self.db.dialect.share_rows}",
                sorted(owners),
            )
            inactive.update(owners - {int(row[0]) for row in found})
            if inactive:  # a member's claim goes with its rows: no key for a refused batch
                rows = [row for row in rows if row[0] not in inactive]
            return rows if claims is None else await claims(tx, rows)

        async def count(tx: Transaction, rows: list[tuple]) -> None:
            await add_inserted(tx, self.db.dialect, rows)

        await self.db.insert_many("user_logs", _INSERT_COLUMNS, params, keep=keep, then=count)
        if not inactive:
            return None
        # Every row of a member has the same owner (one `insert_logs` call).
        return lambda rows: (
            UserNotActive("user removed or disabled") if rows[0][0] in inactive else None
        )

    async def count_logs(self, user_id: int) -> int:
        """How many log rows this user has."""
        rows = await self.db.fetch("SELECT COUNT(*) FROM user_logs WHERE user_id = ?", (user_id,))
        return int(rows[0][0])

    async def query_logs(self, user_id: int, query: LogQuery) -> list[StoredLog]:
        """One page of this user's rows matching `query`: newest first, or oldest first.

        By id (arrival), the keyset page is ``id < before_id`` newest first, or
        ``id > after_id`` oldest first. By event time, rows are ordered by (event_at, id)
        and the page is the pair's keyset, read in order off (user_id, event_at, id): a row
        stored late, with an older event time, takes its place in that order.
        Only `user_id`'s rows are ever read, whatever the filters.
        """
        where, args = query_where(self.db.dialect, user_id, query)
        direction = "ASC" if query.oldest_first else "DESC"
        dialect = self.db.dialect
        if query.sort == "event_at":
            order = f"event_at {direction}, id {direction}"
            hint = dialect.index_hint(_EVENT_ID_INDEX) or dialect.pinned_index(_EVENT_ID_INDEX)
        else:
            order = f"id {direction}"
            hint = dialect.index_hint(_EVENT_ID_INDEX)
            if hint and not await self._small_range(user_id, query):
                hint = ""
            if not hint and query.since is None and query.until is None:
                # SQLite would otherwise read (user_id, event_at, id) and sort every row.
                hint = dialect.pinned_index(_ID_INDEX)
        select = f"SELECT {_LOG_COLUMNS} FROM user_logs"
        plan = await self._plan_search(user_id, query, hint)
        if plan is None:
            rows = await self.db.fetch(
                f"{select} {hint} WHERE {where} ORDER BY {order} LIMIT ?", (*args, query.limit)
            )
        else:  # the window row by row; the rest, if the page is not full, through the index
            window, window_args = plan.window
            rows = await self.db.fetch(
                f"{select} {hint} WHERE {where} AND {window} ORDER BY {order} LIMIT ?",
                (*args, *window_args, query.limit),
            )
            if len(rows) < query.limit:
                rest, rest_args, indexed = await plan.read_rest(self.db)
                rows += await self.db.fetch(
                    f"{select} {'' if indexed else hint} WHERE {where} AND {rest} "
                    f"ORDER BY {order} LIMIT ?",
                    (*args, *rest_args, query.limit - len(rows)),
                )
        decode = self.db.dialect.decode_time
        return [StoredLog.from_row(row, decode) for row in rows]

    async def _plan_search(self, user_id: int, query: LogQuery, hint: str) -> SearchPlan | None:
        """`log_search.plan_search` of `query` (None without a search or the word index,
        looked for each time: one turned off by another process is never asked)."""
        if query.q is None:
            return None
        index = await find_word_index(self.db)
        return None if index is None else await plan_search(self.db, user_id, query, hint, index)

    async def set_search_index(self, on: bool) -> bool:
        """Turn the word index of messages on or off (`search_index.set_word_index`);
        whether it changed."""
        return await set_word_index(self.db, on)

    async def search_index_on(self) -> bool:
        """Whether the word index of messages is on."""
        return await find_word_index(self.db) is not None

    async def _small_range(self, user_id: int, query: LogQuery) -> bool:
        """Whether `query` has a time range holding fewer than `_SMALL_RANGE` of the rows.

        Left alone, MySQL's optimizer walks the id order back from the newest row until it
        has a page; for a range far in the past, or a rare match, that reads most of the
        table. A small range is cheaper read whole through the event_at index and sorted.
        Counting up to `_SMALL_RANGE` entries of that index (index only) costs a few
        milliseconds.
        """
        if query.since is None and query.until is None:
            return False
        where, args = query_where(
            self.db.dialect, user_id, LogQuery(since=query.since, until=query.until)
        )
        rows = await self.db.fetch(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM user_logs WHERE {where} LIMIT ?) AS r",
            (*args, _SMALL_RANGE),
        )
        return int(rows[0][0]) < _SMALL_RANGE

    async def last_log_id(self, user_id: int) -> int:
        """The highest id among this user's rows, 0 when there is none (where a tail starts)."""
        rows = await self.db.fetch(
            "SELECT COALESCE(MAX(id), 0) FROM user_logs WHERE user_id = ?", (user_id,)
        )
        return int(rows[0][0])

    async def log_stats(self, user_id: int, query: LogQuery, bucket: str) -> list[LevelCount]:
        """Counts per (bucket of ``event_at``, level) of rows matching `query`'s filters.

        `bucket` is one of `BUCKETS`; the cursor and limit of `query` are ignored. Newest
        buckets first, levels ascending, at most `MAX_STAT_ROWS` rows. Without a filter but
        the level and the time range, summed from the counters (`storage.counts`): the
        range's whole hours from the hourly ones (hour and day buckets), its other whole
        minutes from the per-minute ones, and only the partial minutes at its ends from the
        rows; the same answer as grouping the rows, read off far fewer entries. Otherwise
        grouped in SQL, on the (user_id, event_at, level) index.
        """
        if not answered_by_counters(query):
            return await self._row_stats(user_id, query, bucket)
        since, until = query.since, query.until
        start = None if since is None else ceil_to(since, "minute")
        end = None if until is None else floor_to(until, "minute")
        if start is not None and end is not None and start >= end:
            return await self._row_stats(user_id, query, bucket)  # within two minutes
        # [since, start) and [end, until): partial minutes, from the rows (when not empty).
        rows = [(a, b) for a, b in ((since, start), (end, until)) if a is not None and a != b]
        minutes, hours = [(start, end)], []
        if bucket != "minute":  # whole hours inside [start, end) come from the hourly ones
            first = None if start is None else ceil_to(start, "hour")
            last = None if end is None else floor_to(end, "hour")
            if first is None or last is None or first < last:
                hours = [(first, last)]
                minutes = [(a, b) for a, b in ((start, first), (last, end)) if a != b]
        level = query.min_level
        parts = [
            *[await self._row_stats(user_id, LogQuery(level, a, b), bucket) for a, b in rows],
            *[
                await self._counter_stats("minute", user_id, level, a, b, bucket)
                for a, b in minutes
            ],
            *[await self._counter_stats("hour", user_id, level, a, b, bucket) for a, b in hours],
        ]
        return parts[0] if len(parts) == 1 else _merged(parts)

    async def _counter_stats(
        self,
        width: str,
        user_id: int,
        min_level: int | None,
        start: datetime | None,
        end: datetime | None,
        bucket: str,
    ) -> list[LevelCount]:
        """`log_stats` of the whole minutes (`width` ``"minute"``) or hours from `start` to
        before `end` (None: unbounded), summed from their counters."""
        dialect = self.db.dialect
        table, column = COUNTERS[width]
        expression, begins = dialect.bucket(column, bucket)
        where, args = join_filters(
            ("user_id = ?", user_id),
            [
                (f"{column} >= ?", None if start is None else dialect.encode_time(start)),
                (f"{column} < ?", None if end is None else dialect.encode_time(end)),
                ("level >= ?", min_level),
            ],
        )
        if width != bucket:
            rows = await self.db.fetch(
                f"SELECT {expression} AS bucket, level, SUM(n) FROM {table} "
                f"WHERE {where} GROUP BY bucket, level ORDER BY bucket DESC, level LIMIT ?",
                (*args, MAX_STAT_ROWS),
            )
            return [LevelCount(begins(r[0]), r[1], int(r[2])) for r in rows]
        # Each (start, level) is a bar, summed over the writers' rows: grouped in the order
        # of the primary key, read backwards (levels descending) without sorting. When the
        # cap cuts the oldest bucket read, its lowest levels are the ones the answer keeps:
        # read it whole.
        read = f"SELECT {column}, level, SUM(n) FROM {table} WHERE {where}"
        grouped = f"GROUP BY {column}, level"
        found = await self.db.fetch(
            f"{read} {grouped} ORDER BY {column} DESC, level DESC LIMIT ?",
            (*args, MAX_STAT_ROWS),
        )
        if len(found) == MAX_STAT_ROWS:
            oldest = found[-1][0]
            found = [r for r in found if r[0] != oldest]
            found += await self.db.fetch(f"{read} AND {column} = ? {grouped}", (*args, oldest))
        decode = dialect.decode_time  # a counter's own column holds its bucket's start
        counts = [LevelCount(decode(r[0]), r[1], int(r[2])) for r in found]
        counts.sort(key=lambda c: c.level)  # levels ascending within a bucket (stable)
        counts.sort(key=lambda c: c.start, reverse=True)
        return counts[:MAX_STAT_ROWS]

    async def _row_stats(self, user_id: int, query: LogQuery, bucket: str) -> list[LevelCount]:
        """`log_stats` grouped from the rows themselves; a search over a long range in two
        parts (`storage.log_search`) unless its words are common in the window."""
        expression, start = self.db.dialect.bucket("event_at", bucket)
        bare = dataclasses.replace(
            query, sort="event_at", before_id=None, after_id=None, oldest_first=False
        )
        where, args = query_where(self.db.dialect, user_id, bare, with_cursor=False)
        select = f"SELECT {expression} AS bucket, level, COUNT(*) FROM user_logs"
        grouped = f"GROUP BY bucket, level ORDER BY bucket DESC, level LIMIT {MAX_STAT_ROWS:d}"
        hint = self.db.dialect.index_hint(_EVENT_ID_INDEX)
        plan = await self._plan_search(user_id, bare, hint)
        if plan is None:
            rows = await self.db.fetch(f"{select} WHERE {where} {grouped}", args)
            return [LevelCount(start(r[0]), r[1], int(r[2])) for r in rows]
        window, window_args = plan.window
        rows = await self.db.fetch(
            f"{select} {hint} WHERE {where} AND {window} {grouped}", (*args, *window_args)
        )
        if common_in_window(sum(int(r[2]) for r in rows)):
            rows = await self.db.fetch(f"{select} WHERE {where} {grouped}", args)
            return [LevelCount(start(r[0]), r[1], int(r[2])) for r in rows]
        rest, rest_args, indexed = await plan.read_rest(self.db)
        rows += await self.db.fetch(
            f"{select} {'' if indexed else hint} WHERE {where} AND {rest} {grouped}",
            (*args, *rest_args),
        )
        return _merged([[LevelCount(start(r[0]), r[1], int(r[2])) for r in rows]])

    async def suggest_values(self, user_id: int, column: str, prefix: str) -> list[str]:
        """Distinct values of `column` (``p_name`` or ``p_description``) starting with
        `prefix` in any letter case, among `user_id`'s newest `SUGGEST_WINDOW` rows: at most
        `SUGGEST_LIMIT`, sorted (case-insensitively, then exactly).

        No index holds these columns, so the rows read are bounded: the newest ones, read
        backwards on the (user_id, id) index, whatever the user's size (a value not used
        lately is not suggested).
        """
        if column not in ("p_name", "p_description"):
            raise ValueError(f"not a suggested column: {column}")
        dialect = self.db.dialect
        where, args = "", []
        if prefix:
            clause, value = dialect.starts_with(column, prefix)
            where, args = f"WHERE {clause}", [value]
        # Distinct exactly (MySQL's column collation would merge "Web" and "web").
        rows = await self.db.fetch(
            f"SELECT DISTINCT {column}{dialect.exact_collation} FROM ("
            f"SELECT {column} FROM user_logs WHERE user_id = ? ORDER BY id DESC LIMIT ?"
            f") AS recent {where} LIMIT ?",
            (user_id, SUGGEST_WINDOW, *args, _SUGGEST_DISTINCT),
        )
        values = sorted({str(row[0]) for row in rows}, key=lambda v: (v.casefold(), v))
        return values[:SUGGEST_LIMIT]
