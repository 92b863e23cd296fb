"""The ``sessions`` table: sessions started, found, stopped and listed.

Written once for every backend (see `storage.dialect.Dialect`). A session belongs to one owner
and is unique by (source, key, owner). Sessions are also created by their first event, in the
events' own transaction (`storage.events`); this module starts them explicitly (a server-
minted key) and reads and stops them. Every listing is scoped to one owner.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from bot_logging_server.storage.base import (
    MAX_PAGE,
    MAX_STAT_ROWS,
    DuplicateKey,
    StorageError,
    Table,
    join_filters,
)
from bot_logging_server.storage.dialect import multi_row_insert

__all__ = [
    "SESSION_SORTS",
    "Session",
    "SessionCount",
    "SessionExists",
    "SessionQuery",
    "SessionTable",
    "StopOutcome",
    "binary_text",
    "check_page",
    "json_or_none",
    "parse_json_or_none",
]

#: What `SessionTable.stop_session` found: stopped now, no such session, or stopped before.
StopOutcome = Literal["stopped", "not_found", "already_stopped"]


def binary_text(value: Any) -> Any:
    """A VARBINARY column's value (bytes on MySQL) as text; anything else as it is."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def json_or_none(value: Any) -> str | None:
    """`value` as compact JSON text (non-ASCII kept), None for None."""
    if value is None:
        return None
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # what only the standard library writes (integers past 64 bits)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def parse_json_or_none(text: str | None) -> Any:
    """The value of stored JSON text, None for None."""
    return None if text is None else json.loads(text)


