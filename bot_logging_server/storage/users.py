"""The ``users`` table: create, look up, list, disable, rotate and remove users.

Written once for every backend (see `storage.dialect.Dialect`). Creating and managing users with
tokens, and dropping this process's auth cache after a change, is `bot_logging_server.accounts`;
this module only stores what it is given.
"""

from __future__ import annotations

from bot_logging_server.storage.base import (
    DuplicateKey,
    Table,
    User,
    UserExists,
    UserNotFound,
    utc_now,
)
from bot_logging_server.storage.counts import forget_user

__all__ = ["UserTable"]

_USER_COLUMNS = "id, username, token_hash, tel_id, disabled, created_at"


class UserTable(Table):
    """The queries of ``users``."""

    async def create_user(self, username: str, token_hash: str, tel_id: int | None) -> User:
        """Insert a user; raise `UserExists` when the name is taken."""
        now = utc_now()
        stamp = self.db.dialect.encode_time(now)
        try:
            async with self.db.transaction() as tx:
                done = await tx.execute(
                    "INSERT INTO users (username, token_hash, tel_id, disabled, created_at, "
                    "updated_at) VALUES (?, ?, ?, 0, ?, ?)",
                    (username, token_hash, tel_id, stamp, stamp),
                )
        except DuplicateKey:
            raise UserExists(username) from None
        assert done.lastrowid is not None
        return User(done.lastrowid, username, token_hash, tel_id, False, now)

    async def get_user(self, username: str, reading: bool = False) -> User | None:
        """The user with exactly this name, or None.

        Read on the lookup connections, so that ingest's token check never queues behind the
        read API; with `reading` (a token check of the read API) on the read connections,
        which reads may fill but ingest never needs.
        """
        read = self.db.fetch if reading else self.db.lookup
        rows = await read(f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", (username,))
        # MySQL's collation pads with spaces ("alice " = "alice"): only the exact name.
        exact = [row for row in rows if row[1] == username]
        return User.from_row(exact[0], self.db.dialect.decode_time) if exact else None

    async def list_users(self) -> list[User]:
        """Every user, by name."""
        rows = await self.db.fetch(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username")
        return [User.from_row(row, self.db.dialect.decode_time) for row in rows]

    async def set_disabled(self, username: str, disabled: bool) -> None:
        """Disable or enable a user; raise `UserNotFound` for an unknown name."""
        await self._update_user("disabled", int(disabled), username)

    async def set_token_hash(self, username: str, token_hash: str) -> None:
        """Replace a user's token hash (rotation); raise `UserNotFound` for an unknown name."""
        await self._update_user("token_hash", token_hash, username)

    async def set_tel_id(self, username: str, tel_id: int | None) -> None:
        """Set (None: clear) a user's Telegram chat id; `UserNotFound` for an unknown name."""
        await self._update_user("tel_id", tel_id, username)

    async def _update_user(self, column: str, value: object, username: str) -> None:
        async with self.db.transaction() as tx:
            done = await tx.execute(
                f"UPDATE users SET {column} = ?, updated_at = ? WHERE username = ?",
                (value, self.db.dialect.encode_time(utc_now()), username),
            )
        if done.rowcount == 0:
            raise UserNotFound(username)

    async def remove_user(self, username: str) -> int:
        """Delete a user and all their data (logs and their counters, events, sessions,
        ingest keys, alert rules) in one transaction; return the logs deleted.

        Raises `UserNotFound` for an unknown name.
        """
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                f"SELECT id FROM users WHERE username = ?{self.db.dialect.lock_rows}",
                (username,),
            )
            if not rows:
                raise UserNotFound(username)
            deleted = await tx.execute("DELETE FROM user_logs WHERE user_id = ?", (rows[0][0],))
            await forget_user(tx, rows[0][0])
            await tx.execute("DELETE FROM retention WHERE user_id = ?", (rows[0][0],))
            await tx.execute(
                "DELETE FROM alert_windows WHERE rule_id IN "
                "(SELECT id FROM alert_rules WHERE user_id = ?)",
                (rows[0][0],),
            )
            for table in ("events", "sessions", "ingest_keys", "alert_rules"):
                await tx.execute(f"DELETE FROM {table} WHERE user_id = ?", (rows[0][0],))
            await tx.execute("DELETE FROM users WHERE id = ?", (rows[0][0],))
        return deleted.rowcount
