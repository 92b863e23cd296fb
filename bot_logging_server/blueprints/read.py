"""The read side under ``/api``: query, export, stats and live tail of a user's own logs.

Every endpoint authenticates with ``X-User`` plus ``X-User-Token`` (or ``Authorization:
Bearer <token>``) and only ever reads that user's records, whatever the filters. The filters
are the same everywhere (`schemas.query.LogQuerySchema`): ``level`` (minimum), ``since``/``until``
(on ``event_at``), ``q`` (the search language of `bot_logging_server.search`), ``p_name``,
``p_description``, ``pid``.

* ``GET /api/logs``: ``{"logs": [record, ...], "next_cursor": "..." | null}``, newest first
  by event time (``sort=event_at``, ties by id; ``sort=id``: by arrival; ``order=asc``: oldest
  first), paged by keyset (``cursor``), so new records never shift a page.
* ``GET /api/logs/export?format=ndjson|csv``: every matching record, in the same orders,
  streamed page by page.
  The body is complete only when its chunked encoding ends with the final empty chunk: an
  export that cannot go on (the database went away after the first page, the client stopped
  reading) ends without it.
* ``GET /api/stats?bucket=minute|hour|day``: counts per level per bucket of ``event_at``.
* ``GET /api/tail``: Server-Sent Events of new matching records in arrival order
  (`bot_logging_server.tail`).
* ``GET /api/suggest?field=process|logger&prefix=...``: ``{"values": [...]}``, up to 20
  distinct ``p_name`` / ``p_description`` values starting with the prefix, sorted.

Each user may have a few reads and tails in progress at once (`bot_logging_server.readlimit`);
one more is a 429, checked after authentication and the parameters.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator

from quart import Blueprint, Response, current_app, request

from bot_logging_server.auth import get_authenticator, header_credentials, requires_header_user
from bot_logging_server.errors import BadRequest, json_response
from bot_logging_server.http_guard import ResponseAborted
from bot_logging_server.readlimit import get_read_limiter, held_by
from bot_logging_server.records import (
    csv_header,
    csv_rows,
    iso,
    level_name,
    ndjson_lines,
    record_json,
)
from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.query import (
    SUGGEST_FIELDS,
    encode_log_cursor,
    load_query,
    parse_record_id,
)
from bot_logging_server.storage import (
    MAX_PAGE,
    LogQuery,
    Storage,
    StorageError,
    StoredLog,
    User,
    get_storage,
)
from bot_logging_server.storage.base import MAX_STAT_ROWS
from bot_logging_server.tail import Follower, event_stream

__all__ = ["bp", "export_logs", "list_logs", "stats", "suggest", "tail"]

bp = Blueprint("read", __name__, url_prefix="/api")
log = logging.getLogger(__name__)

_CONTENT_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def _query_args(kind: str) -> dict:
    try:
        return load_query(kind, request.args)
    except ValidationFailed as exc:
        raise BadRequest(exc.detail) from None


def _continued(query: LogQuery, last: StoredLog) -> LogQuery:
    """`query`'s next page: the records after `last` in `query`'s order."""
    side = "after_id" if query.oldest_first else "before_id"
    return dataclasses.replace(query, **{side: last.id}, cursor_event_at=last.event_at)


@bp.get("/logs")
@requires_header_user
async def list_logs(user: User) -> Response:
    """One page of the user's records in the order asked (newest event first by default),
    and the cursor of the next page."""
    query = LogQuery(**_query_args("logs"))
    async with get_read_limiter().take("reads", user.id):  # else 429
        page = await get_storage().query_logs(user.id, query)
    next_cursor = None
    if len(page) == query.limit:
        next_cursor = encode_log_cursor(query.sort, page[-1].id, page[-1].event_at)
    return json_response({"logs": [record_json(r) for r in page], "next_cursor": next_cursor})


def _page_size(cap: int | None, sent: int) -> int:
    return MAX_PAGE if cap is None else min(MAX_PAGE, cap - sent)


async def _export_body(
    storage: Storage,
    user_id: int,
    query: LogQuery,
    fmt: str,
    cap: int | None,
    first: list[StoredLog],
) -> AsyncIterator[bytes]:
    """Keyset pages of `MAX_PAGE` records, each encoded as soon as it is read.

    `first` is the first page, read before the response started (so that a database that
    is away then is a 503). A later page that cannot be read ends the body without its
    final chunk (`ResponseAborted`): the client sees the export is incomplete.
    """
    if fmt == "csv":
        yield csv_header()
    page, sent = first, 0
    while True:
        size = _page_size(cap, sent)
        if page:
            yield csv_rows(page) if fmt == "csv" else ndjson_lines(page)
            sent += len(page)
        if len(page) < size or (cap is not None and sent >= cap):
            return
        query = _continued(query, page[-1])
        try:
            page = await storage.query_logs(
                user_id, dataclasses.replace(query, limit=_page_size(cap, sent))
            )
        except StorageError as exc:
            log.warning("export cut after %d records: %s", sent, exc)
            raise ResponseAborted(f"export cut after {sent} records: {exc}") from None


@bp.get("/logs/export")
@requires_header_user
async def export_logs(user: User) -> Response:
    """Every matching record (in the listing's order) as NDJSON or CSV, streamed; never all
    in memory."""
    args = _query_args("export")
    fmt, cap = args.pop("format"), args.pop("limit")
    query, storage = LogQuery(**args), get_storage()
    slot = get_read_limiter().take("reads", user.id)  # else 429; held until the stream ends
    try:
        first = await storage.query_logs(
            user.id, dataclasses.replace(query, limit=_page_size(cap, 0))
        )
    except BaseException:
        slot.release()
        raise
    response = Response(
        held_by(_export_body(storage, user.id, query, fmt, cap, first), slot),
        content_type=_CONTENT_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="logs.{fmt}"'},
    )
    response.timeout = None  # as long as it takes: the size has no bound
    return response


@bp.get("/stats")
@requires_header_user
async def stats(user: User) -> Response:
    """Counts per (bucket of ``event_at``, level), newest bucket first, computed in SQL."""
    args = _query_args("stats")
    bucket = args.pop("bucket")
    async with get_read_limiter().take("reads", user.id):  # else 429
        counts = await get_storage().log_stats(user.id, LogQuery(**args), bucket)
    return json_response(
        {
            "bucket": bucket,
            "counts": [
                {
                    "start": iso(c.start),
                    "level": c.level,
                    "level_name": level_name(c.level),
                    "count": c.count,
                }
                for c in counts
            ],
            "partial": len(counts) >= MAX_STAT_ROWS,
        }
    )


@bp.get("/suggest")
@requires_header_user
async def suggest(user: User) -> Response:
    """Completions for the viewer's Process and Logger inputs: the user's own distinct
    values starting with ``prefix`` (any letter case), at most 20, sorted."""
    args = _query_args("suggest")
    async with get_read_limiter().take("reads", user.id):  # else 429
        values = await get_storage().suggest_values(
            user.id, SUGGEST_FIELDS[args["field"]], args["prefix"]
        )
    return json_response({"field": args["field"], "values": values})


def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID", "").strip()
    if not raw:
        return None
    try:
        return parse_record_id(raw)
    except ValueError:
        raise BadRequest("Last-Event-ID: must be a record id") from None


@bp.get("/tail")
@requires_header_user
async def tail(user: User) -> Response:
    """Server-Sent Events: each new matching record as ``id: N`` + ``data: {record}``.

    Starts after ``Last-Event-ID`` when the client sends it (a reconnection), else after the
    user's newest record at connection time.
    """
    query = LogQuery(**_query_args("tail"))
    storage = get_storage()
    after = _last_event_id()
    slot = get_read_limiter().take("tails", user.id)  # else 429; held until the stream ends
    try:
        if after is None:
            after = await storage.last_log_id(user.id)
    except BaseException:
        slot.release()
        raise
    username, token = header_credentials()
    stream = event_stream(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        Follower(storage, user.id, query, after),
        get_authenticator(),
        username,
        token,
    )
    body = held_by(stream, slot)
    response = Response(
        body,
        content_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.timeout = None
    return response
