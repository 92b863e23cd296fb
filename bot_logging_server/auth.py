"""Who is asking: the (user, token) pair checked against ``users``, with a small cache.

`Authenticator.authenticate` answers the `User` or raises `Forbidden`, without ever saying
why: an unknown user, a wrong, missing or malformed token and a disabled user all look the
same, and an unknown user is checked against a dummy hash so it costs the same time as a
wrong token.

A verified pair is cached for ``auth_cache_seconds`` (at most 5 s, the contract's limit for
a change made by another process); after that the user's row is read again, and the slow
hash is recomputed only if the stored hash changed. A change made in this process through
`bot_logging_server.accounts` (disable, rotate, remove: `accounts.changes`) drops the cache at once.
Concurrent checks of the same pair share one computation, so a burst of requests after
start-up costs one scrypt, not one each.

Ingest keys (`Authenticator.find_key`, `Authenticator.authenticate_key`) are checked the same
way, under the same cache rules: a key arrives alone, so its row is found by its lookup index
(`bot_logging_server.tokens.key_lookup`), then its hash verified; an unknown key is checked
against the dummy hash. A key authenticates only for writing events: it is never a token, so
no read endpoint and no log endpoint accepts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from quart import current_app, request

from bot_logging_server import accounts
from bot_logging_server.errors import Forbidden, ServiceUnavailable
from bot_logging_server.observe import note
from bot_logging_server.schemas.accounts import USERNAME_RE
from bot_logging_server.schemas.values import clean_text
from bot_logging_server.storage import IngestKey, Storage, User
from bot_logging_server.tokens import DUMMY_HASH, is_token_shaped, key_lookup, verify_token

__all__ = [
    "Authenticator",
    "get_authenticator",
    "header_credentials",
    "header_token",
    "request_ingest_key",
    "requires_header_user",
]

log = logging.getLogger(__name__)
_EXTENSION = "bot_logging_server.auth"
_CACHE_ENTRIES = 4096
# Slow hashes run at most this many at a time (one per core here), and at most this many
# checks may wait for one: past that the check answers 503 (the client retries) instead of
# queueing unbounded work for anyone who sends well-formed wrong tokens.
_HASHING_AT_ONCE = 2
_HASHING_QUEUE = 64


@dataclass(frozen=True, slots=True)
class _Verified:
    user: User
    checked_at: float
    #: `accounts.changes` before the row was read.
    changes: int


@dataclass(frozen=True, slots=True)
class _VerifiedKey:
    key: IngestKey
    checked_at: float
    changes: int


class Authenticator:
    """Checks (user, token) pairs for one app; holds the cache of verified pairs."""

    def __init__(self, storage: Storage, cache_seconds: float) -> None:
        """Check against `storage`; trust a verified pair for `cache_seconds`."""
        self._storage = storage
        self._ttl = cache_seconds
        self._cache: OrderedDict[tuple[str, bytes], _Verified] = OrderedDict()
        self._pending: dict[tuple[str, bytes], asyncio.Task[User | None]] = {}
        self._hashing = asyncio.Semaphore(_HASHING_AT_ONCE)
        self._hash_waiting = 0
        self._keys: OrderedDict[bytes, _VerifiedKey] = OrderedDict()
        self._pending_keys: dict[bytes, asyncio.Task[IngestKey | None]] = {}

    async def authenticate(self, username: str, token: str | None, reading: bool = False) -> User:
        """The active user owning `token`; raise `Forbidden` otherwise (never saying why).

        `reading`: a check for the read API, whose database read (on a cache miss) uses the
        read side's connections, leaving ingest's to ingest (`Storage.get_user`).
        """
        if token is None:
            raise Forbidden()
        token = token.strip().lower()
        if not is_token_shaped(token):
            raise Forbidden()
        key = (username, hashlib.sha256(token.encode()).digest())
        entry = self._cache.get(key)
        if (
            entry is not None
            and time.monotonic() - entry.checked_at < self._ttl
            # A user changed in this process since: re-read at once.
            and entry.changes == accounts.changes()
        ):
            note(user=entry.user.username)  # the access log's user
            return entry.user
        task = self._pending.get(key)
        if task is None:
            task = asyncio.create_task(self._check(key, username, token, reading))
            self._pending[key] = task
            task.add_done_callback(lambda _t: self._pending.pop(key, None))
        # shield: one caller going away must not cancel the check the others wait for.
        user = await asyncio.shield(task)
        if user is None:
            # For the operator only (the client is never told why); never the token.
            log.debug("refused the token sent for user %r", username[:64])
            raise Forbidden()
        note(user=user.username)  # the access log's user
        return user

    async def _check(
        self, key: tuple[str, bytes], username: str, token: str, reading: bool
    ) -> User | None:
        version = accounts.changes()
        # The row's age counts from before it was read, so a change is never trusted longer
        # than the cache time.
        read_at = time.monotonic()
        # A name no user can have is not looked up (a huge one would not even fit a query),
        # but it is still hashed below, like any unknown user.
        found = USERNAME_RE.match(username)
        user = await self._storage.get_user(username, reading) if found else None
        entry = self._cache.pop(key, None)
        unchanged = entry is not None and user is not None and entry.user == user
        if unchanged and not user.disabled:
            # Same row as when the token was verified: no need to hash it again.
            return self._remember(key, user, version, read_at)
        stored = user.token_hash if user is not None else DUMMY_HASH
        if not await self._verify(token, stored) or user is None or user.disabled:
            return None
        return self._remember(key, user, version, read_at)

    async def find_key(self, key: str | None) -> IngestKey | None:
        """The ingest key whose value is `key` (active or not), or None when there is none.

        Interfaces that answer "unknown key" and "disabled key" differently use this; the
        others use `authenticate_key`. A key's state is at most ``auth_cache_seconds`` old
        (a change made through `bot_logging_server.accounts` in this process: none).
        """
        if key is None:
            return None
        key = key.strip().lower()
        if not is_token_shaped(key):
            return None
        digest = hashlib.sha256(b"key:" + key.encode()).digest()
        entry = self._keys.get(digest)
        if (
            entry is not None
            and time.monotonic() - entry.checked_at < self._ttl
            and entry.changes == accounts.changes()
        ):
            return entry.key
        task = self._pending_keys.get(digest)
        if task is None:
            task = asyncio.create_task(self._check_key(digest, key))
            self._pending_keys[digest] = task
            task.add_done_callback(lambda _t: self._pending_keys.pop(digest, None))
        return await asyncio.shield(task)

    async def authenticate_key(self, key: str | None) -> IngestKey:
        """The active ingest key `key` (neither it nor its owner disabled); raise
        `Forbidden` otherwise (never saying why)."""
        found = await self.find_key(key)
        if found is None or not found.active:
            raise Forbidden()
        return found

    async def _check_key(self, digest: bytes, key: str) -> IngestKey | None:
        version = accounts.changes()
        read_at = time.monotonic()
        candidates = await self._storage.keys_by_lookup(key_lookup(key))
        entry = self._keys.pop(digest, None)
        if entry is not None:
            for candidate in candidates:
                if candidate.id == entry.key.id and candidate.key_hash == entry.key.key_hash:
                    # The same stored hash verified before: its state is re-read, not hashed.
                    return self._remember_key(digest, candidate, version, read_at)
        if not candidates:
            await self._verify(key, DUMMY_HASH)
            return None
        for candidate in candidates:
            if await self._verify(key, candidate.key_hash):
                return self._remember_key(digest, candidate, version, read_at)
        return None

    def _remember_key(
        self, digest: bytes, key: IngestKey, version: int, read_at: float
    ) -> IngestKey:
        self._keys[digest] = _VerifiedKey(key, read_at, version)
        while len(self._keys) > _CACHE_ENTRIES:
            self._keys.popitem(last=False)
        return key

    async def _verify(self, token: str, stored: str) -> bool:
        if self._hash_waiting >= _HASHING_QUEUE:
            raise ServiceUnavailable("too many token checks at once")
        self._hash_waiting += 1
        try:
            async with self._hashing:
                return await asyncio.to_thread(verify_token, token, stored)
        finally:
            self._hash_waiting -= 1

    def _remember(self, key: tuple[str, bytes], user: User, version: int, read_at: float) -> User:
        self._cache[key] = _Verified(user, read_at, version)
        while len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return user


def init_app(app: Any, authenticator: Authenticator) -> None:
    """Attach `authenticator` to `app`."""
    app.extensions[_EXTENSION] = authenticator


def get_authenticator() -> Authenticator:
    """The current app's `Authenticator`."""
    return current_app.extensions[_EXTENSION]


