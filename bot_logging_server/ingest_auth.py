"""Who may write usage events through the wire interfaces: an ingest key found by its value
alone, the key behind a session, and the keyless user.

An ingest key arrives without a user name (Microticks' ``consumer_key``, The Eye's
``Authorization: Token <key>``, the tracker's ``?key=``); `find_ingest_key` finds it through
the app's `bot_logging_server.auth.Authenticator` (its lookup index, the slow hash, and the
same cache bound as tokens).

A user's own token cannot be found this way: tokens derived from a password must only ever
be checked against their slow hash, so reading interfaces name the user beside the token.
"""

from __future__ import annotations

from bot_logging_server.auth import get_authenticator
from bot_logging_server.config import get_config
from bot_logging_server.schemas.accounts import USERNAME_RE
from bot_logging_server.storage import IngestKey, Session, User, get_storage

__all__ = ["find_ingest_key", "keyless_user", "session_key_active"]


async def find_ingest_key(value: str | None) -> IngestKey | None:
    """The ingest key whose value is `value`, active or not; None when there is none.

    Callers that answer "unknown key" and "disabled key" differently (Microticks, The Eye)
    check ``IngestKey.active`` themselves. The key's state is at most ``auth_cache_seconds``
    old. A value that is not 32 hex characters (any case, surrounding spaces ignored) is
    never looked up.
    """
    return await get_authenticator().find_key(value)


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
