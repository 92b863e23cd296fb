"""Usage events: the common model, and the one path every interface writes them through.

Every wire interface (the native ``/api/events``, The Eye, Microticks, the tracker demo, the
WebSocket actions) only translates its wire format into `Event` objects and calls
`record_events` (or `record_event` when it must answer the new event's id); sessions are
opened by their first event, or explicitly with `start_session`, and closed with
`stop_session`. Reading goes straight to storage, always scoped to one owner::

    storage = get_storage()
    page = await storage.query_events(user.id, EventQuery(session="abc", sort="time"))
    sessions = await storage.query_sessions(user.id, SessionQuery(stopped=False))
    counts = await storage.event_stats(user.id, EventQuery(source="eye"), "hour")

The model (`bot_logging_server.storage.event_records`, `bot_logging_server.storage.sessions`):

* `Event`: source, name, session key, category, page, data (any JSON value; ``data_raw``
  keeps the text when the wire sent JSON as a string), client time as sent and parsed,
  sequence number, client IP and user agent. Its owner is given beside it.
* `Session`: owner, source, key, the ingest key that opened it, started/stopped times (the
  server's, and the client's as sent and parsed), attributes, IP, user agent, event count,
  last event.
* An owner (`Owner`) is one of our users: a `User` (authenticated by its token), an
  `IngestKey` (its owner, and the key is recorded on the events and the session it opens),
  or a `Session` (its owner and key: events are recorded into that session).

Every function validates before it writes (`bot_logging_server.schemas.events.check_batch`)
and raises `ValidationFailed` (``detail`` names the field: ``events[3].name: ...``) with
nothing written; the caller renders it in its interface's error shape. Storage failures
raise `StorageError` / `StorageUnavailable` (the app's handlers answer 500 / 503).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from quart import request

from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.events import (
    MAX_SESSION_CHARS,
    SOURCES,
    EventTime,
    check_batch,
    check_session,
    parse_event_time,
)
from bot_logging_server.schemas.values import clean_text
from bot_logging_server.storage import (
    Claim,
    Event,
    EventQuery,
    IngestKey,
    Recorded,
    Session,
    SessionExists,
    SessionQuery,
    StopOutcome,
    Storage,
    StoredEvent,
    User,
    get_storage,
    utc_now,
)

__all__ = [
    "SOURCES",
    "Event",
    "EventQuery",
    "EventTime",
    "Owner",
    "Recorded",
    "RecordedEvent",
    "Session",
    "SessionExists",
    "SessionQuery",
    "StopOutcome",
    "StoredEvent",
    "ValidationFailed",
    "check_events",
    "client_of",
    "get_session",
    "mint_session_key",
    "owner_ids",
    "parse_event_time",
    "record_event",
    "record_events",
    "request_client",
    "start_session",
    "stop_session",
]

#: Who events are recorded for: a user, an ingest key of a user, or a session of a user.
Owner = User | IngestKey | Session


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """What `record_event` stored: the event's id, and whether it opened its session (the
    first event the session ever got)."""

    id: int
    session_created: bool


def owner_ids(owner: Owner) -> tuple[int, int | None]:
    """(owner's user id, ingest key id or None)."""
    if isinstance(owner, User):
        return owner.id, None
    if isinstance(owner, IngestKey):
        return owner.user_id, owner.id
    if isinstance(owner, Session):
        return owner.user_id, owner.ingest_key_id
    raise TypeError(f"not an owner: {type(owner).__name__}")


def check_events(owner: Owner, events: Sequence[Event]) -> list[Event]:
    """Every event checked as `record_events` checks them (`ValidationFailed` naming
    ``events[i].field``); a `Session` owner's events go into that session."""
    if isinstance(owner, Session):
        replace = msgspec.structs.replace
        events = [replace(e, source=owner.source, session=owner.key) for e in events]
    return check_batch(events)


async def record_events(
    owner: Owner,
    events: Sequence[Event],
    *,
    received_at: datetime | None = None,
    storage: Storage | None = None,
    claim: Claim | None = None,
) -> Recorded:
    """Store `events` for `owner`, all or nothing; return after the commit.

    The one write path of every interface. Events share a transaction with concurrent
    requests (group commit); a session key not seen before for (owner, source) opens that
    session with this request's first event naming it: its key is then in
    ``Recorded.new_sessions`` (The Eye answers "added!" for those, "updated!" otherwise;
    however many requests post to one session at once, exactly one opens it).

    Args:
        owner: a `User`, `IngestKey` or `Session` (see `Owner`); it must be authenticated
            and active already: this function does not check credentials.
        events: the events, in order (ids ascend in this order). ``client_at`` is parsed
            from ``client_time`` when not given.
        received_at: the server's receive time (default: now, UTC).
        storage: default: the current app's.
        claim: the request's idempotency key, recorded in the same transaction; when it is
            on record already nothing is stored (``claim.duplicate`` tells, and
            ``Recorded.added`` is 0).

    Raises:
        ValidationFailed: an event breaks a rule (``detail`` names ``events[i].field``);
            nothing is stored.
        StorageError: the transaction failed; nothing of this call is stored.
    """
    user_id, key_id = owner_ids(owner)
    checked = check_events(owner, events)
    store = storage or get_storage()
    return await store.insert_events(user_id, checked, received_at or utc_now(), key_id, claim)


async def record_event(
    owner: Owner,
    event: Event,
    *,
    received_at: datetime | None = None,
    storage: Storage | None = None,
) -> RecordedEvent:
    """`record_events` for one event whose id the caller answers (Microticks' ``event_id``).

    Same rules and errors (the field is named ``events[0].field``); a little slower in a
    busy group than a batch, so interfaces that need no id use `record_events`.
    """
    user_id, key_id = owner_ids(owner)
    (checked,) = check_events(owner, [event])
    store = storage or get_storage()
    event_id, created = await store.insert_event(user_id, checked, received_at or utc_now(), key_id)
    return RecordedEvent(event_id, created)


def mint_session_key() -> str:
    """A new session key minted by the server: 32 random lower-case hex characters (128
    bits: usable as a credential, as Microticks' session token is; it is a uuid4's worth)."""
    return secrets.token_hex(16)


async def start_session(
    owner: Owner,
    source: str,
    *,
    key: str | None = None,
    client_time: Any = None,
    attributes: Any = None,
    ip: str | None = None,
    user_agent: str | None = None,
    started_at: datetime | None = None,
    storage: Storage | None = None,
) -> Session:
    """Open a session with no events yet and return it (its key is ``Session.key``).

    Args:
        owner: a `User` or `IngestKey` (the key is recorded as the session's opener).
        source: the interface (one of `SOURCES`).
        key: the session key (1-64 characters); default `mint_session_key()`.
        client_time: the client's start time as sent (parsed as `parse_event_time` does;
            kept raw when it does not parse).
        attributes: any JSON value (e.g. ``{"site": ..., "user_id": ...}``).
        ip, user_agent: who opened it (cut to 64 and 1024 characters).
        started_at: the server's time (default: now, UTC).
        storage: default: the current app's.

    Raises `ValidationFailed` (naming ``source``, ``key`` or ``attributes``) for a bad
    value, and `SessionExists` for a key the owner has already.
    """
    user_id, key_id = owner_ids(owner)
    start = check_session(
        source, key or mint_session_key(), attributes, client_time, ip, user_agent
    )
    return await (storage or get_storage()).start_session(
        user_id,
        start.source,
        start.key,
        started_at or utc_now(),
        client_time=start.client.raw,
        client_at=start.client.at,
        key_id=key_id,
        attributes=start.attributes,
        ip=start.ip,
        user_agent=start.user_agent,
    )


async def stop_session(
    source: str,
    key: str,
    *,
    client_time: Any = None,
    owner: Owner | None = None,
    stopped_at: datetime | None = None,
    storage: Storage | None = None,
) -> StopOutcome:
    """Stop session (source, key): ``"stopped"``, ``"not_found"`` or ``"already_stopped"``.

    With an `owner`, only that owner's session; without one, the session of whichever owner
    has that key (for server-minted keys that are credentials themselves; a key two owners
    use is ``"not_found"``). `client_time` is kept as sent and parsed when it parses.
    A session is stopped once; stopping again changes nothing.
    """
    if not _key_shaped(key):
        return "not_found"
    parsed = parse_event_time(client_time)
    return await (storage or get_storage()).stop_session(
        source,
        key,
        stopped_at or utc_now(),
        client_time=parsed.raw,
        client_at=parsed.at,
        user_id=None if owner is None else owner_ids(owner)[0],
    )


async def get_session(
    source: str, key: str, *, owner: Owner | None = None, storage: Storage | None = None
) -> Session | None:
    """The session (source, key) of `owner`, or of whichever owner has it when None (as
    `stop_session`); None when there is none."""
    if not _key_shaped(key):
        return None
    user_id = None if owner is None else owner_ids(owner)[0]
    return await (storage or get_storage()).find_session(source, key, user_id)


def _key_shaped(key: object) -> bool:
    return isinstance(key, str) and 1 <= len(key) <= MAX_SESSION_CHARS


def request_client() -> tuple[str | None, str | None]:
    """The current request's client: (IP, user agent) (see `client_of`)."""
    headers = request.headers
    return client_of(headers.get("X-Real-IP"), request.remote_addr, headers.get("User-Agent"))


def client_of(
    real_ip: str | None, peer: str | None, agent: str | None
) -> tuple[str | None, str | None]:
    """A request's client: (IP, user agent), from its ``X-Real-IP`` and ``User-Agent``
    headers (latin-1 text, as HTTP carries them; None when missing) and its peer's address.

    The IP is ``X-Real-IP`` when a proxy in front set it, else the peer's address; the user
    agent is the header's value (None when missing). Both as sent; `check_event` cuts them.
    """
    ip = (real_ip or "").strip() or peer or None
    if agent is not None:
        with contextlib.suppress(UnicodeError):
            agent = agent.encode("latin-1").decode("utf-8")
        agent = clean_text(agent)
    return ip, agent