def check_page(limit: int, offset: int, sort: str, sorts: dict[str, str]) -> None:
    """Raise `ValueError` for a limit outside 1..`MAX_PAGE`, a negative offset or an unknown
    sort (a programming error: the schemas check clients' values)."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}")
    if offset < 0:
        raise ValueError("offset must be >= 0")
    if sort not in sorts:
        raise ValueError(f"sort must be one of {sorted(sorts)}")


class SessionExists(StorageError):
    """A session with that (source, key) already exists for that owner."""


@dataclass(frozen=True, slots=True)
class Session:
    """One row of ``sessions``. Times are naive UTC; ``*_client_time`` as the client sent
    them, ``*_client_at`` parsed (None when they did not parse)."""

    id: int
    user_id: int
    source: str
    key: str
    ingest_key_id: int | None
    started_at: datetime
    started_client_time: str | None
    started_client_at: datetime | None
    stopped_at: datetime | None
    stopped_client_time: str | None
    stopped_client_at: datetime | None
    attributes: Any
    ip: str | None
    user_agent: str | None
    event_count: int
    last_event_at: datetime | None
    last_event_name: str | None

    @property
    def stopped(self) -> bool:
        """True once the session was stopped."""
        return self.stopped_at is not None


@dataclass(frozen=True, slots=True)
class SessionCount:
    """One bar of the sessions histogram: `count` sessions (of `source`, or of every source
    when None) started in the bucket of ``started_at`` starting at `start`."""

    start: datetime
    source: str | None
    count: int


#: ``SessionQuery.sort`` values and the column each sorts on (ties by id).
SESSION_SORTS = {
    "id": "id",
    "started": "started_at",
    "stopped": "stopped_at",
    "events": "event_count",
    "last_event": "last_event_at",
}


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """Which of an owner's sessions to read: filters `source`, `key`, `ingest_key_id`,
    `ip`, `since <= started_at < until`, `stopped` (True: only stopped, False: only open);
    page as in `EventQuery` (`sort` a key of `SESSION_SORTS`)."""

    source: str | None = None
    key: str | None = None
    ingest_key_id: int | None = None
    ip: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    stopped: bool | None = None
    sort: str = "id"
    descending: bool = True
    before_id: int | None = None
    after_id: int | None = None
    offset: int = 0
    limit: int = 100

    def __post_init__(self) -> None:
        """Refuse a bad page (a programming error: the schemas check clients' values)."""
        check_page(self.limit, self.offset, self.sort, SESSION_SORTS)


#: The columns a session is read with, in `Session` field order.
SESSION_COLUMNS = (
    "id, user_id, source, session_key, ingest_key_id, started_at, started_client_time, "
    "started_client_at, stopped_at, stopped_client_time, stopped_client_at, attributes, ip, "
    "user_agent, event_count, last_event_at, last_event_name"
)
#: The columns `SessionTable.start_session` and the events' upsert write.
SESSION_WRITE_COLUMNS = (
    "source",
    "session_key",
    "user_id",
    "ingest_key_id",
    "started_at",
    "started_client_time",
    "started_client_at",
    "ip",
    "user_agent",
)


class SessionTable(Table):
    """The queries of ``sessions`` (the events' upsert is `storage.events`)."""

    # -- sessions -----------------------------------------------------------------------

    async def start_session(
        self,
        user_id: int,
        source: str,
        key: str,
        started_at: datetime,
        *,
        client_time: str | None = None,
        client_at: datetime | None = None,
        key_id: int | None = None,
        attributes: Any = None,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> Session:
        """Insert an open session with no events yet; `SessionExists` when the owner has
        one with that (source, key)."""
        encode = self.db.dialect.encode_time
        columns = (*SESSION_WRITE_COLUMNS, "attributes")
        args = (source, key, user_id, key_id, encode(started_at), client_time)
        args += (None if client_at is None else encode(client_at), ip, user_agent)
        try:
            async with self.db.transaction() as tx:
                done = await tx.execute(
                    multi_row_insert("sessions", columns, 1), (*args, json_or_none(attributes))
                )
        except DuplicateKey:
            raise SessionExists(key) from None
        session = await self.session_by_id(user_id, done.lastrowid or 0)
        assert session is not None
        return session

    def _session(self, row: Sequence) -> Session:
        time = self.db.dialect.decode_time

        def maybe(value: Any) -> datetime | None:
            return None if value is None else time(value)

        return Session(
            row[0],
            row[1],
            row[2],
            binary_text(row[3]),
            row[4],
            time(row[5]),
            row[6],
            maybe(row[7]),
            maybe(row[8]),
            row[9],
            maybe(row[10]),
            parse_json_or_none(row[11]),
            row[12],
            row[13],
            int(row[14]),
            maybe(row[15]),
            row[16],
        )

    async def session_by_id(self, user_id: int, session_id: int) -> Session | None:
        """The owner's session with this id, or None."""
        rows = await self.db.fetch(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ? AND user_id = ?",
            (session_id, user_id),
        )
        return self._session(rows[0]) if rows else None

    async def find_session(
        self, source: str, key: str, user_id: int | None = None
    ) -> Session | None:
        """The session (source, key) of owner `user_id`, or of any owner when None.

        Without an owner (a server-minted key that is itself the credential, as Microticks'
        token), a key two owners both use finds nothing.
        """
        where, args = "source = ? AND session_key = ?", [source, key]
        if user_id is not None:
            where, args = where + " AND user_id = ?", [*args, user_id]
        rows = await self.db.fetch(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE {where} LIMIT 2", args
        )
        return self._session(rows[0]) if len(rows) == 1 else None

    async def stop_session(
        self,
        source: str,
        key: str,
        stopped_at: datetime,
        *,
        client_time: str | None = None,
        client_at: datetime | None = None,
        user_id: int | None = None,
    ) -> StopOutcome:
        """Stop the open session (source, key) (of `user_id`, or of any owner as in
        `find_session`). A session is stopped once: a second stop is ``already_stopped``."""
        session = await self.find_session(source, key, user_id)
        if session is None:
            return "not_found"
        encode = self.db.dialect.encode_time
        async with self.db.transaction() as tx:
            done = await tx.execute(
                "UPDATE sessions SET stopped_at = ?, stopped_client_time = ?, "
                "stopped_client_at = ? WHERE id = ? AND stopped_at IS NULL",
                (
                    encode(stopped_at),
                    client_time,
                    None if client_at is None else encode(client_at),
                    session.id,
                ),
            )
        return "stopped" if done.rowcount == 1 else "already_stopped"

    def _session_where(
        self, user_id: int, query: SessionQuery, with_cursor: bool = True
    ) -> tuple[str, list]:
        """The WHERE clause of `query`'s filters (and its cursor), scoped to `user_id`."""
        encode = self.db.dialect.encode_time
        clauses = [
            ("source = ?", query.source),
            ("session_key = ?", query.key),
            ("ingest_key_id = ?", query.ingest_key_id),
            ("ip = ?", query.ip),
            ("started_at >= ?", None if query.since is None else encode(query.since)),
            ("started_at < ?", None if query.until is None else encode(query.until)),
        ]
        if with_cursor:
            clauses += [("id < ?", query.before_id), ("id > ?", query.after_id)]
        where, args = join_filters(("user_id = ?", user_id), clauses)
        if query.stopped is not None:
            where += " AND stopped_at IS NOT NULL" if query.stopped else " AND stopped_at IS NULL"
        return where, args

    async def query_sessions(self, user_id: int, query: SessionQuery) -> list[Session]:
        """One page of the owner's sessions matching `query`."""
        where, args = self._session_where(user_id, query)
        order = "DESC" if query.descending else "ASC"
        rows = await self.db.fetch(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE {where} "
            f"ORDER BY {SESSION_SORTS[query.sort]} {order}, id {order} LIMIT ? OFFSET ?",
            (*args, query.limit, query.offset),
        )
        return [self._session(row) for row in rows]

    async def session_stats(
        self, user_id: int, query: SessionQuery, bucket: str, by_source: bool = False
    ) -> list[SessionCount]:
        """Sessions started per bucket of ``started_at`` (and per source with `by_source`)
        among the owner's sessions matching `query`'s filters, counted in SQL.

        `bucket` is one of `BUCKETS`; the page of `query` is ignored. Newest buckets first
        (sources ascending), at most `MAX_STAT_ROWS` rows. Without `by_source`, and with
        filters on the start time only, the index (user_id, started_at) answers it alone.
        """
        expression, start = self.db.dialect.bucket("started_at", bucket)
        where, args = self._session_where(user_id, query, with_cursor=False)
        source = ", source" if by_source else ""
        rows = await self.db.fetch(
            f"SELECT {expression} AS bucket{source}, COUNT(*) FROM sessions WHERE {where} "
            f"GROUP BY bucket{source} ORDER BY bucket DESC{source} LIMIT ?",
            (*args, MAX_STAT_ROWS),
        )
        if by_source:
            return [SessionCount(start(r[0]), r[1], int(r[2])) for r in rows]
        return [SessionCount(start(r[0]), None, int(r[1])) for r in rows]
