"""Exactly-once batches: the optional ``Idempotency-Key`` header of the ingest endpoints.

A client that lost the answer to a batch (the connection dropped after the commit) cannot
know whether it was stored, and sends it again. With the same ``Idempotency-Key`` on both
requests the server stores it once: the key is recorded, with the answer, in the transaction
that stores the batch (`bot_logging_server.storage.idempotency`), and a repeat within
`KEY_LIFETIME` (24 h) of a key already committed for this user is answered that answer again,
with ``Idempotent-Replayed: true``, and writes nothing.

* A key is 1-255 visible ASCII characters (a uuid4 is a good one), optionally in double
  quotes; anything else is a 400, and so are two different values of the header.
* Keys are per user: two users may use the same key.
* The repeat must be the same request: its fingerprint (a SHA-256 of the endpoint and of
  what the batch stores) must match, else 422 ``UnprocessableEntity``: a key reused for
  another batch is a client's bug, and answering it the old answer would lose the batch.
* Two requests with the same key at once: one stores the batch, the other waits for that
  transaction and answers its answer (no 409). If the first one fails, the second stores.
* A batch that stores nothing (no records) records no key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from quart import request

from bot_logging_server.errors import APIError, BadRequest
from bot_logging_server.storage import KEY_LIFETIME, Claim, LogRow, get_storage

__all__ = [
    "HEADER",
    "REPLAYED_HEADER",
    "KeyReused",
    "Stored",
    "batch_fingerprint",
    "fingerprint",
    "request_key",
    "store_once",
    "store_with_key",
]

#: The request header carrying the key.
HEADER = "Idempotency-Key"
#: The answer header that marks a repeat answered from the record.
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY = re.compile(r"[\x21-\x7e]{1,255}")


class KeyReused(APIError):
    """422: the key was used before for a different request."""

    status = 422


@dataclass(frozen=True)
class Stored:
    """What `store_once` did: the answer to send, records stored, and whether it replayed."""

    answer: dict[str, Any]
    added: int
    replayed: bool

    @property
    def headers(self) -> dict[str, str]:
        """The answer's extra headers (``Idempotent-Replayed: true`` on a repeat)."""
        return {REPLAYED_HEADER: "true"} if self.replayed else {}


def request_key() -> str | None:
    """The current request's ``Idempotency-Key``, None without one; `BadRequest` if malformed."""
    values = set(request.headers.getlist(HEADER))
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"{HEADER}: sent twice with different values")
    key = values.pop().strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not _KEY.fullmatch(key):
        raise BadRequest(f"{HEADER}: must be 1-255 visible ASCII characters")
    return key


def fingerprint(endpoint: str, content: bytes | str) -> str:
    """The SHA-256 (hex) of what a request asks to store at `endpoint`."""
    data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
    return hashlib.sha256(endpoint.encode() + b"\0" + data).hexdigest()


def batch_fingerprint(endpoint: str, rows: list[LogRow]) -> str:
    """The fingerprint of a batch as it is stored, but for ``post_time`` (a client may set
    that anew on each attempt)."""
    content = orjson.dumps(
        [(r.pid, r.p_name, r.p_description, r.level, r.msg, r.msg_length, r.event_at) for r in rows]
    )
    return fingerprint(endpoint, content)


async def store_once(
    user_id: int,
    rows: list[LogRow],
    received_at: datetime,
    answer: dict[str, Any],
    key: str | None,
    fingerprint: str,
) -> Stored:
    """Store log `rows` unless `key` was committed for this user already; what to answer.

    `store_with_key` with the log table's insert as the store.
    """

    async def insert(claim: Claim | None) -> int:
        return await get_storage().insert_logs(user_id, rows, received_at, claim)

    return await store_with_key(user_id, received_at, answer, key, fingerprint, insert)


async def store_with_key(
    user_id: int,
    received_at: datetime,
    answer: dict[str, Any],
    key: str | None,
    fingerprint: str,
    store: Callable[[Claim | None], Awaitable[int]],
) -> Stored:
    """Run `store` unless `key` was committed for this user already; what to answer.

    `store` writes the request's batch in one transaction, recording the `Claim` it is
    given (None without a key) in that transaction, and answers how many items it stored.
    Without a key it runs and `answer` is the answer. With one, a key on record (younger
    than `KEY_LIFETIME`) answers its own answer and stores nothing, or raises `KeyReused`
    when its fingerprint is not `fingerprint`; a new key is recorded with `answer` in the
    transaction that stores the batch.
    """
    if key is None:
        return Stored(answer, await store(None), False)
    seen = await get_storage().remembered(user_id, key, received_at - KEY_LIFETIME)
    if seen is None:
        claim = Claim.new(user_id, key, fingerprint, orjson.dumps(answer).decode(), received_at)
        added = await store(claim)
        seen = claim.duplicate
        if seen is None:
            return Stored(answer, added, False)
    if seen.fingerprint != fingerprint:
        raise KeyReused(f"{HEADER}: already used for another request")
    return Stored(orjson.loads(seen.answer), 0, True)
