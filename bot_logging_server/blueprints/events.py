"""The native usage-events API under ``/api``: write a batch, read events, sessions, stats.

* ``POST /api/events``: ``{"events": [event, ...]}`` (up to 1000), written in one
  transaction through `bot_logging_server.events.record_events`; answers like
  ``/send_logs``: ``{"code": 200, "message": "Events added successfully", "added": N}``.
  Credentials: an ingest key (``X-Ingest-Key`` or ``?key=``; it may only write here), or a
  user's ``X-User`` + ``X-User-Token`` (or ``Authorization: Bearer``) as the read API takes.
  Order of checks: credentials (403), the body's envelope (400), the rate limit (429), the
  batch size (413), every field (400); nothing is written unless every check passed.
  Browsers may post from any origin (CORS, preflight included). An optional
  ``Idempotency-Key`` makes a retried batch stored once (`bot_logging_server.idempotency`).
* ``GET /api/events``: one keyset page of the user's events with ``next_cursor``; filters
  ``source session category name page since until invalid_time tolerance_ms``.
* ``GET /api/sessions``: one keyset page of the user's sessions.
* ``GET /api/events/stats?bucket=minute|hour|day``: counts per event name per bucket.
* ``GET /api/events/pages?sort=events|views|clicks|sessions&limit=``: the top pages.
* ``GET /api/sessions/stats?bucket=hour|day``: sessions started per bucket (per source).

Stats and top pages are counted in SQL (GROUP BY) over every matching row, never a sample.

Reading needs the user's token (never an ingest key) and only ever reads that user's rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from quart import Blueprint, Response, request

from bot_logging_server.auth import (
    get_authenticator,
    header_credentials,
    request_ingest_key,
    requires_header_user,
)
from bot_logging_server.cors import allow_cross_origin
from bot_logging_server.errors import BadRequest, Forbidden, PayloadTooLarge, json_response
from bot_logging_server.events import check_events, record_events, request_client
from bot_logging_server.idempotency import fingerprint, request_key, store_with_key
from bot_logging_server.json_body import read_json
from bot_logging_server.ratelimit import check_rate_limit
from bot_logging_server.records import event_json, iso, session_json
from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.events_api import (
    MAX_BATCH,
    load_event_query,
    load_events,
    load_page_query,
    load_session_query,
    load_session_stats_query,
    read_events,
)
from bot_logging_server.schemas.query import encode_cursor
from bot_logging_server.storage import Claim, IngestKey, User, get_storage, utc_now
from bot_logging_server.storage.base import MAX_STAT_ROWS

__all__ = [
    "bp",
    "event_stats",
    "list_events",
    "list_sessions",
    "post_events",
    "session_stats",
    "top_pages",
]

bp = Blueprint("events", __name__, url_prefix="/api")

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _or_400(parse: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """`parse`'s result; its `ValidationFailed` becomes a 400 with the same ``detail``."""
    try:
        return parse(*args, **kwargs)
    except ValidationFailed as exc:
        raise BadRequest(exc.detail) from None


async def _writer() -> User | IngestKey:
    """Who writes: the ingest key when one is sent, else the user of the token; else 403."""
    key = request_ingest_key()
    if key is not None:
        return await get_authenticator().authenticate_key(key)
    username, token = header_credentials()
    if not username:
        raise Forbidden()
    return await get_authenticator().authenticate(username, token)


@bp.post("/events")
async def post_events() -> Response:
    """Store one batch of events; answer ``{"code": 200, ..., "added": N}`` after the commit."""
    owner = await _writer()  # else 403
    user_id = owner.user_id if isinstance(owner, IngestKey) else owner.id
    raw = _or_400(read_events, await read_json())  # {"events": [...]}
    await check_rate_limit(user_id, len(raw))
    if len(raw) > MAX_BATCH:
        raise PayloadTooLarge(f"events: more than {MAX_BATCH} events")
    events = _or_400(load_events, raw, *request_client())  # every field
    key = request_key()  # the optional Idempotency-Key; malformed: 400
    # With a key: what is stored, fingerprinted once every event is known to be storable.
    stored_as = repr(_or_400(check_events, owner, events)) if key else ""
    received_at = utc_now()
    answer = {"code": 200, "message": "Events added successfully", "added": len(events)}

    async def store(claim: Claim | None) -> int:
        try:
            done = await record_events(owner, events, received_at=received_at, claim=claim)
        except ValidationFailed as exc:
            raise BadRequest(exc.detail) from None
        return done.added

    # One transaction; a key already committed answers its answer (422 if another batch's).
    print_ = fingerprint("api/events", stored_as)
    stored = await store_with_key(user_id, received_at, answer, key, print_, store)
    return json_response(stored.answer, headers=stored.headers)


# Idempotency-Key: the tracker (static/tracker.js) names each batch so that a retry is
# recognisable; a browser refuses to send a header the preflight did not allow.
allow_cross_origin(bp, "/events", ["POST"], ["Content-Type", "X-Ingest-Key", "Idempotency-Key"])


@bp.get("/events")
@requires_header_user
async def list_events(user: User) -> Response:
    """One page of the user's events (newest first, or oldest with ``order=asc``)."""
    query, _ = _or_400(load_event_query, "events", request.args)
    page = await get_storage().query_events(user.id, query)
    next_cursor = encode_cursor(page[-1].id) if len(page) == query.limit else None
    return json_response({"events": [event_json(e) for e in page], "next_cursor": next_cursor})


@bp.get("/sessions")
@requires_header_user
async def list_sessions(user: User) -> Response:
    """One page of the user's sessions (newest first, or oldest with ``order=asc``)."""
    query = _or_400(load_session_query, request.args)
    page = await get_storage().query_sessions(user.id, query)
    next_cursor = encode_cursor(page[-1].id) if len(page) == query.limit else None
    return json_response({"sessions": [session_json(s) for s in page], "next_cursor": next_cursor})


@bp.get("/events/stats")
@requires_header_user
async def event_stats(user: User) -> Response:
    """Counts per (bucket of ``event_at``, name), newest bucket first, computed in SQL."""
    query, bucket = _or_400(load_event_query, "stats", request.args)
    assert bucket is not None
    counts = await get_storage().event_stats(user.id, query, bucket)
    return json_response(
        {
            "bucket": bucket,
            "counts": [{"start": iso(c.start), "name": c.name, "count": c.count} for c in counts],
            "partial": len(counts) >= MAX_STAT_ROWS,
        }
    )


@bp.get("/events/pages")
@requires_header_user
async def top_pages(user: User) -> Response:
    """The pages with the most matching events (views, clicks, sessions), computed in SQL."""
    query, sort, limit = _or_400(load_page_query, request.args)
    rows = await get_storage().top_pages(user.id, query, sort, limit)
    return json_response(
        {
            "sort": sort,
            "pages": [
                {
                    "page": r.page,
                    "events": r.events,
                    "views": r.views,
                    "clicks": r.clicks,
                    "sessions": r.sessions,
                }
                for r in rows
            ],
        }
    )


@bp.get("/sessions/stats")
@requires_header_user
async def session_stats(user: User) -> Response:
    """Sessions started per bucket of ``started_at`` (per source), newest bucket first."""
    query, bucket, by_source = _or_400(load_session_stats_query, request.args)
    counts = await get_storage().session_stats(user.id, query, bucket, by_source)
    return json_response(
        {
            "bucket": bucket,
            "by_source": by_source,
            "counts": [
                {"start": iso(c.start), "source": c.source, "count": c.count} for c in counts
            ],
            "total": sum(c.count for c in counts),
            "partial": len(counts) >= MAX_STAT_ROWS,
        }
    )
