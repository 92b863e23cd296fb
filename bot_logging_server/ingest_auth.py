"""Who may write usage events through the wire interfaces: an ingest key found by its value
alone, the key behind a session, and the keyless user.

An ingest key arrives without a user name (Microticks' ``consumer_key``, The Eye's
``Authorization: Token <key>``, the tracker's ``?key=``), so `find_ingest_key` finds its row
by the key's lookup index (`bot_logging_server.tokens.key_lookup`: 64 bits of its SHA-256,
enough to find a 128-bit random key, never to rebuild one) and then checks the slow hash.
A found key is trusted for ``auth_cache_seconds`` (the bound for a change made by another
process); a change made in this process through `bot_logging_server.accounts` drops the
cache at once. Concurrent checks of the same key share one hash computation.

A user's own token cannot be found this way: tokens derived from a password must only ever
be checked against their slow hash, so reading interfaces name the user beside the token.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from quart import current_app

from bot_logging_server import accounts
from bot_logging_server.config import get_config
from bot_logging_server.schemas.accounts import USERNAME_RE
from bot_logging_server.storage import IngestKey, Session, User, get_storage
from bot_logging_server.tokens import is_token_shaped, key_lookup, verify_token

__all__ = ["find_ingest_key", "keyless_user", "session_key_active"]

_EXTENSION = "bot_logging_server.ingest_auth"
_CACHE_ENTRIES = 4096
# Slow hashes at once (one per core here): a burst of new keys queues, it does not pile up
# threads.
_HASHING_AT_ONCE = 2


@dataclass
class _KeyCache:
    """One app's verified keys: SHA-256 of the key -> (key row, when its row was read,
    `accounts.changes` then); and the checks in flight."""

    entries: OrderedDict[bytes, tuple[IngestKey, float, int]] = field(default_factory=OrderedDict)
    pending: dict[bytes, asyncio.Task[IngestKey | None]] = field(default_factory=dict)
    hashing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(_HASHING_AT_ONCE))


def _cache() -> _KeyCache:
    cache = current_app.extensions.get(_EXTENSION)
    if cache is None:
        cache = current_app.extensions[_EXTENSION] = _KeyCache()
    return cache


async def find_ingest_key(value: str | None) -> IngestKey | None:
    """The ingest key whose value is `value`, active or not; None when there is none.

    Callers that answer "unknown key" and "disabled key" differently (Microticks, The Eye)
    check ``IngestKey.active`` themselves. The key's state is at most ``auth_cache_seconds``
    old. A value that is not 32 hex characters (any case, surrounding spaces ignored) is
    never looked up.
    """
    if value is None:
        return None
    value = value.strip().lower()
    if not is_token_shaped(value):
        return None
    cache = _cache()
    digest = hashlib.sha256(b"ingest-key:" + value.encode()).digest()
    entry = cache.entries.get(digest)
    if (
        entry is not None
        and time.monotonic() - entry[1] < get_config().auth_cache_seconds
        and entry[2] == accounts.changes()
    ):
        return entry[0]
    task = cache.pending.get(digest)
    if task is None:
        task = asyncio.create_task(_check(cache, digest, value))
        cache.pending[digest] = task
        task.add_done_callback(lambda _t: cache.pending.pop(digest, None))
    # shield: one caller going away must not cancel the check the others wait for.
    return await asyncio.shield(task)


async def _check(cache: _KeyCache, digest: bytes, value: str) -> IngestKey | None:
    version = accounts.changes()
    read_at = time.monotonic()  # the row's age counts from before it was read
    candidates = await get_storage().keys_by_lookup(key_lookup(value))
    previous = cache.entries.pop(digest, None)
    for candidate in candidates:
        verified = previous is not None and (candidate.id, candidate.key_hash) == (
            previous[0].id,
            previous[0].key_hash,
        )
        if not verified:
            async with cache.hashing:
                verified = await asyncio.to_thread(verify_token, value, candidate.key_hash)
        if verified:
            cache.entries[digest] = (candidate, read_at, version)
            while len(cache.entries) > _CACHE_ENTRIES:
                cache.entries.popitem(last=False)
            return candidate
    return None


async def session_key_active(session: Session) -> bool:
    """True unless `session` was opened with an ingest key that is now disabled or removed,
    or whose owner is disabled (a session opened with a user's token: always True)."""
    if session.ingest_key_id is None:
        return True
    keys = await get_storage().list_keys(session.user_id)
    return any(key.id == session.ingest_key_id and key.active for key in keys)


async def keyless_user() -> User | None:
    """The active user named by ``--keyless-events-user``, or None (option unset, or no
    such active user)."""
    name = get_config().keyless_events_user
    if not name or not USERNAME_RE.match(name):
        return None
    user = await get_storage().get_user(name)
    return user if user is not None and not user.disabled else None
