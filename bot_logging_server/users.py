"""Creating and managing users: the one place that turns names and passwords into tokens.

Used by the ``users`` CLI and by ``POST /create_user``. The token is returned once, to be
shown once; only its hash is stored.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot_logging_server.schemas import USERNAME_RE, USERNAME_RULE
from bot_logging_server.storage import Storage, User
from bot_logging_server.tokens import hash_token, password_token, random_token

__all__ = ["NewToken", "check_username", "create_user", "rotate_token"]


@dataclass(frozen=True)
class NewToken:
    """A user and their token in clear: shown once, never stored."""

    user: User
    token: str


def check_username(username: str) -> str:
    """`username` when it follows the contract's rule; `ValueError` stating the rule if not."""
    if not USERNAME_RE.match(username):
        raise ValueError(f"user name must be {USERNAME_RULE}")
    return username


async def create_user(
    storage: Storage, username: str, password: str | None = None, tel_id: int | None = None
) -> NewToken:
    """Create a user; the token is ``md5(username + password)``, or random without a password.

    Raises `ValueError` for a bad name and `UserExists` when the name is taken.
    """
    check_username(username)
    token = password_token(username, password) if password else random_token()
    token_hash = await asyncio.to_thread(hash_token, token)
    user = await storage.create_user(username, token_hash, tel_id)
    return NewToken(user, token)


async def rotate_token(storage: Storage, username: str) -> str:
    """Give `username` a new random token and return it; `UserNotFound` for an unknown name."""
    token = random_token()
    await storage.set_token_hash(username, await asyncio.to_thread(hash_token, token))
    return token
