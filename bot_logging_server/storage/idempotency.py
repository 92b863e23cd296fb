"""The ``idempotency_keys`` table: what a batch sent with an ``Idempotency-Key`` was answered.

A key is claimed in the very transaction that stores its batch's rows, so a key is on record
exactly when its rows are: a batch whose answer was lost after the commit is found here when
the client sends it again, and is answered again without being stored twice.

How a claim travels: `LogTable.insert_logs` puts the batch's `Claim` in front of its row
tuples in the group commit, and the group's transaction runs `claim_keys` first. For each
claim it inserts the key unless it exists (`Dialect.insert_unless_exists`: on MySQL a key
another transaction has inserted but not committed is waited for); a key on record and
younger than `KEY_LIFETIME` makes the claim a duplicate, and its rows are left out of the
insert while the other batches of the group are stored. An older key is taken over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from bot_logging_server.storage.base import Keep, Table, Transaction
from bot_logging_server.storage.dialect import Dialect

__all__ = [
    "KEY_LIFETIME",
    "Claim",
    "IdempotencyTable",
    "Remembered",
    "claim_key",
    "claim_keys",
]

#: How long a key is remembered: a repeat within this time is answered from the record.
KEY_LIFETIME = timedelta(hours=24)

_TABLE = "idempotency_keys"
_COLUMNS = ("user_id", "idempotency_key", "fingerprint", "answer", "created_at")
_KEYS = ("user_id", "idempotency_key")


@dataclass(frozen=True, slots=True)
class Remembered:
    """A key on record: the request's fingerprint, its answer (JSON text), when it was made."""

    fingerprint: str
    answer: str
    created_at: datetime


@dataclass(slots=True)
class _Outcome:
    duplicate: Remembered | None = None


class Claim(NamedTuple):
    """A batch's key, sent through the group commit in front of the batch's `rows` tuples.

    A tuple whose first item is the owner, like the row tuples it travels with. After the
    commit, `duplicate` is the key already on record when there was one (and then none of
    the batch's rows was stored), else None.
    """

    user_id: int
    key: str
    fingerprint: str
    #: The answer to remember (JSON text).
    answer: str
    created_at: datetime
    #: How many row tuples follow this claim (its batch's).
    rows: int
    outcome: _Outcome

    @classmethod
    def new(
        cls, user_id: int, key: str, fingerprint: str, answer: str, created_at: datetime
    ) -> Claim:
        """A claim not yet sent (its `rows` is set by `LogTable.insert_logs`)."""
        return cls(user_id, key, fingerprint, answer, created_at, 0, _Outcome())

    @property
    def duplicate(self) -> Remembered | None:
        """The key already on record, when the claim found one; else None."""
        return self.outcome.duplicate


async def claim_key(tx: Transaction, dialect: Dialect, claim: Claim) -> Remembered | None:
    """Record `claim`'s key in `tx` (the transaction that stores its batch); None when it
    was new (or older than `KEY_LIFETIME`, and now taken over), else the key on record.

    Any table family can call it in its own transaction: record the key first, and store
    the batch only when this answers None.
    """
    created = dialect.encode_time(claim.created_at)
    args = (claim.user_id, claim.key, claim.fingerprint, claim.answer, created)
    if (await tx.execute(dialect.insert_unless_exists(_TABLE, _COLUMNS, _KEYS), args)).rowcount:
        return None
    fingerprint, answer, at = (
        await tx.fetch(
            f"SELECT fingerprint, answer, created_at FROM {_TABLE} "
            f"WHERE user_id = ? AND idempotency_key = ?{dialect.lock_rows}",
            (claim.user_id, claim.key),
        )
    )[0]
    made = dialect.decode_time(at)
    if made <= claim.created_at - KEY_LIFETIME:  # expired, not yet purged: a new key
        await tx.execute(
            f"UPDATE {_TABLE} SET fingerprint = ?, answer = ?, created_at = ? "
            "WHERE user_id = ? AND idempotency_key = ?",
            (claim.fingerprint, claim.answer, created, claim.user_id, claim.key),
        )
        return None
    return Remembered(fingerprint, answer, made)


def claim_keys(dialect: Dialect) -> Keep:
    """The group transaction's first step: claim every `Claim` among the rows.

    Returns the function `Database.insert_many` runs in the transaction: it claims the keys
    (in key order, so two transactions never wait for each other's keys crosswise) and
    answers the rows to insert: every row tuple but the claims and the rows of duplicates.
    """

    async def keep(tx: Transaction, rows: list[tuple]) -> list[tuple]:
        claims = [row for row in rows if type(row) is Claim]
        if not claims:
            return rows
        for claim in sorted(claims, key=lambda c: (c.user_id, c.key)):
            claim.outcome.duplicate = await claim_key(tx, dialect, claim)
        kept: list[tuple] = []
        skip = 0
        for row in rows:
            if type(row) is Claim:
                skip = row.rows if row.outcome.duplicate is not None else 0
            elif skip:
                skip -= 1
            else:
                kept.append(row)
        return kept

    return keep


class IdempotencyTable(Table):
    """Reading and purging ``idempotency_keys`` (claims are written by `claim_keys`)."""

    async def remembered(self, user_id: int, key: str, since: datetime) -> Remembered | None:
        """The record of `user_id`'s `key` made after `since`, or None."""
        rows = await self.db.fetch(
            f"SELECT fingerprint, answer, created_at FROM {_TABLE} "
            "WHERE user_id = ? AND idempotency_key = ? AND created_at > ?",
            (user_id, key, self.db.dialect.encode_time(since)),
        )
        if not rows:
            return None
        fingerprint, answer, created_at = rows[0]
        return Remembered(fingerprint, answer, self.db.dialect.decode_time(created_at))

    async def purge_idempotency_keys(self, before: datetime, batch: int) -> int:
        """Delete up to about `batch` keys made before `before` (the oldest first); how many.

        Call it until it answers 0. Each call is one short transaction.
        """
        dialect = self.db.dialect
        # The batch's newest time: the oldest `batch` keys are those made up to it.
        edge = await self.db.fetch(
            f"SELECT created_at FROM {_TABLE} WHERE created_at < ? "
            "ORDER BY created_at LIMIT 1 OFFSET ?",
            (dialect.encode_time(before), batch - 1),
        )
        if edge:
            clause, upto = "created_at <= ?", dialect.decode_time(edge[0][0])
        else:
            clause, upto = "created_at < ?", before
        async with self.db.transaction() as tx:
            done = await tx.execute(
                f"DELETE FROM {_TABLE} WHERE {clause}", (dialect.encode_time(upto),)
            )
        return done.rowcount

    async def count_idempotency_keys(self, user_id: int | None = None) -> int:
        """How many keys are on record (for one user, or all)."""
        if user_id is None:
            rows = await self.db.fetch(f"SELECT COUNT(*) FROM {_TABLE}")
        else:
            rows = await self.db.fetch(
                f"SELECT COUNT(*) FROM {_TABLE} WHERE user_id = ?", (user_id,)
            )
        return int(rows[0][0])
