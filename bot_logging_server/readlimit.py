"""Fair sharing of the read side: how many reads and live tails one user may have at once.

A read (a page of ``/api/logs``, ``/api/stats``, an export stream) may cost the database
seconds, and a tail polls it twice a second for as long as it stays open. One user with many
of them at once could take every read connection. Each user may therefore have at most
``--max-reads-per-user`` reads and ``--max-tails-per-user`` tails in progress per process;
one more is answered 429 ``TooManyRequests`` with ``Retry-After: 1``, before any database
work. An export or a tail keeps its slot until its stream ends.

Ingest is not counted here: it has connections of its own (`storage.base.Database`).
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from typing import Literal

from quart import Quart, current_app

from bot_logging_server.config import Config
from bot_logging_server.errors import TooManyRequests

__all__ = ["ReadLimiter", "Slot", "get_read_limiter", "held_by", "init_app"]

_EXTENSION = "bot_logging_server.readlimit"
Kind = Literal["reads", "tails"]
_REFUSED = {
    "reads": "too many reads at once for this user (at most {})",
    "tails": "too many live tails open for this user (at most {})",
}


class Slot:
    """One read or tail in progress; `release` (idempotent) gives it back."""

    def __init__(self, limiter: ReadLimiter, key: tuple[Kind, int]) -> None:
        """Count `key` in `limiter` until released."""
        self._limiter: ReadLimiter | None = limiter
        self._key = key

    def release(self) -> None:
        """Give the slot back (a second call does nothing)."""
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._give_back(self._key)

    async def __aenter__(self) -> Slot:
        """Hold the slot for the block."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Give the slot back."""
        self.release()


class ReadLimiter:
    """Counts each user's reads and tails in progress, in this process."""

    def __init__(self, reads_per_user: int, tails_per_user: int) -> None:
        """Allow each user `reads_per_user` reads and `tails_per_user` tails at once."""
        self._most: dict[Kind, int] = {"reads": reads_per_user, "tails": tails_per_user}
        self._held: dict[tuple[Kind, int], int] = {}

    def take(self, kind: Kind, user_id: int) -> Slot:
        """A slot of `kind` for `user_id`; `TooManyRequests` (429) when the user has all.

        Release it when the work ends (``async with`` does); a stream passes it to
        `held_by`.
        """
        key = (kind, user_id)
        held = self._held.get(key, 0)
        if held >= self._most[kind]:
            raise TooManyRequests(_REFUSED[kind].format(self._most[kind]), retry_after=1)
        self._held[key] = held + 1
        return Slot(self, key)

    def in_use(self, kind: Kind, user_id: int) -> int:
        """How many slots of `kind` `user_id` holds now."""
        return self._held.get((kind, user_id), 0)

    def _give_back(self, key: tuple[Kind, int]) -> None:
        left = self._held.get(key, 0) - 1
        if left > 0:
            self._held[key] = left
        else:
            self._held.pop(key, None)


def held_by(body: AsyncIterator[bytes], slot: Slot) -> AsyncIterator[bytes]:
    """`body`, holding `slot` until the stream ends, fails, or is dropped unstarted."""

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for chunk in body:
                yield chunk
        finally:
            slot.release()

    wrapped = stream()
    # A response that is never sent (the client left first) never starts its body, and an
    # unstarted generator runs no `finally`: give the slot back when it is collected.
    weakref.finalize(wrapped, slot.release)
    return wrapped


def init_app(app: Quart, config: Config) -> None:
    """Give `app` its `ReadLimiter`."""
    app.extensions[_EXTENSION] = ReadLimiter(config.max_reads_per_user, config.max_tails_per_user)


def get_read_limiter(app: Quart | None = None) -> ReadLimiter:
    """The `ReadLimiter` of `app` (default: the current app)."""
    return (app or current_app).extensions[_EXTENSION]
