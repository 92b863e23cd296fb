"""MySQL / MariaDB schema at start-up: create the database when missing, migrate, check.

`ensure_database` creates the database (utf8mb4) when it is missing and the account may.
`migrate` applies the steps of `storage.migrations` newer than ``schema_version`` while
holding a named lock (``GET_LOCK``), so several processes can start at once, then checks the
tables with `check_columns`.

On a Galera cluster the named lock holds on one node only: servers that chose different
nodes can migrate at the same moment. DDL is replicated in total order (TOI), each
statement running whole on every node, one after the other; so a step's statement that
finds its work already done (`ALREADY_APPLIED`: table, column or index already there, index
already dropped) is skipped, and the step's ``schema_version`` row is written unless it is
there. A statement of this node's pass can also be aborted by one replicated from another
node, and its ``schema_version`` row can fail certification against the same row written
through another node (MySQL errors 1213, 1317): the pass is then run again from the
recorded version.
"""

from __future__ import annotations

import asyncio
import logging

import aiomysql
import pymysql

from bot_logging_server.storage.base import StorageError, StorageUnavailable
from bot_logging_server.storage.migrations import SCHEMA_VERSION_TABLE, check_columns, for_backend

__all__ = ["ALREADY_APPLIED", "MIGRATIONS", "RETRY_PASS", "ensure_database", "migrate"]

MIGRATIONS = for_backend("mysql")
#: A schema statement another server ran a moment earlier: table exists, duplicate column,
#: duplicate index name, no such index to drop.
ALREADY_APPLIED = frozenset({1050, 1060, 1061, 1091})
#: A statement aborted by another node's schema statement replicated at the same moment:
#: deadlock / certification conflict, query interrupted. The pass is run again.
RETRY_PASS = frozenset({1213, 1317})
_PASSES = 5
_LOCK = "bot_logging_server.migrate"
log = logging.getLogger(__name__)


def _code(exc: BaseException) -> int | None:
    """The MySQL error number of a driver exception, else None."""
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


async def ensure_database(connect_args: dict[str, object], name: str) -> None:
    """Create database `name` (utf8mb4) when it is missing; `StorageError` when not allowed.

    `name` must already be checked to be a plain identifier (it cannot be a parameter).
    """
    conn = await aiomysql.connect(**connect_args)
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,)
            )
            if await cur.fetchone():
                return
            # Another server may create it at the same moment (through another node of a
            # cluster): then IF NOT EXISTS is a note, which the driver would raise as a
            # Python warning.
            await cur.execute("SET SESSION sql_notes = 0")
            try:
                await cur.execute(
                    f"CREATE DATABASE IF NOT EXISTS `{name}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
            except pymysql.err.OperationalError as exc:
                raise StorageError(
                    f"database {name!r} does not exist and this account may not "
                    f"create it (MySQL error {exc.args[0]})"
                ) from exc
    finally:
        conn.close()


async def migrate(conn: aiomysql.Connection) -> None:
    """Apply the pending steps under the named lock, then check the tables.

    A pass interrupted by another node's schema statement (`RETRY_PASS`) is run again from
    the version then recorded, a few times. Raises `StorageUnavailable` when another process
    holds the lock for over 60 s, and `StorageError` (from `check_columns`) when the tables
    are not this server's.
    """
    async with conn.cursor() as cur:
        # DDL is not transactional in MySQL: the lock keeps processes from racing.
        await cur.execute("SELECT GET_LOCK(%s, 60)", (_LOCK,))
        (got,) = await cur.fetchone()
        if got != 1:
            raise StorageUnavailable("timed out waiting for another process to migrate")
        try:
            # "IF NOT EXISTS" on an existing table is a note, which the driver would
            # raise as a Python warning: not worth one on every start.
            await cur.execute("SET SESSION sql_notes = 0")
            for attempt in range(_PASSES):
                try:
                    await _apply_pending(conn, cur)
                    found = await _columns(cur)
                    break
                except pymysql.err.MySQLError as exc:
                    if _code(exc) not in RETRY_PASS or attempt == _PASSES - 1:
                        raise
                    await conn.rollback()
                    log.warning("schema migration interrupted (%s); running it again", exc)
                    await asyncio.sleep(0.2 * (attempt + 1))
            check_columns(found)
        finally:
            await cur.execute("SELECT RELEASE_LOCK(%s)", (_LOCK,))
            await cur.execute("SET SESSION sql_notes = 1")
            # End the transaction the statements above opened: the connection goes
            # back to the pool clean (and is not closed for being mid-transaction).
            await conn.commit()


async def _apply_pending(conn: aiomysql.Connection, cur: aiomysql.Cursor) -> None:
    """One pass: the steps newer than the recorded version, each statement then its row."""
    await cur.execute(SCHEMA_VERSION_TABLE["mysql"])
    await cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
    (current,) = await cur.fetchone()
    # End the read's transaction: its metadata lock on schema_version would otherwise be
    # held across the DDL below, for another node's statements to abort.
    await conn.commit()
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        for statement in migration.statements:
            try:
                await cur.execute(statement)
            except pymysql.err.MySQLError as exc:
                if _code(exc) not in ALREADY_APPLIED:
                    raise
        await _record(conn, cur, migration.version, migration.name)


async def _columns(cur: aiomysql.Cursor) -> dict[str, set[str]]:
    """Each table of the database with its column names."""
    await cur.execute(
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE()"
    )
    found: dict[str, set[str]] = {}
    for table, column in await cur.fetchall():
        found.setdefault(table, set()).add(column)
    return found


async def _record(conn: aiomysql.Connection, cur: aiomysql.Cursor, version: int, name: str) -> None:
    """Write a step's ``schema_version`` row unless it is there, and commit.

    The same row committed through another node at the same moment fails certification
    (1213): the pass is then run again (`RETRY_PASS`) and finds the step recorded.
    """
    await cur.execute(
        # Not INSERT IGNORE: its duplicate would be a warning the driver raises.
        "INSERT INTO schema_version (version, name, applied_at) "
        "VALUES (%s, %s, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE version = version",
        (version, name),
    )
    await conn.commit()
