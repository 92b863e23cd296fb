"""The ``/send_logs`` lane: a JSON batch from a token verified lately, stored below Quart.

It takes (see `bot_logging_server.lanes` for what a lane is):

* a ``POST`` to any spelling of ``/send_logs`` whose body is at most the offload size and
  the body limit, without ``Authorization`` (``logging.handlers.HTTPHandler``) or
  ``Idempotency-Key``, with one ``X-User-Token`` this process has verified before
  (`Authenticator.knows_token`: checked before the body is read, so a request the handler
  would screen out never has its body read here);
* whose (user, token) pair was verified within the cache time (`Authenticator.verified`);
* that passes every check of the handler: the envelope, the batch size, every record, then
  the rate limit, which counts nothing it refuses.

The batch is stored by `Storage.insert_logs`, as the handler
(`bot_logging_server.blueprints.ingest.send_logs`) stores a batch sent without an
``Idempotency-Key``, and the same 200 is sent after the commit; a storage failure is answered
as the app's error handlers answer it (`storage_error_response`).
"""

from __future__ import annotations

import logging

import orjson
from quart import Quart

from bot_logging_server.auth import Authenticator, get_authenticator
from bot_logging_server.blueprints.ingest import PATHS
from bot_logging_server.config import Config
from bot_logging_server.errors import APIError, error_body, json_response, storage_error_response
from bot_logging_server.lanes import Answer, Declined, Lane, Scope, header_values
from bot_logging_server.observe import note
from bot_logging_server.offload import OFFLOAD_BYTES
from bot_logging_server.ratelimit import RateLimiter, get_rate_limiter
from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.ingest import read_batch
from bot_logging_server.storage import Storage, StorageError, get_storage, utc_now
from bot_logging_server.tokens import normal_token

__all__ = ["SendLogsLane"]

log = logging.getLogger(__name__)

#: Request headers after which the request is the handler's alone.
_HANDLER_ONLY = frozenset({b"authorization", b"idempotency-key"})


class SendLogsLane(Lane):
    """``POST /send_logs``'s usual request (see the module's docstring)."""

    paths = frozenset(PATHS)

    def __init__(self, config: Config) -> None:
        """Check batches against `config`'s limits."""
        self._config = config
        self.most_bytes = min(OFFLOAD_BYTES, config.max_body_bytes)
        self._auth: Authenticator | None = None
        self._limiter: RateLimiter | None = None
        self._storage: Storage | None = None

    def start(self, app: Quart) -> None:
        """Check tokens with the app's `Authenticator`, count with its `RateLimiter`."""
        self._auth = get_authenticator()
        self._limiter = get_rate_limiter()
        self._storage = get_storage(app)

    def admit(self, scope: Scope) -> str | None:
        """The request's token, when the lane may take the request."""
        assert self._auth is not None
        headers = header_values(scope)
        tokens = set(headers.get(b"x-user-token", ()))
        if _HANDLER_ONLY & headers.keys() or len(tokens) != 1 or not self.takes_length(headers):
            return None
        token = normal_token(tokens.pop())
        if token is None or not self._auth.knows_token(token):
            return None  # the handler screens it first
        return token

    async def serve(self, scope: Scope, admitted: str, body: bytes) -> Answer:
        """Check and store the batch; `Declined` before the write when a check fails."""
        assert self._auth is not None and self._storage is not None
        config = self._config
        try:
            batch = read_batch(body, config.max_msg_chars)
            user = self._auth.verified(batch.username, admitted)
            if user is None or batch.records > config.max_records:
                raise Declined()
            rows = batch.rows()
            if self._limiter is not None:
                await self._limiter.check(user.id, batch.records)  # the last check
        except (ValidationFailed, APIError):
            raise Declined() from None
        note(user=user.username, route=PATHS[0])
        try:
            added = await self._storage.insert_logs(user.id, rows, utc_now())
        except StorageError as exc:
            return await Answer.of(storage_error_response(exc))
        except Exception as exc:  # as the app's handler of unexpected errors
            log.error("unhandled exception", exc_info=exc)
            return await Answer.of(json_response(error_body(500), 500))
        note(records=added)
        answer = {"code": 200, "message": "Logs added successfully", "added": added}
        return Answer.json(orjson.dumps(answer))
