"""Creating and managing users and their ingest keys: the one place that turns names and
passwords into tokens, and makes keys.

Used by the ``users`` and ``keys`` CLI and by ``POST /create_user``. A token or key is
returned once, to be shown once; only its hash is stored.

A change made here to an existing user or key (disable, enable, token rotation, removal)
counts in `changes`, so that this process's cache of verified tokens and keys
(`bot_logging_server.auth`) drops at once what it holds; a change made by another process
takes up to ``auth_cache_seconds``.

An ingest key belongs to one user and may only write usage events (it is safe to embed in a
web page). Its name follows the user-name rule and is unique across the server, so the
commands that change a key take its name alone.

Names: a new name is stored in NFKC form and may not hold invisible format characters
(`bot_logging_server.schemas.accounts.new_name_problem`); with a password, the token is
``md5(stored name + password)``. A name given to find a user (`find_user`, and every change
here) is the stored name written exactly (users created before names were normalised keep
theirs), else its NFKC form.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot_logging_server.schemas.accounts import (
    USERNAME_RE,
    USERNAME_RULE,
    new_name_problem,
    normalise_username,
)
from bot_logging_server.storage import IngestKey, Storage, User, UserNotFound
from bot_logging_server.tokens import hash_token, key_lookup, password_token, random_token

__all__ = [
    "NewKey",
    "NewToken",
    "changes",
    "check_key_name",
    "check_new_user",
    "check_tel_id",
    "check_username",
    "create_key",
    "create_user",
    "find_user",
    "list_keys",
    "remove_key",
    "remove_user",
    "rotate_token",
    "set_disabled",
    "set_key_disabled",
    "set_tel_id",
    "stored_name",
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
    """`username` when some user could have it; `ValueError` stating the rule if not."""
    if not USERNAME_RE.match(username):
        raise ValueError(f"user name must be {USERNAME_RULE}")
    return username


def check_new_user(username: str, password: str | None, tel_id: int | None) -> str:
    """The name a new user gets (`username` in NFKC form).

    Raises `ValueError` naming the field when the name, password or id is unusable: a name
    that breaks the rule, or holds an invisible format character, once normalised.
    """
    check_username(username)
    name = normalise_username(username)
    problem = new_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    if password is not None:
        try:
            password.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("password must be valid Unicode text") from None
    check_tel_id(tel_id)
    return name


def check_tel_id(tel_id: int | None) -> None:
    """`ValueError` unless `tel_id` is None or fits the column (a signed 64-bit integer)."""
    if tel_id is not None and not -_BIGINT <= tel_id < _BIGINT:
        raise ValueError("tel_id is out of range")


async def find_user(storage: Storage, username: str, reading: bool = False) -> User | None:
    """The user `username` names: the one stored under exactly that name, else under its
    NFKC form; None when neither exists (or no user could have the name). `reading`: read
    on the read side's connections (`Storage.get_user`)."""
    if USERNAME_RE.match(username):
        user = await storage.get_user(username, reading)
        if user is not None:
            return user
    name = normalise_username(username)
    if name != username and USERNAME_RE.match(name):
        return await storage.get_user(name, reading)
    return None


async def stored_name(storage: Storage, username: str) -> str:
    """The stored name `username` refers to (see `find_user`); its NFKC form when no user
    has either, so that the change then fails with `UserNotFound` naming it."""
    user = await find_user(storage, username)
    return user.username if user is not None else normalise_username(username)


async def create_user(
    storage: Storage, username: str, password: str | None = None, tel_id: int | None = None
) -> NewToken:
    """Create a user; the token is ``md5(name + password)``, or random without a password.

    The name stored (``NewToken.user.username``) is `username` in NFKC form, and the token is
    made from it. An empty password is a password (``md5(name)``), as the original client
    computes. Raises `ValueError` for a bad name, password or tel_id and `UserExists` when the
    name (normalised) is taken.
    """
    name = check_new_user(username, password, tel_id)
    token = password_token(name, password) if password is not None else random_token()
    token_hash = await asyncio.to_thread(hash_token, token)
    user = await storage.create_user(name, token_hash, tel_id)
    return NewToken(user, token)


async def rotate_token(storage: Storage, username: str) -> str:
    """Give `username` a new random token and return it; `UserNotFound` for an unknown name."""
    token = random_token()
    token_hash = await asyncio.to_thread(hash_token, token)
    username = await stored_name(storage, username)
    try:
        await storage.set_token_hash(username, token_hash)
    finally:
        _changed()  # even when it failed: the change may have been committed
    return token


async def set_disabled(storage: Storage, username: str, disabled: bool) -> None:
    """Disable or enable `username`; `UserNotFound` for an unknown name."""
    username = await stored_name(storage, username)
    try:
        await storage.set_disabled(username, disabled)
    finally:
        _changed()


async def set_tel_id(storage: Storage, username: str, tel_id: int | None) -> None:
    """Set (None: clear) the Telegram chat id alerts of `username` go to.

    Raises `ValueError` for an id out of range and `UserNotFound` for an unknown name.
    """
    check_tel_id(tel_id)
    username = await stored_name(storage, username)
    try:
        await storage.set_tel_id(username, tel_id)
    finally:
        _changed()


async def remove_user(storage: Storage, username: str) -> int:
    """Delete `username` and all their logs; return the logs deleted.

    Raises `UserNotFound` for an unknown name.
    """
    username = await stored_name(storage, username)
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
