"""Creating and managing users and their ingest keys: the one place that turns names and
passwords into tokens, and makes keys.

Used by the ``users`` and ``keys`` CLI and by ``POST /create_user``. A token or key is
returned once, to be shown once; only its hash is stored.

An ingest key belongs to one user and may only write usage events (it is safe to embed in a
web page). Its name follows the user-name rule and is unique across the server, so the
commands that change a key take its name alone.

A change made here to an existing user or key (disable, enable, token rotation, removal)
counts in `changes`, so that this process's cache of verified tokens and keys
(`bot_logging_server.auth`) drops at once what it holds; a change made by another process
takes up to ``auth_cache_seconds``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot_logging_server.schemas.accounts import USERNAME_RE, USERNAME_RULE
from bot_logging_server.storage import IngestKey, Storage, User, UserNotFound
from bot_logging_server.tokens import hash_token, key_lookup, password_token, random_token

__all__ = [
    "NewKey",
    "NewToken",
    "changes",
    "check_key_name",
    "check_new_user",
    "check_username",
    "create_key",
    "list_keys",
    "remove_key",
    "remove_user",
    "rotate_token",
    "set_disabled",
    "set_key_disabled",
]


@dataclass(frozen=True)
class NewToken:
    """A user and their token in clear: shown once, never stored."""

    user: User
    token: str


@dataclass(frozen=True)
class NewKey:
    """An ingest key and its value in clear: shown once, never stored."""

    key: IngestKey
    value: str


#: Telegram chat ids are stored in a signed 64-bit column.
_BIGINT = 2**63
_changes = 0


def changes() -> int:
    """How many changes to existing users this process has made (or tried) so far."""
    return _changes


def _changed() -> None:
    global _changes
    _changes += 1


def check_username(username: str) -> str:
    """`username` when it follows the contract's rule; `ValueError` stating the rule if not."""
    if not USERNAME_RE.match(username):
        raise ValueError(f"user name must be {USERNAME_RULE}")
    return username


def check_new_user(username: str, password: str | None, tel_id: int | None) -> None:
    """Raise `ValueError` naming the field when a new user's name, password or id is unusable."""
    check_username(username)
    if password is not None:
        try:
            password.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("password must be valid Unicode text") from None
    if tel_id is not None and not -_BIGINT <= tel_id < _BIGINT:
        raise ValueError("tel_id is out of range")


async def create_user(
    storage: Storage, username: str, password: str | None = None, tel_id: int | None = None
) -> NewToken:
    """Create a user; the token is ``md5(username + password)``, or random without a password.

    An empty password is a password (``md5(username)``), as the original client computes.
    Raises `ValueError` for a bad name, password or tel_id and `UserExists` when the name is
    taken.
    """
    check_new_user(username, password, tel_id)
    token = password_token(username, password) if password is not None else random_token()
    token_hash = await asyncio.to_thread(hash_token, token)
    user = await storage.create_user(username, token_hash, tel_id)
    return NewToken(user, token)


async def rotate_token(storage: Storage, username: str) -> str:
    """Give `username` a new random token and return it; `UserNotFound` for an unknown name."""
    token = random_token()
    token_hash = await asyncio.to_thread(hash_token, token)
    try:
        await storage.set_token_hash(username, token_hash)
    finally:
        _changed()  # even when it failed: the change may have been committed
    return token


async def set_disabled(storage: Storage, username: str, disabled: bool) -> None:
    """Disable or enable `username`; `UserNotFound` for an unknown name."""
    try:
        await storage.set_disabled(username, disabled)
    finally:
        _changed()


async def remove_user(storage: Storage, username: str) -> int:
    """Delete `username` and all their logs; return the logs deleted.

    Raises `UserNotFound` for an unknown name.
    """
    try:
        return await storage.remove_user(username)
    finally:
        _changed()


def check_key_name(name: str) -> str:
    """`name` when it follows the rule of key names (that of user names); else `ValueError`."""
    if not USERNAME_RE.match(name):
        raise ValueError(f"key name must be {USERNAME_RULE}")
    return name


async def create_key(storage: Storage, username: str, name: str) -> NewKey:
    """Create ingest key `name` for `username`: 128 random bits as 32 hex characters.

    Raises `ValueError` for a bad name, `UserNotFound` for an unknown user and `KeyExists`
    when the name is taken (by any user).
    """
    check_username(username)
    check_key_name(name)
    user = await storage.get_user(username)
    if user is None:
        raise UserNotFound(username)
    value = random_token()
    key_hash = await asyncio.to_thread(hash_token, value)
    await storage.create_key(user.id, name, key_lookup(value), key_hash)
    key = await storage.get_key(name)
    assert key is not None
    return NewKey(key, value)


async def list_keys(storage: Storage, username: str | None = None) -> list[IngestKey]:
    """Every key (of `username` only, when given); `UserNotFound` for an unknown user."""
    if username is None:
        return await storage.list_keys()
    user = await storage.get_user(username)
    if user is None:
        raise UserNotFound(username)
    return await storage.list_keys(user.id)


async def set_key_disabled(storage: Storage, name: str, disabled: bool) -> None:
    """Disable or enable key `name`; `KeyNotFound` for an unknown name."""
    try:
        await storage.set_key_disabled(name, disabled)
    finally:
        _changed()


async def remove_key(storage: Storage, name: str) -> None:
    """Delete key `name` (the events it wrote stay); `KeyNotFound` for an unknown name."""
    try:
        await storage.remove_key(name)
    finally:
        _changed()
