"""The lanes of the usage-event writes: ``POST /api/events``, ``POST /eye/collector`` and
``POST /track``, each one's usual request stored below Quart (see `bot_logging_server.lanes`).

A lane takes a request whose writer is known without its handler:

* an ingest key verified within the cache time (`Authenticator.verified_key`): the
  ``X-Ingest-Key`` header or a query of exactly ``key=<32 hex digits>`` (``/api/events``),
  ``Authorization: Token <key>`` (The Eye), ``?key=<32 hex digits>`` (the tracker);
* or, for ``/api/events`` and The Eye, ``X-User`` with a token (``X-User-Token``, or The
  Eye's ``Authorization: Token``) whose pair was verified within the cache time
  (`Authenticator.verified`);

with no ``Idempotency-Key``, and whose body passes every check of the handler: the JSON, the
interface's own document rules (`bot_logging_server.blueprints.eye.eye_event`,
`bot_logging_server.blueprints.track.load_track`, the events API's envelope and
`load_events`), the common model's (`check_events`), then the rate limit (``/api/events``,
last: it counts nothing it refuses). The events are stored as `record_events` stores them
and the handler's answer is sent after the commit, with the blueprint's CORS header.
Anything else, every refusal included, is the handler's: its interface's own error shape.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Callable, Sequence
from urllib.parse import unquote_to_bytes

import orjson
from quart import Quart

from bot_logging_server.auth import Authenticator, get_authenticator
from bot_logging_server.blueprints.eye import collector_answer, eye_event
from bot_logging_server.blueprints.track import load_track, track_event
from bot_logging_server.errors import APIError, error_body, json_response, storage_error_response
from bot_logging_server.events import Event, Owner, check_events, client_of, owner_ids
from bot_logging_server.json_body import parse_json
from bot_logging_server.lanes import (
    Answer,
    Declined,
    Lane,
    Scope,
    header_values,
    one_header,
)
from bot_logging_server.observe import note
from bot_logging_server.ratelimit import RateLimiter, get_rate_limiter
from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.events_api import MAX_BATCH, load_events, read_events
from bot_logging_server.schemas.values import clean_text
from bot_logging_server.storage import (
    IngestKey,
    Recorded,
    Storage,
    StorageError,
    get_storage,
    utc_now,
)

__all__ = ["EVENT_LANES", "EventsAPILane", "EyeLane", "TrackLane"]

log = logging.getLogger(__name__)

_ANY_ORIGIN = (b"access-control-allow-origin", b"*")


def _query_key(scope: Scope) -> str | None:
    """The key of a query that is exactly ``key=<value>`` (no escapes); `Declined` for any
    other query (the handler parses it); None without a query."""
    query: bytes = scope.get("query_string", b"")
    if not query:
        return None
    name, _, value = query.partition(b"=")
    if name != b"key" or unquote_to_bytes(value) != value or b"&" in value:
        raise Declined()
    return value.decode("ascii", "replace")


def _header_user(headers: dict[bytes, list[str]]) -> str:
    """``X-User`` as the handlers read it (UTF-8 sent as latin-1 decoded back, trimmed)."""
    username = one_header(headers, b"x-user") or ""
    with contextlib.suppress(UnicodeError):
        username = username.encode("latin-1").decode("utf-8")
    return clean_text(username.strip())


class _EventsLane(Lane):
    """What the three lanes share: the app's parts, and storing a request's events."""

    route = ""

    def __init__(self, max_body_bytes: int) -> None:
        """Read bodies of up to `max_body_bytes` (the app's limit)."""
        self.most_bytes = max_body_bytes
        self._auth: Authenticator | None = None
        self._storage: Storage | None = None
        self._limiter: RateLimiter | None = None

    def start(self, app: Quart) -> None:
        """Check credentials with the app's `Authenticator`; store in its storage."""
        self._auth = get_authenticator()
        self._storage = get_storage(app)
        self._limiter = get_rate_limiter()

    def admit(self, scope: Scope) -> Owner | None:
        """The writer, when the lane may take the request (see the module's docstring)."""
        try:
            headers = header_values(scope)
            if b"idempotency-key" in headers or not self.takes_length(headers):
                return None
            return self._writer(scope, headers)
        except Declined:
            return None

    @abc.abstractmethod
    def _writer(self, scope: Scope, headers: dict[bytes, list[str]]) -> Owner | None:
        """The writer the request's credentials name, verified lately; None otherwise (the
        handler's); `Declined` for credentials only the handler reads."""

    def _user(self, headers: dict[bytes, list[str]], token: str | None) -> Owner | None:
        """The user of ``X-User`` and `token`, verified lately; None otherwise."""
        assert self._auth is not None
        username = _header_user(headers)
        return self._auth.verified(username, token) if username and token else None

    async def _storeone_header(
        self, owner: Owner, build: Callable[[], Event]
    ) -> tuple[Event, Recorded | Answer]:
        """The event `build` makes from the request, checked and stored for `owner`;
        `Declined` when it cannot be made or checked (nothing stored)."""
        try:
            event = build()
            checked = check_events(owner, [event])
        except (ValidationFailed, APIError):
            raise Declined() from None
        return event, await self._store(owner, checked)

    async def _store(self, owner: Owner, checked: Sequence[Event]) -> Recorded | Answer:
        """Store `checked` for `owner` as `record_events` does; the app's answer to a
        failure of the write."""
        assert self._storage is not None
        if not isinstance(owner, IngestKey):
            note(user=owner.username)
        note(route=self.route)
        user_id, key_id = owner_ids(owner)
        try:
            return await self._storage.insert_events(user_id, checked, utc_now(), key_id)
        except StorageError as exc:
            return await Answer.of(storage_error_response(exc))
        except Exception as exc:  # as the app's handler of unexpected errors
            log.error("unhandled exception", exc_info=exc)
            return await Answer.of(json_response(error_body(500), 500))


class EventsAPILane(_EventsLane):
    """``POST /api/events``: a batch of events in the common shape."""

    route = "/api/events"
    paths = frozenset({route})

    def _writer(self, scope: Scope, headers: dict[bytes, list[str]]) -> Owner | None:
        assert self._auth is not None
        key = one_header(headers, b"x-ingest-key")
        if key is None:
            key = _query_key(scope)
        if key is not None:
            return self._auth.verified_key(key)
        if b"authorization" in headers:
            return None  # Bearer: the handler's
        tokens = set(headers.get(b"x-user-token", ()))
        return self._user(headers, tokens.pop() if len(tokens) == 1 else None)

    async def serve(self, scope: Scope, admitted: Owner, body: bytes) -> Answer:
        """Check and store the batch; `Declined` before the write when a check fails."""
        try:
            raw = read_events(parse_json(body))
            if len(raw) > MAX_BATCH:
                raise Declined()
            checked = check_events(admitted, load_events(raw, *_client(scope)))
            if self._limiter is not None:
                await self._limiter.check(owner_ids(admitted)[0], len(raw))  # the last check
        except (ValidationFailed, APIError):
            raise Declined() from None
        stored = await self._store(admitted, checked)
        if isinstance(stored, Answer):
            return stored
        answer = {"code": 200, "message": "Events added successfully", "added": len(checked)}
        return Answer.json(orjson.dumps(answer), 200, _ANY_ORIGIN)


class EyeLane(_EventsLane):
    """``POST /eye/collector``: one event of The Eye's client."""

    route = "/eye/collector"
    paths = frozenset({route, route + "/"})

    def _writer(self, scope: Scope, headers: dict[bytes, list[str]]) -> Owner | None:
        assert self._auth is not None
        parts = (one_header(headers, b"authorization") or "").split()
        if len(parts) != 2 or parts[0].lower() != "token":
            return None  # missing, malformed or another scheme: the handler's
        if b"x-user" in headers:
            return self._user(headers, parts[1])
        return self._auth.verified_key(parts[1])

    async def serve(self, scope: Scope, admitted: Owner, body: bytes) -> Answer:
        """Check and store the event; `Declined` before the write when a check fails."""
        event, stored = await self._storeone_header(
            admitted, lambda: eye_event(parse_json(body), body, _client(scope))
        )
        if isinstance(stored, Answer):
            return stored
        return Answer.json(orjson.dumps(collector_answer(event, stored)), 200, _ANY_ORIGIN)


class TrackLane(_EventsLane):
    """``POST /track?key=...``: one event of the tracker demo's page."""

    route = "/track"
    paths = frozenset({route})

    def _writer(self, scope: Scope, headers: dict[bytes, list[str]]) -> Owner | None:
        assert self._auth is not None
        key = _query_key(scope)
        return None if key is None else self._auth.verified_key(key)

    async def serve(self, scope: Scope, admitted: Owner, body: bytes) -> Answer:
        """Check and store the event; `Declined` before the write when a check fails."""
        _, stored = await self._storeone_header(
            admitted, lambda: track_event(load_track(parse_json(body)), _client(scope))
        )
        return stored if isinstance(stored, Answer) else Answer.json(b"null", 200, _ANY_ORIGIN)


def _client(scope: Scope) -> tuple[str | None, str | None]:
    """The request's client (IP, user agent) as the handlers see it (`client_of`)."""
    headers = header_values(scope)
    return client_of(
        one_header(headers, b"x-real-ip"), _peer(scope), one_header(headers, b"user-agent")
    )


def _peer(scope: Scope) -> str:
    """The address of the request's peer, as Quart gives it (``remote_addr``)."""
    return (scope.get("client") or ["<local>"])[0]


#: The lanes of the usage-event writes, each built with the app's body limit.
EVENT_LANES = (EventsAPILane, EyeLane, TrackLane)
