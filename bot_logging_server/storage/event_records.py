"""The values of usage events: an `Event` to store, a `StoredEvent` read back, what a write
`Recorded`, which events to read (`EventQuery`), and the rows of their stats (`NameCount`,
`PageCount`).

`storage.events` stores and reads them; `bot_logging_server.records` is how they look on the
wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from bot_logging_server.storage.sessions import check_page

__all__ = [
    "CLICK_NAME",
    "EVENT_SORTS",
    "PAGE_SORTS",
    "VIEW_NAMES",
    "Event",
    "EventQuery",
    "NameCount",
    "PageCount",
    "Recorded",
    "StoredEvent",
]


class Event(msgspec.Struct, frozen=True, gc=False):
    """One usage event of the common model, as a wire interface hands it over.

    An immutable record (positional or keyword arguments, equality by value, the repr of a
    dataclass), built as a msgspec struct because two are built per event stored (the wire's,
    then the checked one): a frozen dataclass took a tenth of ``POST /api/events``' CPU time.
    Its ``data`` is parsed JSON or a dict an interface builds, never part of a reference
    cycle, so it is left out of the garbage collector's work (``gc=False``).

    Attributes:
        source: the interface it came through (``eye microticks track stats api``).
        name: what happened (the Eye's ``name``, Microticks' ``action``, ...).
        session: the session key (up to 64 characters) or None; a new key opens a session.
        category: optional grouping (the Eye's ``category``).
        page: optional page (path or URL) it happened on.
        data: any JSON value (normally an object); None: no data.
        data_raw: the text as received when the wire carried ``data`` as a JSON string.
        client_time: the client's time exactly as sent, or None when it sent none (any JSON
            value: `check_event` keeps a number or anything else as its JSON text).
        client_at: `client_time` parsed (naive UTC), None when it did not parse.
        sequence: the client's sequence number (the tracker's ``order``), if any.
        ip, user_agent: who sent it.
    """

    source: str
    name: str
    session: str | None = None
    category: str | None = None
    page: str | None = None
    data: Any = None
    data_raw: str | None = None
    client_time: str | None = None
    client_at: datetime | None = None
    sequence: int | None = None
    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One row of ``events`` as read back, with its session's key (None without a session).

    `time_valid` is False when a client time was sent but did not parse.
    """

    id: int
    user_id: int
    source: str
    session_id: int | None
    session: str | None
    ingest_key_id: int | None
    category: str | None
    name: str
    page: str | None
    data: Any
    data_raw: str | None
    client_time: str | None
    client_at: datetime | None
    clock_skew_ms: int | None
    event_at: datetime
    sequence: int | None
    received_at: datetime
    ip: str | None
    user_agent: str | None

    @property
    def time_valid(self) -> bool:
        """False when the client sent a time that did not parse."""
        return self.clock_skew_ms is not None


@dataclass(frozen=True, slots=True)
class Recorded:
    """What `EventTable.insert_events` stored: how many events, and the session keys that
    these events opened (their first event ever)."""

    added: int
    new_sessions: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class NameCount:
    """One bar of the events histogram: `count` events called `name` in the bucket of
    ``event_at`` starting at `start`."""

    start: datetime
    name: str
    count: int


@dataclass(frozen=True, slots=True)
class PageCount:
    """One row of the top pages: of the events on `page`, how many (`events`), how many
    page views (`views`: named one of `VIEW_NAMES`), clicks (`clicks`: named `CLICK_NAME`),
    and the distinct sessions they belong to (`sessions`)."""

    page: str
    events: int
    views: int
    clicks: int
    sessions: int


#: The event names a page view has, per interface (tracker.js and the native API
#: ``page_view``, the Stats WebSocket ``visit``, the tracker demo ``pageview``/``load``).
VIEW_NAMES = ("page_view", "pageview", "visit", "load")
#: The event name of a click, whatever the interface.
CLICK_NAME = "click"
#: `EventTable.top_pages` orders: by this count descending, then events, then page.
PAGE_SORTS = ("events", "views", "clicks", "sessions")

#: ``EventQuery.sort`` values and the column each sorts on (ties by id, same direction).
EVENT_SORTS = {
    "id": "e.id",
    "time": "e.event_at",
    "received": "e.received_at",
    "name": "e.name",
    "category": "e.category",
    "session": "e.session_id",
}


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which of an owner's events to read, and one page of them.

    Filters (all optional, combined with AND): `source`; `session` (key) or `session_id`;
    `ingest_key_id`; `category`, `name`, `page`, `ip` (equal to); `since <= event_at <
    until`; `invalid_time`: only events whose client time did not parse or is more than
    `tolerance_ms` ahead of their receive time.
    Page: `sort` (a key of `EVENT_SORTS`), `descending`, `before_id`/`after_id` (the keyset
    cursor, meaningful with ``sort="id"``), `offset` (for interfaces that page by offset),
    `limit` (1..`MAX_PAGE`).
    """

    source: str | None = None
    session: str | None = None
    session_id: int | None = None
    ingest_key_id: int | None = None
    category: str | None = None
    name: str | None = None
    page: str | None = None
    ip: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    invalid_time: bool = False
    tolerance_ms: int = 0
    sort: str = "id"
    descending: bool = True
    before_id: int | None = None
    after_id: int | None = None
    offset: int = 0
    limit: int = 100

    def __post_init__(self) -> None:
        """Refuse a bad page (a programming error: the schemas check clients' values)."""
        check_page(self.limit, self.offset, self.sort, EVENT_SORTS)
