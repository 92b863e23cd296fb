"""The ``retention`` table (per-user maximum age and rows) and the purge's small queries.

Written once for every backend (see `storage.dialect.Dialect`). A ``retention`` row overrides
the server's default for one user: a column NULL means "the default", 0 means "no limit".
The purge itself (which rows, in which order, how fast) is `bot_logging_server.retention`;
this module only answers its questions, each a short statement: a page of ids to delete,
then one small DELETE by id in its own transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot_logging_server.storage.base import Table, utc_now
from bot_logging_server.storage.counts import subtract_deleted

__all__ = ["RetentionRule", "RetentionTable"]

_PURGE_LOCK = "purge"


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """One user's own retention: ``None`` uses the server's default, 0 keeps everything."""

    user_id: int
    max_age_seconds: int | None
    max_rows: int | None


class RetentionTable(Table):
    """The queries of ``retention``, and the id-by-id deletes of the purge."""

    async def set_retention(
        self, user_id: int, max_age_seconds: int | None, max_rows: int | None
    ) -> None:
        """Store `user_id`'s own rule; both ``None``: the user follows the defaults again."""
        async with self.db.transaction() as tx:
            if max_age_seconds is None and max_rows is None:
                await tx.execute("DELETE FROM retention WHERE user_id = ?", (user_id,))
                return
            await tx.execute(
                self.db.dialect.upsert(
                    "retention",
                    ("user_id", "max_age_seconds", "max_rows", "updated_at"),
                    ("user_id",),
                ),
                (user_id, max_age_seconds, max_rows, self.db.dialect.encode_time(utc_now())),
            )

    async def retention_rules(self) -> dict[int, RetentionRule]:
        """Every user's own rule, by user id (users following the defaults have none)."""
        rows = await self.db.fetch("SELECT user_id, max_age_seconds, max_rows FROM retention")
        return {
            int(r[0]): RetentionRule(
                int(r[0]),
                None if r[1] is None else int(r[1]),
                None if r[2] is None else int(r[2]),
            )
            for r in rows
        }

    def purge_lock(self, wait: float = 0.0) -> contextlib.AbstractAsyncContextManager[bool]:
        """The lock one purging process holds (across workers and the CLI); see
        `Database.named_lock`."""
        return self.db.named_lock(_PURGE_LOCK, wait)

    async def ids_older_than(self, user_id: int, before: datetime, limit: int) -> list[int]:
        """Up to `limit` ids of `user_id`'s rows whose ``event_at`` is before `before`."""
        rows = await self.db.fetch(
            "SELECT id FROM user_logs WHERE user_id = ? AND event_at < ? LIMIT ?",
            (user_id, self.db.dialect.encode_time(before), limit),
        )
        return [int(r[0]) for r in rows]

    async def newest_id_beyond(self, user_id: int, keep: int) -> int | None:
        """The id of `user_id`'s newest row past its `keep` newest (every row with this id
        or a lower one is beyond the limit); None when the user has at most `keep` rows."""
        rows = await self.db.fetch(
            "SELECT id FROM user_logs WHERE user_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
            (user_id, keep),
        )
        return int(rows[0][0]) if rows else None

    async def ids_up_to(self, user_id: int, last_id: int, limit: int) -> list[int]:
        """Up to `limit` ids of `user_id`'s rows with an id of at most `last_id`, oldest first."""
        rows = await self.db.fetch(
            "SELECT id FROM user_logs WHERE user_id = ? AND id <= ? ORDER BY id LIMIT ?",
            (user_id, last_id, limit),
        )
        return [int(r[0]) for r in rows]

    async def count_purgeable(
        self, user_id: int, before: datetime | None, last_id: int | None
    ) -> int:
        """How many of `user_id`'s rows are older than `before` or have an id up to
        `last_id` (what a purge would delete; either part may be None)."""
        parts, args = [], [user_id]
        if before is not None:
            parts.append("event_at < ?")
            args.append(self.db.dialect.encode_time(before))
        if last_id is not None:
            parts.append("id <= ?")
            args.append(last_id)
        if not parts:
            return 0
        rows = await self.db.fetch(
            f"SELECT COUNT(*) FROM user_logs WHERE user_id = ? AND ({' OR '.join(parts)})",
            args,
        )
        return int(rows[0][0])

    async def delete_log_ids(self, user_id: int, ids: Sequence[int]) -> int:
        """Delete these rows of `user_id` in one short transaction, their counts with them
        (`storage.counts`); return how many went."""
        if not ids:
            return 0
        marks = ", ".join("?" * len(ids))
        async with self.db.transaction() as tx:
            await subtract_deleted(tx, self.db.dialect, user_id, f"id IN ({marks})", ids)
            done = await tx.execute(
                f"DELETE FROM user_logs WHERE user_id = ? AND id IN ({marks})",
                (user_id, *ids),
            )
        return done.rowcount
