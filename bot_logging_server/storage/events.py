"""The ``events`` table: usage events written by group commit (creating or updating their
sessions in the same transaction), pages and stats read back. The values these take and
give (`Event`, `EventQuery`...) are `storage.event_records`.

Written once for every backend (see `storage.dialect.Dialect`). Every read is scoped to one
owner (``user_id = ?`` always comes first), whatever the filters.

Writing: concurrent `EventTable.insert_events` calls share transactions (`GroupCommit`), and
each shared transaction does, all or nothing:

1. one upsert of the sessions its events name (in key order, so two transactions lock rows
   in the same order): a new session is inserted with ``event_count`` = its events in the
   group, an existing one has ``event_count`` grown and its last event updated. Rows locked
   by the upsert are read back, so the transaction that finds ``event_count`` equal to its
   own count is the one that created the session: exactly one caller is told "new session",
   however many post to it at once, and no count is lost;
2. the events, in arrival order, with multi-row INSERTs (`Transaction.insert_rows`); an event
   whose id the caller needs (`insert_event`) gets a one-row INSERT of its own.

Times: ``event_at`` is the client's time when it parsed, else the receive time (the order
of a session's events, time ranges and stats use it); ``clock_skew_ms`` is the client's time
minus the receive time, 0 when the client sent none and NULL when what it sent did not parse,
so "unparseable or ahead of the server's clock" is one indexed range.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter

from bot_logging_server.storage.base import (
    MAX_STAT_ROWS,
    Database,
    StorageError,
    Table,
    Transaction,
    join_filters,
)
from bot_logging_server.storage.dialect import multi_row_insert
from bot_logging_server.storage.event_records import (
    CLICK_NAME,
    EVENT_SORTS,
    PAGE_SORTS,
    VIEW_NAMES,
    Event,
    EventQuery,
    NameCount,
    PageCount,
    Recorded,
    StoredEvent,
)
from bot_logging_server.storage.group_commit import GroupCommit
from bot_logging_server.storage.idempotency import Claim, claim_key
from bot_logging_server.storage.sessions import (
    SESSION_WRITE_COLUMNS,
    binary_text,
    json_or_none,
    parse_json_or_none,
)

__all__ = ["EventTable"]


_INSERT_COLUMNS = (
    "user_id",
    "source",
    "ingest_key_id",
    "category",
    "name",
    "page",
    "data",
    "data_raw",
    "client_time",
    "client_at",
    "clock_skew_ms",
    "event_at",
    "sequence",
    "received_at",
    "ip",
    "user_agent",
    "session_id",  # last: filled in by the group's transaction
)
_SESSION_UPSERT = (*SESSION_WRITE_COLUMNS, "event_count", "last_event_at", "last_event_name")
_SESSION_KEYS = ("source", "session_key", "user_id")
_EVENT_COLUMNS = (
    "e.id, e.user_id, e.source, e.session_id, s.session_key, e.ingest_key_id, e.category, "
    "e.name, e.page, e.data, e.data_raw, e.client_time, e.client_at, e.clock_skew_ms, "
    "e.event_at, e.sequence, e.received_at, e.ip, e.user_agent"
)
#: Sessions per upsert / read-back statement of a group.
_SESSIONS_PER_STATEMENT = 64
_ONE_MS = timedelta(milliseconds=1)

#: (source, session key, owner): a session's unique key, in the index's order.
_SessionKey = tuple[str, str, int]


@dataclass(eq=False, slots=True)
class _Request:
    """One `EventTable.insert_events` call in its group; the group's transaction fills in
    the results. Its events travel as `_Row` tuples pointing at it."""

    #: The ``Idempotency-Key`` of the request, if any.
    claim: Claim | None = None
    #: `EventTable.insert_event`: its one event gets a statement of its own, for its id.
    single: bool = False
    id: int | None = None
    #: The session keys this request's events opened.
    opened: set[str] = field(default_factory=set)


#: One event waiting in the group commit: its request, its session's unique key (None: no
#: session) and its values in `_INSERT_COLUMNS` order but the last (the session's id).
_Row = tuple[_Request, _SessionKey | None, tuple]
#: Where `_session_start` reads a session's opening in an event's values: ingest_key_id,
#: received_at, client_time, client_at, ip, user_agent.
_START_VALUES = (2, 13, 8, 9, 14, 15)
_NAME, _RECEIVED = 4, 13


def _kept(claim: Claim | None) -> bool:
    """Whether a request with `claim` is stored: no key, or a key not on record yet."""
    return claim is None or claim.duplicate is None


class EventTable(Table):
    """The queries of ``events``; inserts share transactions (and upsert their sessions)."""

    def __init__(self, db: Database) -> None:
        """Run on `db`; up to ``db.writers`` group-commit transactions in flight."""
        super().__init__(db)
        self._event_group: GroupCommit[_Row] = GroupCommit(self._write_events, writers=db.writers)

    async def drain(self) -> None:
        """Finish every pending group commit of events."""
        await self._event_group.drain()
        await super().drain()

    # -- writing events -----------------------------------------------------------------

    def _rows(
        self,
        request: _Request,
        user_id: int,
        events: Sequence[Event],
        received_at: datetime,
        key_id: int | None,
    ) -> list[_Row]:
        """`events` as rows waiting for their group. The times of a request are few (the
        receive time, a client time often shared by its events): each is encoded once."""
        encode = self.db.dialect.encode_time
        received = encode(received_at)
        times: dict[datetime, tuple[object, int]] = {}  # client_at -> (encoded, skew)
        rows: list[_Row] = []
        for event in events:
            at = event.client_at
            if at is not None:
                known = times.get(at)
                if known is None:
                    known = times[at] = (encode(at), (at - received_at) // _ONE_MS)
                client_at, skew = known
                event_at = client_at
            else:
                # No client time: the event's time is the receive time (skew 0); one that
                # did not parse: skew NULL.
                client_at, event_at = None, received
                skew = 0 if event.client_time is None else None
            values = (
                user_id,
                event.source,
                key_id,
                event.category,
                event.name,
                event.page,
                json_or_none(event.data),
                event.data_raw,
                event.client_time,
                client_at,
                skew,
                event_at,
                event.sequence,
                received,
                event.ip,
                event.user_agent,
            )
            session = None if event.session is None else (event.source, event.session, user_id)
            rows.append((request, session, values))
        return rows

    async def insert_events(
        self,
        user_id: int,
        events: Sequence[Event],
        received_at: datetime,
        key_id: int | None = None,
        claim: Claim | None = None,
    ) -> Recorded:
        """Store `events` for owner `user_id` in one transaction shared with concurrent calls.

        Returns after the commit: how many were stored and which session keys they opened.
        Raises (and stores none of them) when that shared transaction fails. `key_id` is the
        ingest key that wrote them (None: the owner's token). Events must be valid already
        (`bot_logging_server.events.record_events` checks them). With `claim` (an
        idempotency key) the key is recorded in the same transaction, unless it is on record
        already: then ``claim.duplicate`` is set and none of these events is stored.
        """
        request = _Request(claim)
        rows = self._rows(request, user_id, events, received_at, key_id)
        await self._event_group.submit(rows)
        if claim is not None and claim.duplicate is not None:
            return Recorded(0, frozenset())
        return Recorded(len(rows), frozenset(request.opened))

    async def insert_event(
        self, user_id: int, event: Event, received_at: datetime, key_id: int | None = None
    ) -> tuple[int, bool]:
        """`insert_events` for one event whose id is needed: returns (its id, whether it
        opened its session). Costs one statement more in its group than a batch does."""
        request = _Request(single=True)
        await self._event_group.submit(self._rows(request, user_id, [event], received_at, key_id))
        assert request.id is not None
        return request.id, bool(request.opened)

    async def _write_events(self, group: list[_Row]) -> None:
        """A group's transaction: its sessions upserted, then its events inserted.

        Group commit runs it again after a `Conflict` (rolled back whole): the results of a
        rolled-back attempt are cleared first. The requests' idempotency keys are claimed
        first (in key order); the events of a request whose key is on record are left out.
        """
        requests = dict.fromkeys(map(itemgetter(0), group))
        claims = [r.claim for r in requests if r.claim is not None]
        for request in requests:
            request.id = None
            request.opened.clear()
        for claim in claims:
            claim.outcome.duplicate = None
        async with self.db.transaction() as tx:
            for claim in sorted(claims, key=lambda c: (c.user_id, c.key)):
                claim.outcome.duplicate = await claim_key(tx, self.db.dialect, claim)
            if claims:
                group = [row for row in group if _kept(row[0].claim)]
            ids = await self._upsert_sessions(tx, group)
            ids[None] = None  # an event without a session
            if not any(request.single for request in requests):
                rows = [(*values, ids[session]) for _, session, values in group]
                await tx.insert_rows("events", _INSERT_COLUMNS, rows)
                return
            bulk: list[tuple] = []
            for request, session, values in group:
                row = (*values, ids[session])
                if not request.single:
                    bulk.append(row)
                    continue
                await tx.insert_rows("events", _INSERT_COLUMNS, bulk)
                bulk = []
                done = await tx.execute(multi_row_insert("events", _INSERT_COLUMNS, 1), row)
                request.id = done.lastrowid
            await tx.insert_rows("events", _INSERT_COLUMNS, bulk)

    async def _upsert_sessions(self, tx: Transaction, group: list[_Row]) -> dict:
        """Create or update every session `group` names; return their ids by key."""
        sessions = list(map(itemgetter(1), group))
        counts = Counter(sessions)
        counts.pop(None, None)
        # Each session's first and last row (the last of equal keys wins).
        first = dict(zip(reversed(sessions), reversed(group), strict=True))
        last = dict(zip(sessions, group, strict=True))
        ordered = sorted(counts)  # one lock order for every transaction
        ids: dict[_SessionKey | None, int | None] = {}
        for start in range(0, len(ordered), _SESSIONS_PER_STATEMENT):
            part = ordered[start : start + _SESSIONS_PER_STATEMENT]
            args: list = []
            for key in part:
                opening, latest = first[key][2], last[key][2]
                args += [*key, *(opening[i] for i in _START_VALUES), counts[key]]
                args += [latest[_RECEIVED], latest[_NAME]]
            await tx.defer(  # sent with the read-back below
                self.db.dialect.upsert(
                    "sessions",
                    _SESSION_UPSERT,
                    _SESSION_KEYS,
                    rows=len(part),
                    add=("event_count",),
                    keep=_SESSION_UPSERT[3:9],
                ),
                args,
            )
            where = " OR ".join(["(source = ? AND session_key = ? AND user_id = ?)"] * len(part))
            rows = await tx.fetch(
                f"SELECT id, source, session_key, user_id, event_count FROM sessions WHERE {where}",
                [value for key in part for value in key],
            )
            for row in rows:
                key = (row[1], binary_text(row[2]), row[3])
                ids[key] = row[0]
                if key in counts and int(row[4]) == counts[key]:
                    first[key][0].opened.add(key[1])  # this group inserted it
        missing = [key for key in ordered if key not in ids]
        if missing:  # never expected: the upsert just wrote them
            raise StorageError(f"{len(missing)} sessions not found after their upsert")
        return ids

    async def count_events(self, user_id: int) -> int:
        """How many events this owner has."""
        rows = await self.db.fetch("SELECT COUNT(*) FROM events WHERE user_id = ?", (user_id,))
        return int(rows[0][0])

    # -- reading events -------------------------------------------------------------------

    def _event_where(
        self, user_id: int, query: EventQuery, with_cursor: bool = True
    ) -> tuple[str, list]:
        """The WHERE clause (columns of ``events e``) for `query`, scoped to `user_id`."""
        encode = self.db.dialect.encode_time
        clauses = [
            ("e.source = ?", query.source),
            (
                "e.session_id IN (SELECT id FROM sessions WHERE session_key = ? "
                "AND user_id = e.user_id)",
                query.session,
            ),
            ("e.session_id = ?", query.session_id),
            ("e.ingest_key_id = ?", query.ingest_key_id),
            ("e.category = ?", query.category),
            ("e.name = ?", query.name),
            ("e.page = ?", query.page),
            ("e.ip = ?", query.ip),
            ("e.event_at >= ?", None if query.since is None else encode(query.since)),
            ("e.event_at < ?", None if query.until is None else encode(query.until)),
            (
                "(e.clock_skew_ms IS NULL OR e.clock_skew_ms > ?)",
                query.tolerance_ms if query.invalid_time else None,
            ),
        ]
        if with_cursor:
            clauses += [("e.id < ?", query.before_id), ("e.id > ?", query.after_id)]
        return join_filters(("e.user_id = ?", user_id), clauses)

    async def query_events(self, user_id: int, query: EventQuery) -> list[StoredEvent]:
        """One page of the owner's events matching `query`, in its order."""
        where, args = self._event_where(user_id, query)
        order = "DESC" if query.descending else "ASC"
        rows = await self.db.fetch(
            f"SELECT {_EVENT_COLUMNS} FROM events e LEFT JOIN sessions s ON s.id = e.session_id "
            f"WHERE {where} ORDER BY {EVENT_SORTS[query.sort]} {order}, e.id {order} "
            "LIMIT ? OFFSET ?",
            (*args, query.limit, query.offset),
        )
        time = self.db.dialect.decode_time
        return [
            StoredEvent(
                *row[:4],
                binary_text(row[4]),
                *row[5:9],
                parse_json_or_none(row[9]),
                row[10],
                row[11],
                None if row[12] is None else time(row[12]),
                row[13],
                time(row[14]),
                row[15],
                time(row[16]),
                row[17],
                row[18],
            )
            for row in rows
        ]

    async def event_stats(self, user_id: int, query: EventQuery, bucket: str) -> list[NameCount]:
        """Counts per (bucket of ``event_at``, name) of events matching `query`'s filters.

        `bucket` is one of `BUCKETS`; the page of `query` is ignored. Newest buckets first,
        names ascending, at most `MAX_STAT_ROWS` rows.
        """
        expression, start = self.db.dialect.bucket("e.event_at", bucket)
        where, args = self._event_where(user_id, query, with_cursor=False)
        rows = await self.db.fetch(
            f"SELECT {expression} AS bucket, e.name, COUNT(*) FROM events e WHERE {where} "
            "GROUP BY bucket, e.name ORDER BY bucket DESC, e.name LIMIT ?",
            (*args, MAX_STAT_ROWS),
        )
        return [NameCount(start(r[0]), r[1], int(r[2])) for r in rows]

    async def top_pages(
        self, user_id: int, query: EventQuery, sort: str = "events", limit: int = 10
    ) -> list[PageCount]:
        """The `limit` pages with the most events matching `query`'s filters, counted in SQL.

        Ordered by `sort` (one of `PAGE_SORTS`) descending, then by events descending, then
        by page; events without a page (null or empty) are left out. The page of `query` is
        ignored. Its cost grows with the events in range (``page`` is too long to index).
        """
        if sort not in PAGE_SORTS:
            raise ValueError(f"sort must be one of {PAGE_SORTS}")
        where, args = self._event_where(user_id, query, with_cursor=False)
        views = ", ".join(["?"] * len(VIEW_NAMES))
        rows = await self.db.fetch(
            "SELECT e.page, COUNT(*) AS events, "
            f"SUM(CASE WHEN e.name IN ({views}) THEN 1 ELSE 0 END) AS views, "
            "SUM(CASE WHEN e.name = ? THEN 1 ELSE 0 END) AS clicks, "
            "COUNT(DISTINCT e.session_id) AS sessions "
            f"FROM events e WHERE {where} AND e.page IS NOT NULL AND e.page <> '' "
            f"GROUP BY e.page ORDER BY {sort} DESC, events DESC, e.page LIMIT ?",
            (*VIEW_NAMES, CLICK_NAME, *args, limit),
        )
        return [PageCount(r[0], *(int(n) for n in r[1:5])) for r in rows]