Handler = Callable[..., Awaitable[Any]]


def header_token() -> str | None:
    """``X-User-Token``; None when missing, or when sent twice with different values."""
    values = set(request.headers.getlist("X-User-Token"))
    return values.pop() if len(values) == 1 else None


def request_ingest_key() -> str | None:
    """The ingest key of the current request: header ``X-Ingest-Key``, else the query
    parameter ``key`` (what a browser page can put in a URL); None when neither is sent."""
    values = set(request.headers.getlist("X-Ingest-Key"))
    if len(values) == 1:
        return values.pop()
    if values:
        return None  # sent twice, differently
    return request.args.get("key") or None


def header_credentials() -> tuple[str, str | None]:
    """The current request's (user name, token) from its headers.

    The name is ``X-User``; the token is ``X-User-Token``, or else the value of
    ``Authorization: Bearer <token>``. A name sent as UTF-8 bytes (which HTTP headers carry
    as latin-1) is decoded back. Missing parts are ``""`` / ``None``.
    """
    username = request.headers.get("X-User", "")
    with contextlib.suppress(UnicodeError):
        username = username.encode("latin-1").decode("utf-8")
    token = header_token()
    if token is None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            token = value.strip()
    return clean_text(username.strip()), token


def requires_header_user(handler: Handler) -> Handler:
    """Decorate a read handler: the user comes from `header_credentials`, else 403.

    The handler is called as ``handler(user, ...)``; it must only ever read `user`'s records.
    """

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        username, token = header_credentials()
        if not username:
            raise Forbidden()
        user = await get_authenticator().authenticate(username, token, reading=True)
        return await handler(user, *args, **kwargs)

    return wrapper
