"""The ``ingest_keys`` table: a user's named keys that may only write events.

Written once for every backend (see `storage.dialect.Dialect`). A key's name is unique across
the server (so ``keys disable NAME`` needs no user); its owner is one user. Only a hash of
the key is stored, with a short lookup index (`bot_logging_server.tokens.key_lookup`);
making keys and checking them is `bot_logging_server.accounts` and `bot_logging_server.auth`,
this module only stores what it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot_logging_server.storage.base import DuplicateKey, StorageError, Table, utc_now

__all__ = ["IngestKey", "KeyExists", "KeyNotFound", "KeyTable"]


class KeyExists(StorageError):
    """An ingest key with that name already exists."""


class KeyNotFound(StorageError):
    """No ingest key has that name."""


@dataclass(frozen=True, slots=True)
class IngestKey:
    """A row of ``ingest_keys`` with its owner's name and state. `key_hash` is the stored
    hash, never the key.

    A key works only while it is `active`: neither it nor its owner is disabled.
    """

    id: int
    user_id: int
    username: str
    name: str
    key_hash: str
    disabled: bool
    owner_disabled: bool
    created_at: datetime

    @property
    def active(self) -> bool:
        """True when neither the key nor its owner is disabled."""
        return not self.disabled and not self.owner_disabled

    @classmethod
    def from_row(cls, row: Sequence, time: Callable[[Any], datetime]) -> IngestKey:
        """A row of `KeyTable`'s SELECT; `time` turns a stored time into a datetime."""
        return cls(row[0], row[1], row[2], row[3], row[4], bool(row[5]), bool(row[6]), time(row[7]))


_KEY_SELECT = (
    "SELECT k.id, k.user_id, u.username, k.name, k.key_hash, k.disabled, u.disabled, "
    "k.created_at FROM ingest_keys k JOIN users u ON u.id = k.user_id"
)


class KeyTable(Table):
    """The queries of ``ingest_keys``."""

    async def create_key(self, user_id: int, name: str, lookup: str, key_hash: str) -> None:
        """Insert a key for `user_id`; raise `KeyExists` when the name is taken."""
        stamp = self.db.dialect.encode_time(utc_now())
        try:
            async with self.db.transaction() as tx:
                await tx.execute(
                    "INSERT INTO ingest_keys (user_id, name, lookup, key_hash, disabled, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
                    (user_id, name, lookup, key_hash, stamp, stamp),
                )
        except DuplicateKey:
            raise KeyExists(name) from None

    async def keys_by_lookup(self, lookup: str) -> list[IngestKey]:
        """Every key stored under this lookup index (normally one, or none)."""
        # On the lookup connections: an ingest key check never queues behind the read API.
        rows = await self.db.lookup(f"{_KEY_SELECT} WHERE k.lookup = ?", (lookup,))
        return [IngestKey.from_row(row, self.db.dialect.decode_time) for row in rows]

    async def get_key(self, name: str) -> IngestKey | None:
        """The key with exactly this name, or None."""
        rows = await self.db.fetch(f"{_KEY_SELECT} WHERE k.name = ?", (name,))
        exact = [row for row in rows if row[3] == name]
        return IngestKey.from_row(exact[0], self.db.dialect.decode_time) if exact else None

    async def list_keys(self, user_id: int | None = None) -> list[IngestKey]:
        """Every key (of `user_id` only, when given), by owner name then key name."""
        where, args = ("WHERE k.user_id = ?", (user_id,)) if user_id is not None else ("", ())
        rows = await self.db.fetch(f"{_KEY_SELECT} {where} ORDER BY u.username, k.name", args)
        return [IngestKey.from_row(row, self.db.dialect.decode_time) for row in rows]

    async def set_key_disabled(self, name: str, disabled: bool) -> None:
        """Disable or enable a key; raise `KeyNotFound` for an unknown name."""
        async with self.db.transaction() as tx:
            done = await tx.execute(
                "UPDATE ingest_keys SET disabled = ?, updated_at = ? WHERE name = ?",
                (int(disabled), self.db.dialect.encode_time(utc_now()), name),
            )
        if done.rowcount == 0:
            raise KeyNotFound(name)

    async def remove_key(self, name: str) -> None:
        """Delete a key (the events it wrote stay, their owner's); `KeyNotFound` if unknown."""
        async with self.db.transaction() as tx:
            done = await tx.execute("DELETE FROM ingest_keys WHERE name = ?", (name,))
        if done.rowcount == 0:
            raise KeyNotFound(name)
