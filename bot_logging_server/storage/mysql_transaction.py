"""The statements of a MySQL transaction, sent in as few round trips as they allow.

A group commit's transaction is a few statements: the owners' check, the multi-row INSERT,
the counters' upserts, the commit. Sent one by one, each is a round trip to the database,
and on one machine every round trip costs both processes a socket write and a wake-up.
`MySQLTransaction.defer` keeps a statement whose answer nobody reads (an INSERT, an upsert)
and sends it in front of the transaction's next statement in one packet, or alone before the
``COMMIT`` (the write pool's connections allow several statements per query: aiomysql's
``CLIENT.MULTI_STATEMENTS``). The ``COMMIT`` always travels alone (`MySQLTransaction.commit`
says why). The database runs them in order and stops at the first that
fails; its error is raised by the call that sent it, still inside the transaction, which is
then rolled back whole. No packet holds more than about `_STATEMENT_BYTES` (statements that
would pass it go in a packet before).

`bot_logging_server.storage.mysql_insert` writes the multi-row INSERTs, each distinct value of
a column escaped once.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiomysql

from bot_logging_server.storage.base import Executed, Transaction
from bot_logging_server.storage.mysql_dialect import format_style
from bot_logging_server.storage.mysql_insert import insert_statements

__all__ = ["MySQLTransaction"]

#: Bytes per multi-row INSERT (aiomysql's own ``executemany`` limit), and per packet of
#: statements sent together; a larger group takes several.
_STATEMENT_BYTES = 1_024_000


class MySQLTransaction(Transaction):
    """Statements on the cursor of a write-pool connection, deferred ones sent with the next.

    `commit` must end it: it sends what is deferred, then the ``COMMIT``.
    """

    def __init__(self, cur: aiomysql.Cursor) -> None:
        """Run on `cur` (a write-pool connection, which takes several statements a query)."""
        self._cur = cur
        self._deferred: list[bytes] = []
        self._deferred_bytes = 0

    def _statement(self, sql: str, args: Sequence) -> bytes:
        """`sql` (``?`` placeholders) with `args` in it, escaped by the driver."""
        text = self._cur.mogrify(format_style(sql), tuple(args))
        return text.encode("utf-8", "surrogateescape")

    async def _send(self, statement: bytes) -> None:
        """Run the deferred statements, then `statement`, in one round trip (two when
        together they would pass `_STATEMENT_BYTES`); the cursor is left on `statement`'s
        result. The first failing statement raises, and none after it runs."""
        if self._deferred and self._deferred_bytes + len(statement) > _STATEMENT_BYTES:
            await self._flush()
        before, self._deferred, self._deferred_bytes = self._deferred, [], 0
        await self._cur.execute(b";".join([*before, statement]))
        for _ in before:
            await self._cur.nextset()

    async def _flush(self) -> None:
        """Send the deferred statements alone (the last one's result is dropped)."""
        last = self._deferred.pop()
        self._deferred_bytes -= len(last)
        await self._send(last)

    async def defer(self, sql: str, args: Sequence = ()) -> None:
        """Keep a statement whose answer nobody reads; it goes with the next round trip."""
        await self._defer_bytes(self._statement(sql, args))

    async def _defer_bytes(self, statement: bytes) -> None:
        if self._deferred and self._deferred_bytes + len(statement) + 1 > _STATEMENT_BYTES:
            await self._flush()
        self._deferred.append(statement)
        self._deferred_bytes += len(statement) + 1

    async def execute(self, sql: str, args: Sequence = ()) -> Executed:
        """Run one statement (after the deferred ones), with its row count and new id."""
        await self._send(self._statement(sql, args))
        return Executed(self._cur.rowcount, self._cur.lastrowid or None)

    async def fetch(self, sql: str, args: Sequence = ()) -> list[Sequence]:
        """Run one query (after the deferred ones) and return every row."""
        await self._send(self._statement(sql, args))
        return list(await self._cur.fetchall())

    async def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence]
    ) -> None:
        """Defer multi-row INSERTs of `rows` (`insert_statements`: each distinct value of a
        column escaped once, statements of at most about a megabyte)."""
        conn = self._cur.connection
        for statement in insert_statements(table, columns, rows, conn, _STATEMENT_BYTES):
            await self._defer_bytes(statement)

    async def commit(self) -> None:
        """Send the deferred statements, then ``COMMIT`` in a round trip of its own.

        Never in one packet: a caller that gives up waiting (the timeout, while a statement
        waits for a lock) closes the connection, and the database must then roll back. A
        ``COMMIT`` already in the database's hands would still run once the lock comes free,
        storing what the client was told had failed.
        """
        if self._deferred:
            await self._flush()
        await self._cur.execute(b"COMMIT")
