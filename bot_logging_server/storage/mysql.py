"""MySQL / MariaDB: two aiomysql pools per process (its SQL is `storage.mysql_dialect`, what
its errors mean `storage.mysql_errors`).

The pools are opened by `MySQLDatabase.open` (at start-up), which first creates the database
(utf8mb4) when it is missing and the account may, then applies pending migrations while
holding a named lock (``GET_LOCK``), so several workers can start at once (both in
`storage.mysql_schema`). Sessions run in UTC with strict SQL mode. Errors become
`StorageUnavailable` (connection lost or refused, too many connections, lock timeouts: a
retry may work) or `StorageError`. Waiting for a pooled connection and the work on it are
each bounded by ``db_timeout``; a connection that saw any error is closed, never reused, so
the pool heals by itself once the database is back.

A write transaction sends the statements whose answers it does not read (INSERTs, upserts)
together, with its next statement when there is one, in one round trip
(`storage.mysql_transaction`): a group commit is three round trips (the owners' check, the
rows and counters, the COMMIT).

Reads cannot starve ingest: the read API's queries (`MySQLDatabase.fetch`) run on the read
pool (``pool_size``), while token checks, transactions and group commits run on a small write
pool (``write_pool_size``) that reads never take. A read pool session carries a statement time
limit of ``db_timeout`` (MariaDB ``max_statement_time``, MySQL ``max_execution_time``), so a
read that times out is stopped on the database too, not only abandoned by the server.

Several hosts (a Galera cluster): `storage.failover.NodeSelector` picks the node the pools
connect to and moves it off a node in trouble; connections to the old node are dropped as
they come back. On a Galera node, reads wait until the node has applied every transaction
committed anywhere before them (``wsrep_sync_wait = 1``), so a record acknowledged by any
server is seen by every server. A deadlock or certification conflict (1213) is a `Conflict`,
which group commit writes again. Migrations stay safe when servers on different nodes run
them at once, although ``GET_LOCK`` holds on one node only (`storage.mysql_schema`).

Two private parts of aiomysql are relied on (requirements.txt pins it below its next minor
version): `MySQLDatabase._discard` calls ``Pool._wakeup``, and `MySQLDatabase._move_to`
points ``Pool._conn_kwargs`` at the new node. tests/test_storage.py and
tests/test_cluster_storage.py check that they still work.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import re
from collections.abc import AsyncIterator, Sequence

import aiomysql
from pymysql.constants import CLIENT

from bot_logging_server.config import DatabaseURL
from bot_logging_server.storage.base import (
    Database,
    Keep,
    StorageError,
    StorageUnavailable,
    Then,
    Transaction,
)
from bot_logging_server.storage.failover import NodeSelector
from bot_logging_server.storage.hosts import NodeHealth
from bot_logging_server.storage.mysql_dialect import MySQLDialect, format_style
from bot_logging_server.storage.mysql_errors import node_trouble, translate
from bot_logging_server.storage.mysql_schema import MIGRATIONS, ensure_database, migrate
from bot_logging_server.storage.mysql_transaction import MySQLTransaction

__all__ = ["MIGRATIONS", "MySQLDatabase", "MySQLDialect"]

_SESSION = "SET time_zone = '+00:00', sql_mode = 'STRICT_ALL_TABLES'"
# Strong references to fire-and-forget tasks (asyncio keeps only weak ones).
_BACKGROUND: set[asyncio.Future] = set()
_DB_NAME_RE = re.compile(r"[A-Za-z0-9_$-]{1,64}")
_CONNECT_TIMEOUT = 5
#: Group-commit transactions in flight at once (capped below the pool size). Measured on
#: MariaDB (bench/README.md): 1-2 writers give the largest groups and the least CPU per
#: request; more writers contend on the same index pages and commit fewer rows per second.
#: Two keep a second transaction going while one waits for its commit.
_GROUP_WRITERS = 2


def _release_if_acquired(pool: aiomysql.Pool, task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is None:
        pool.release(task.result())


class MySQLDatabase(Database):
    """Two aiomysql pools, opened at start-up: one for reads, one for ingest and auth."""

    dialect = MySQLDialect()

    def __init__(
        self,
        url: DatabaseURL,
        pool_size: int = 10,
        timeout: float = 10.0,
        check_interval: float | None = None,
        write_pool_size: int = 4,
    ) -> None:
        """Remember where to connect; nothing connects before `open`.

        `pool_size` connections serve reads, `write_pool_size` others serve token checks and
        writes. `timeout` bounds, in seconds, the wait for a pooled connection and each unit
        of work on it (and each read on the database); past it the operation raises
        `StorageUnavailable`. With several hosts in `url`, `check_interval` is the seconds
        between node checks (`NodeSelector`).
        """
        if not _DB_NAME_RE.fullmatch(url.name):
            raise StorageError("database name may only hold letters, digits, _ $ and -")
        self._url = url
        self._pool_size = pool_size
        self._write_pool_size = write_pool_size
        self._timeout = timeout
        self._read_pool: aiomysql.Pool | None = None
        self._write_pool: aiomysql.Pool | None = None
        #: Whether the server is MariaDB (else MySQL): how a statement time limit is spelled.
        self._mariadb = True
        self.nodes = NodeSelector(
            url.hosts,
            user=url.user,
            password=url.password,
            on_move=self._move_to,
            check_timeout=min(2.0, timeout),
            **({} if check_interval is None else {"check_interval": check_interval}),
        )
        # Few transactions in flight at once; the rest of the write pool serves token checks.
        self.writers = max(1, min(_GROUP_WRITERS, write_pool_size - 1))

    def _connect_args(self, read_limit: bool = False) -> dict[str, object]:
        return {
            "user": self._url.user,
            "password": self._url.password,
            "charset": "utf8mb4",
            "connect_timeout": min(_CONNECT_TIMEOUT, self._timeout),
            **self._node_args(self.nodes.current, read_limit),
        }

    def _node_args(self, node: NodeHealth, read_limit: bool = False) -> dict[str, object]:
        """Where to connect, and the session settings that depend on the node (and, with
        `read_limit`, the read pool's statement time limit)."""
        # Causal reads on a Galera node: see what any node committed before the read.
        session = f"{_SESSION}, wsrep_sync_wait = 1" if node.cluster else _SESSION
        if read_limit:
            # The read pool's sessions: a statement past the timeout is stopped by the server.
            if self._mariadb:
                session += f", max_statement_time = {self._timeout:.3f}"
            else:
                session += f", max_execution_time = {max(1, round(self._timeout * 1000)):d}"
        return {"host": node.address.host, "port": node.address.port, "init_command": session}

    def _move_to(self, node: NodeHealth) -> None:
        """Point the pools at `node`: new connections go there (`NodeSelector.on_move`)."""
        for pool in self._pools():
            # Private (see the module docstring): the pool's arguments for new connections.
            pool._conn_kwargs.update(self._node_args(node, pool is self._read_pool))

    def _pools(self) -> list[aiomysql.Pool]:
        """Every pool this database holds."""
        return [pool for pool in (self._read_pool, self._write_pool) if pool is not None]

    async def _create_pool(self, size: int, read_limit: bool) -> aiomysql.Pool:
        """A pool; the write pool's connections (not `read_limit`) take several statements
        per query, which `MySQLTransaction` sends together."""
        return await aiomysql.create_pool(
            minsize=1,
            maxsize=size,
            db=self._url.name,
            autocommit=False,
            pool_recycle=3600,
            **({} if read_limit else {"client_flag": CLIENT.MULTI_STATEMENTS}),
            **self._connect_args(read_limit),
        )

    def _on_current_node(self, conn: aiomysql.Connection) -> bool:
        address = self.nodes.current.address
        return (conn.host, conn.port) == (address.host, address.port)

    async def open(self) -> None:
        """Choose a node (several hosts), create the database if missing (and allowed),
        open the pools, migrate; then start watching the node."""
        try:
            await self.nodes.choose()
            await self._ensure_database()
            self._write_pool = await self._create_pool(self._write_pool_size, False)
            await self._migrate()
            await self._read_server_settings()
            self._read_pool = await self._create_pool(self._pool_size, True)
            self.nodes.start_monitor()
        except StorageError:
            await self.close()
            raise
        except Exception as exc:
            await self.close()
            raise translate(exc) from exc

    async def _ensure_database(self) -> None:
        await ensure_database(self._connect_args(), self._url.name)

    async def _migrate(self) -> None:
        """Apply the pending steps on a connection of its own, without the pool's timeout:
        a step that indexes or fills a large table takes its time (as on SQLite)."""
        conn = await aiomysql.connect(db=self._url.name, autocommit=False, **self._connect_args())
        try:
            await migrate(conn)
        finally:
            conn.close()

    async def alter_schema(self, statements: Sequence[str]) -> None:
        """On a connection of its own, without the pool's timeout (as `_migrate`)."""
        conn = await aiomysql.connect(db=self._url.name, autocommit=True, **self._connect_args())
        try:
            async with conn.cursor() as cur:
                for statement in statements:
                    await cur.execute(statement)
        finally:
            conn.close()

    async def _read_server_settings(self) -> None:
        """`max_value_bytes` from the server's ``max_allowed_packet`` (a statement, with its
        values escaped, must fit in one packet), and whether the server is MariaDB (how the
        read pool's statement time limit is spelled)."""
        async with self._connection(self._write_pool) as conn, conn.cursor() as cur:
            await cur.execute("SELECT @@max_allowed_packet, VERSION()")
            packet, version = await cur.fetchone()
            await conn.commit()
        self.max_value_bytes = int(packet)
        self._mariadb = "mariadb" in str(version).lower()

    async def close(self) -> None:
        """Stop watching the node, close the pools and wait for their connections to close."""
        await self.nodes.close()
        pools = self._pools()
        self._read_pool = self._write_pool = None
        for pool in pools:
            pool.close()
            await pool.wait_closed()

    @contextlib.asynccontextmanager
    async def _connection(self, pool: aiomysql.Pool | None) -> AsyncIterator[aiomysql.Connection]:
        """A connection of `pool`; on any error it is rolled back, closed and not reused.

        Getting the connection and the work done on it are each bounded by the timeout, so a
        database that is down, or a network that swallows packets, costs a 503, not a hang.
        Any exception but our own leaves as a `StorageError`.
        """
        if pool is None:
            raise StorageUnavailable("storage is not open")
        try:
            conn = await self._checkout(pool)
        except Exception as exc:
            if node_trouble(exc):
                self.nodes.suspect()
            raise translate(exc) from exc
        try:
            async with asyncio.timeout(self._timeout):
                yield conn
        except BaseException as exc:
            # A connection that saw an error may be mid-transaction or broken: drop it.
            self._discard(pool, conn)
            if node_trouble(exc):
                self.nodes.suspect()
            if isinstance(exc, Exception) and not isinstance(exc, StorageError):
                raise translate(exc) from exc
            raise
        else:
            pool.release(conn)

    async def _checkout(self, pool: aiomysql.Pool) -> aiomysql.Connection:
        """A pooled connection to the current node within the timeout, never leaking one
        that comes too late."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while True:
            # aiomysql drops pooled connections the database has closed (EOF seen) on
            # acquire; one that died silently fails its statement, within the timeout, and
            # is dropped.
            task = asyncio.ensure_future(pool.acquire())
            try:
                # asyncio.wait, not wait_for: on Python 3.11 wait_for loses a cancellation
                # that comes as the connection arrives (a tail then outlives its client).
                await asyncio.wait((task,), timeout=max(0.0, deadline - loop.time()))
            except BaseException:
                self._give_up(pool, task)
                raise
            if not task.done():
                self._give_up(pool, task)
                raise TimeoutError("no pooled connection within the timeout")
            conn = task.result()
            if self._on_current_node(conn):
                return conn
            # Opened before the node changed: closed, and another one taken.
            self._discard(pool, conn)

    @staticmethod
    def _give_up(pool: aiomysql.Pool, task: asyncio.Future) -> None:
        """Stop waiting for `task`'s connection; one it gets anyway goes back to the pool."""
        task.cancel()
        task.add_done_callback(functools.partial(_release_if_acquired, pool))

    @staticmethod
    def _discard(pool: aiomysql.Pool, conn: aiomysql.Connection) -> None:
        conn.close()
        pool.release(conn)
        # aiomysql wakes the tasks waiting for a connection only when a live one comes back;
        # wake one so it opens a fresh connection instead of waiting for its timeout.
        wakeup = getattr(pool, "_wakeup", None)
        if wakeup is not None and not pool.closed:
            task = asyncio.ensure_future(wakeup())
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)

    async def _fetch(self, pool: aiomysql.Pool | None, sql: str, args: Sequence) -> list[Sequence]:
        async with self._connection(pool) as conn, conn.cursor() as cur:
            await cur.execute(format_style(sql), tuple(args))
            rows = await cur.fetchall()
            # End the read's snapshot so the next read on this connection sees new commits.
            await conn.commit()
        return list(rows)

    async def fetch(self, sql: str, args: Sequence = ()) -> list[Sequence]:
        """Run one read on the read pool (stopped by the server past the timeout)."""
        return await self._fetch(self._read_pool, sql, args)

    async def lookup(self, sql: str, args: Sequence = ()) -> list[Sequence]:
        """Run one short read on the write pool, which the read API never uses."""
        return await self._fetch(self._write_pool, sql, args)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A transaction on the write pool; on any error the connection is dropped."""
        try:
            async with self._connection(self._write_pool) as conn, conn.cursor() as cur:
                tx = MySQLTransaction(cur)
                yield tx
                await tx.commit()
        except BaseException as exc:
            self.note_write(exc)
            raise
        self.note_write(None)

    async def insert_many(
        self,
        table: str,
        columns: Sequence[str],
        rows: list[tuple],
        keep: Keep | None = None,
        then: Then | None = None,
    ) -> None:
        """One multi-row INSERT (several past a megabyte), each value escaped once; commit.

        `keep` runs first and `then` last, in the same transaction (on the same cursor).
        """
        try:
            async with self._connection(self._write_pool) as conn, conn.cursor() as cur:
                tx = MySQLTransaction(cur)
                if keep is not None:
                    rows = await keep(tx, rows)
                await tx.insert_rows(table, columns, rows)
                if then is not None:
                    await then(tx, rows)
                await tx.commit()
        except BaseException as exc:
            self.note_write(exc)
            raise
        self.note_write(None)

    def connections_in_use(self) -> int:
        """Pooled connections (both pools) checked out right now."""
        return sum(pool.size - pool.freesize for pool in self._pools())

    @contextlib.asynccontextmanager
    async def named_lock(self, name: str, wait: float = 0.0) -> AsyncIterator[bool]:
        """``GET_LOCK`` on a connection of its own (not the pool's, whose work is bounded by
        the timeout), held for the block; the server frees it if the connection dies."""
        # Per database: servers on other databases of the same MySQL never wait on each other.
        key = f"bot_logging_server.{name}.{self._url.name}"
        if len(key) > 64:
            key = f"bot_logging_server.{name}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        try:
            conn = await aiomysql.connect(db=self._url.name, **self._connect_args())
        except Exception as exc:
            raise translate(exc) from exc
        try:
            try:
                async with conn.cursor() as cur:
                    await cur.execute("SELECT GET_LOCK(%s, %s)", (key, wait))
                    (got,) = await cur.fetchone()
            except Exception as exc:
                raise translate(exc) from exc
            try:
                yield got == 1
            finally:
                if got == 1:
                    with contextlib.suppress(Exception):
                        async with conn.cursor() as cur:
                            await cur.execute("SELECT RELEASE_LOCK(%s)", (key,))
        finally:
            conn.close()
