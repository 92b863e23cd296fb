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

Failed checks are throttled (`bot_logging_server.throttle`): per client address and per user
name, past ``auth_failures_per_source`` / ``auth_failures_per_user`` a minute, a check that
would need a hash is refused with 429 before hashing (a pair verified before never is; a token
verified before is not refused for its address), and the hashes run in a queue where verified
pairs and addresses without recent failures go first. A 429 or 503 to an address with recent
failures is sent after a pause of one second.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from quart import current_app, has_request_context, request

from bot_logging_server import accounts
from bot_logging_server.errors import Forbidden, ServiceUnavailable, TooManyRequests
from bot_logging_server.observe import note
from bot_logging_server.schemas.accounts import USERNAME_RE, normalise_username
from bot_logging_server.schemas.values import clean_text
from bot_logging_server.storage import IngestKey, Storage, User
from bot_logging_server.throttle import FailureThrottle, HashQueue
from bot_logging_server.tokens import (
    DUMMY_HASH,
    is_token_shaped,
    key_lookup,
    normal_token,
    verify_token,
)

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
# checks may wait for one in each lane: past that the check answers 503 (the client retries)
# instead of queueing unbounded work for anyone who sends well-formed wrong tokens.
_HASHING_AT_ONCE = 2
_HASHING_QUEUE = 64
# An address without recent failures has this many checks at a time in the front lane; the
# rest of a burst from it waits in the other lane like anyone's.
_AHEAD_PER_SOURCE = 2
# Seconds a refusal (429, 503) to an address with recent failures waits before it is sent.
_REFUSAL_PAUSE = 1.0


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

    def __init__(
        self,
        storage: Storage,
        cache_seconds: float,
        failures_per_source: int = 0,
        failures_per_user: int = 0,
    ) -> None:
        """Check against `storage`; trust a verified pair for `cache_seconds`; lock out an
        address or a user name after that many failed checks a minute (0: never)."""
        self._storage = storage
        self._ttl = cache_seconds
        self._cache: OrderedDict[tuple[str, bytes], _Verified] = OrderedDict()
        self._pending: dict[tuple[str, bytes], asyncio.Task[User | None]] = {}
        self._throttle = FailureThrottle(failures_per_source, failures_per_user)
        self._hashes = HashQueue(_HASHING_AT_ONCE, _HASHING_QUEUE)
        self._checking: dict[str, int] = {}  # checks in progress per client address
        # SHA-256 of tokens verified in this process (for any user): exempt from the lockout
        # of their address, so honest clients behind a locked address keep working.
        self._good_tokens: OrderedDict[bytes, None] = OrderedDict()
        self._keys: OrderedDict[bytes, _VerifiedKey] = OrderedDict()
        self._pending_keys: dict[bytes, asyncio.Task[IngestKey | None]] = {}

    async def authenticate(self, username: str, token: str | None, reading: bool = False) -> User:
        """The active user owning `token`; raise `Forbidden` otherwise (never saying why).

        `reading`: a check for the read API, whose database read (on a cache miss) uses the
        read side's connections, leaving ingest's to ingest (`Storage.get_user`).

        Raises `TooManyRequests` when the client's address or the user name is locked out
        (`bot_logging_server.throttle`), and `ServiceUnavailable` when too many checks wait.
        The client's address is the current request's, when there is one.
        """
        token = _shaped(token)
        digest = hashlib.sha256(token.encode()).digest()
        key = (username, digest)
        entry = self._cache.get(key)
        if entry is not None and self._fresh(entry):
            note(user=entry.user.username)  # the access log's user
            return entry.user
        source = _client_address()
        # Failures count per name as users are found: look-alike spellings count as one.
        name = normalise_username(username) if USERNAME_RE.match(username) else None
        known = entry is not None  # verified before: never locked out, and checked first
        async with self._paused_refusals(source):
            if digest not in self._good_tokens:
                await self._throttle.check_source(source)  # else 429, before any hash
            if not known:
                await self._throttle.check_user(name)
            user = await self._shared_check(key, username, token, source, known, reading)
        if user is None:
            await self._throttle.failed(source, name)
            # For the operator only (the client is never told why); never the token.
            log.debug("refused the token sent for user %r", username[:64])
            raise Forbidden()
        note(user=user.username)  # the access log's user
        return user

    def _fresh(self, entry: _Verified | _VerifiedKey) -> bool:
        """Whether `entry` may be trusted without reading its row again."""
        return (
            time.monotonic() - entry.checked_at < self._ttl
            # A user changed in this process since: re-read at once.
            and entry.changes == accounts.changes()
        )

    def knows_token(self, token: str) -> bool:
        """Whether `token` (as `normal_token` gives it) was verified in this process, for
        any user: the requests `screen` always lets through. No database, no hash."""
        return hashlib.sha256(token.encode()).digest() in self._good_tokens

    def verified(self, username: str, token: str | None) -> User | None:
        """The user `authenticate` would answer at once: a pair verified within the cache
        time; else None (then only `authenticate` can tell). No database, no hash, no
        failure counted."""
        shaped = normal_token(token)
        if shaped is None:
            return None
        entry = self._cache.get((username, hashlib.sha256(shaped.encode()).digest()))
        return entry.user if entry is not None and self._fresh(entry) else None

    async def screen(self, token: str | None) -> None:
        """Raise `TooManyRequests` when the current request's address is locked out, unless
        `token` is one this process has verified before; `Forbidden` when `token` is missing
        or malformed. Cheap (no database, no hash): callers run it before reading a body."""
        digest = hashlib.sha256(_shaped(token).encode()).digest()
        if digest not in self._good_tokens:
            source = _client_address()
            async with self._paused_refusals(source):
                await self._throttle.check_source(source)

    @contextlib.asynccontextmanager
    async def _paused_refusals(self, source: str | None) -> AsyncIterator[None]:
        """A 429 or 503 raised inside, to an address with recent failures, leaves only after
        `_REFUSAL_PAUSE`: a flood from there cannot turn cheap refusals into a busy loop that
        takes the event loop from everyone else (its connections wait instead)."""
        try:
            yield
        except (TooManyRequests, ServiceUnavailable):
            if source is not None and not await self._throttle.is_clean(source):
                await asyncio.sleep(_REFUSAL_PAUSE)
            raise

    async def _shared_check(
        self,
        key: tuple[str, bytes],
        username: str,
        token: str,
        source: str | None,
        known: bool,
        reading: bool,
    ) -> User | None:
        """`_check`, shared by concurrent callers of the same pair."""
        if source is not None:
            self._checking[source] = self._checking.get(source, 0) + 1
        try:
            task = self._pending.get(key)
            if task is None:
                ahead = known or (
                    source is not None
                    and self._checking[source] <= _AHEAD_PER_SOURCE
                    and await self._throttle.is_clean(source)
                )
                task = asyncio.create_task(self._check(key, username, token, ahead, reading))
                self._pending[key] = task
                task.add_done_callback(lambda _t: self._pending.pop(key, None))
            # shield: one caller going away must not cancel the check the others wait for.
            return await asyncio.shield(task)
        finally:
            if source is not None:
                self._checking[source] -= 1
                if not self._checking[source]:
                    del self._checking[source]

    async def _check(
        self, key: tuple[str, bytes], username: str, token: str, ahead: bool, reading: bool
    ) -> User | None:
        version = accounts.changes()
        # The row's age counts from before it was read, so a change is never trusted longer
        # than the cache time.
        read_at = time.monotonic()
        # A name no user can have is not looked up (a huge one would not even fit a query),
        # but it is still hashed below, like any unknown user. Look-alike spellings of a
        # name (NFKC) find the same user.
        self._hashes.check_room(ahead)  # a full queue is a 503 before any database read
        user = await accounts.find_user(self._storage, username, reading)
        entry = self._cache.pop(key, None)
        unchanged = entry is not None and user is not None and entry.user == user
        if unchanged and not user.disabled:
            # Same row as when the token was verified: no need to hash it again.
            return self._remember(key, user, version, read_at)
        stored = user.token_hash if user is not None else DUMMY_HASH
        async with self._hashes.slot(ahead):
            verified = await asyncio.to_thread(verify_token, token, stored)
        if not verified or user is None or user.disabled:
            return None
        return self._remember(key, user, version, read_at)

    async def close(self) -> None:
        """Forget the failure counts (call once serving has stopped)."""
        await self._throttle.close()

    async def find_key(self, key: str | None) -> IngestKey | None:
        """The ingest key whose value is `key` (active or not), or None when there is none.

        Interfaces that answer "unknown key" and "disabled key" differently use this; the
        others use `authenticate_key`. A key's state is at most ``auth_cache_seconds`` old
        (a change made through `bot_logging_server.accounts` in this process: none).
        """
        shaped = _key_shaped(key)
        if shaped is None:
            return None
        key, digest = shaped
        entry = self._keys.get(digest)
        if entry is not None and self._fresh(entry):
            return entry.key
        task = self._pending_keys.get(digest)
        if task is None:
            task = asyncio.create_task(self._check_key(digest, key))
            self._pending_keys[digest] = task
            task.add_done_callback(lambda _t: self._pending_keys.pop(digest, None))
        return await asyncio.shield(task)

    def verified_key(self, key: str | None) -> IngestKey | None:
        """The active ingest key `authenticate_key` would answer at once: one verified within
        the cache time; else None (then only `find_key` can tell). No database, no hash."""
        shaped = _key_shaped(key)
        entry = None if shaped is None else self._keys.get(shaped[1])
        fresh = entry is not None and self._fresh(entry)
        return entry.key if fresh and entry.key.active else None

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
        """Check `token` against `stored` in the hashing queue (a key is no known pair: it
        waits in the ordinary lane); a full queue is a 503."""
        self._hashes.check_room(False)
        async with self._hashes.slot(False):
            return await asyncio.to_thread(verify_token, token, stored)

    def _remember(self, key: tuple[str, bytes], user: User, version: int, read_at: float) -> User:
        self._cache[key] = _Verified(user, read_at, version)
        while len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        self._good_tokens[key[1]] = None
        self._good_tokens.move_to_end(key[1])
        while len(self._good_tokens) > _CACHE_ENTRIES:
            self._good_tokens.popitem(last=False)
        return user


def _shaped(token: str | None) -> str:
    """`token` as compared (trimmed, lower case); `Forbidden` unless it is 32 hex digits."""
    shaped = normal_token(token)
    if shaped is None:
        raise Forbidden()
    return shaped


def _key_shaped(key: str | None) -> tuple[str, bytes] | None:
    """An ingest key as compared (trimmed, lower case) and its cache digest; None when it
    is missing or not 32 hex digits (it can never match)."""
    if key is None:
        return None
    key = key.strip().lower()
    if not is_token_shaped(key):
        return None
    return key, hashlib.sha256(b"key:" + key.encode()).digest()


def _client_address() -> str | None:
    """The current request's client address; None outside a request (a running stream)."""
    return request.remote_addr if has_request_context() else None


def init_app(app: Any, authenticator: Authenticator) -> None:
    """Attach `authenticator` to `app`; it is closed after serving."""
    app.extensions[_EXTENSION] = authenticator

    @app.after_serving
    async def _close_authenticator() -> None:
        await authenticator.close()


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
