"""MySQL / MariaDB storage through one aiomysql pool per process.

The pool is opened by `MySQLStorage.open` (at start-up), which first creates the database
(utf8mb4) when it is missing and the account may, then applies pending migrations while
holding a named lock (``GET_LOCK``), so several workers can start at once. Sessions run in UTC
with strict SQL mode. Driver errors become `StorageUnavailable` (connection lost or refused,
too many connections, lock timeouts: a retry may work) or `StorageError`. Waiting for a
pooled connection and the work on it are each bounded by ``db_timeout``; a connection that
saw any error is closed, never reused, so the pool heals by itself once the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import aiomysql
import pymysql

from bot_logging_server.config import DatabaseURL
from bot_logging_server.storage.base import (
    MAX_STAT_ROWS,
    LevelCount,
    LogQuery,
    LogRow,
    Migration,
    Storage,
    StorageError,
    StorageUnavailable,
    StoredLog,
    User,
    UserExists,
    UserNotFound,
    check_columns,
    join_filters,
    like_pattern,
    utc_now,
)
from bot_logging_server.storage.group_commit import GroupCommit

__all__ = ["MIGRATIONS", "MySQLStorage"]

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "users and user_logs",
        (
            """CREATE TABLE IF NOT EXISTS users (
                id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                username VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
                token_hash VARCHAR(255) NOT NULL,
                tel_id BIGINT NULL,
                disabled BOOL NOT NULL DEFAULT 0,
                created_at DATETIME(6) NOT NULL,
                updated_at DATETIME(6) NOT NULL,
                UNIQUE KEY ux_users_username (username)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
            # id orders a user's records; (user_id, id) reads them newest first and
            # (user_id, event_at) serves time ranges.
            """CREATE TABLE IF NOT EXISTS user_logs (
                id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                user_id INT UNSIGNED NOT NULL,
                pid BIGINT NOT NULL,
                p_name VARCHAR(255) NOT NULL,
                p_description VARCHAR(255) NOT NULL,
                level SMALLINT NOT NULL,
                msg LONGTEXT NOT NULL,
                truncated BOOL NOT NULL DEFAULT 0,
                msg_length INT UNSIGNED NOT NULL,
                event_at DATETIME(6) NOT NULL,
                post_time DATETIME(6) NOT NULL,
                received_at DATETIME(6) NOT NULL,
                KEY ix_user_logs_user_id (user_id, id),
                KEY ix_user_logs_user_event_at (user_id, event_at)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        ),
    ),
    Migration(
        2,
        "read side: (user_id, event_at, level) index",
        (
            # Covers the stats query (index only) and time ranges with a level filter; it
            # serves everything (user_id, event_at) did, so that one goes.
            "ALTER TABLE user_logs ADD INDEX ix_user_logs_user_event_level "
            "(user_id, event_at, level), DROP INDEX ix_user_logs_user_event_at",
        ),
    ),
)

_SCHEMA_VERSION_DDL = """CREATE TABLE IF NOT EXISTS schema_version (
    version INT NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    applied_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

_USER_COLUMNS = "id, username, token_hash, tel_id, disabled, created_at"
_LOG_COLUMNS = (
    "id, user_id, pid, p_name, p_description, level, msg, truncated, msg_length, "
    "event_at, post_time, received_at"
)
# A plain VALUES (...) shape: aiomysql's executemany rewrites it into one multi-row INSERT.
_INSERT_LOGS = (
    "INSERT INTO user_logs (user_id, pid, p_name, p_description, level, msg, truncated, "
    "msg_length, event_at, post_time, received_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)

# Error numbers after which a retry can succeed: connection refused, lost or gone, too many
# connections, server shutting down, lock wait timeout, deadlock, read-only.
_RETRYABLE = {1040, 1053, 1205, 1213, 1290, 1927, 2002, 2003, 2006, 2013, 2055}
_DUPLICATE_KEY = 1062
# Strong references to fire-and-forget tasks (asyncio keeps only weak ones).
_BACKGROUND: set[asyncio.Future] = set()
_DB_NAME_RE = re.compile(r"[A-Za-z0-9_$-]{1,64}")
_CONNECT_TIMEOUT = 5
#: Group-commit transactions in flight at once (capped below the pool size). Measured on
#: MariaDB (bench/README.md): 1-2 writers give the largest groups and the least CPU per
#: request; more writers contend on the same index pages and commit fewer rows per second.
#: Two keep a second transaction going while one waits for its commit.
_GROUP_WRITERS = 2


def _translate(exc: BaseException) -> StorageError:
    """Map a driver or network exception to our own (never carrying SQL text)."""
    if isinstance(exc, (OSError, asyncio.TimeoutError, pymysql.err.InterfaceError)):
        return StorageUnavailable(f"database unreachable: {type(exc).__name__}")
    if isinstance(exc, pymysql.err.MySQLError) and exc.args:
        code = exc.args[0]
        if code in (2002, 2003):
            return StorageUnavailable(f"cannot connect to the database server (MySQL error {code})")
        if code in _RETRYABLE:
            return StorageUnavailable(f"database unavailable (MySQL error {code})")
        return StorageError(f"database error (MySQL error {code})")
    return StorageError(f"database error: {type(exc).__name__}")


def _release_if_acquired(pool: aiomysql.Pool, task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is None:
        pool.release(task.result())


class _BatchCursor(aiomysql.Cursor):
    """An aiomysql cursor whose ``executemany`` escapes each distinct value once.

    The rows of a batch repeat most of their values (user, pid, process names, levels,
    times); profiling a 1000-record batch showed the driver's per-value escaping as the
    largest cost. The escaping is still the driver's own (``conn.escape``), only remembered,
    per type, for the length of one ``executemany`` call.
    """

    _memo: dict[type, dict[object, str]] | None = None

    async def executemany(self, query: str, args: Sequence[tuple]) -> int | None:
        """aiomysql's multi-row ``executemany``, with escaping remembered during the call."""
        self._memo = {str: {}, int: {}}
        try:
            return await super().executemany(query, args)
        finally:
            self._memo = None

    def _escape_args(self, args: object, conn: aiomysql.Connection) -> object:
        memo = self._memo
        if memo is None or type(args) is not tuple:
            return super()._escape_args(args, conn)
        literals = []
        for arg in args:
            # Per type: 1, True and 1.0 are equal dict keys but different SQL literals.
            seen = memo.get(type(arg))
            if seen is None:
                literals.append(conn.escape(arg))
                continue
            literal = seen.get(arg)
            if literal is None:
                literal = seen[arg] = conn.escape(arg)
            literals.append(literal)
        return tuple(literals)


def _sql_time(moment: datetime, cache: dict[datetime, str]) -> str:
    """`moment` as DATETIME(6) text, remembered in `cache` (a batch repeats its times)."""
    text = cache[moment] = moment.isoformat(sep=" ", timespec="microseconds")
    return text


def _user(row: Sequence) -> User:
    return User(
        id=row[0],
        username=row[1],
        token_hash=row[2],
        tel_id=row[3],
        disabled=bool(row[4]),
        created_at=row[5],
    )


class MySQLStorage(Storage):
    """`Storage` on MySQL/MariaDB: one aiomysql pool, opened at start-up."""

    name = "mysql"

    def __init__(self, url: DatabaseURL, pool_size: int = 10, timeout: float = 10.0) -> None:
        """Remember where to connect; nothing connects before `open`.

        `timeout` bounds, in seconds, the wait for a pooled connection and each unit of work
        on it; past it the operation raises `StorageUnavailable`.
        """
        if not _DB_NAME_RE.fullmatch(url.name):
            raise StorageError("database name may only hold letters, digits, _ $ and -")
        self._url = url
        self._pool_size = pool_size
        self._timeout = timeout
        self._pool: aiomysql.Pool | None = None
        # Few transactions in flight at once; the rest of the pool serves reads and auth.
        self._group: GroupCommit[tuple] = GroupCommit(
            self._write_log_rows, writers=max(1, min(_GROUP_WRITERS, pool_size - 1))
        )

    def _connect_args(self) -> dict[str, object]:
        return {
            "host": self._url.host,
            "port": self._url.port,
            "user": self._url.user,
            "password": self._url.password,
            "charset": "utf8mb4",
            "connect_timeout": min(_CONNECT_TIMEOUT, self._timeout),
            "init_command": "SET time_zone = '+00:00', sql_mode = 'STRICT_ALL_TABLES'",
        }

    async def open(self) -> None:
        """Create the database if missing (and allowed), open the pool, migrate."""
        try:
            await self._ensure_database()
            self._pool = await aiomysql.create_pool(
                minsize=1,
                maxsize=self._pool_size,
                db=self._url.name,
                autocommit=False,
                pool_recycle=3600,
                **self._connect_args(),
            )
            await self._migrate()
        except StorageError:
            await self.close()
            raise
        except Exception as exc:
            await self.close()
            raise _translate(exc) from exc

    async def _ensure_database(self) -> None:
        conn = await aiomysql.connect(**self._connect_args())
        try:
            async with conn.cursor() as cur:
                await cur.execute(
                    "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                    (self._url.name,),
                )
                if await cur.fetchone():
                    return
                try:
                    # An identifier cannot be a parameter; the name was checked in __init__.
                    await cur.execute(
                        f"CREATE DATABASE IF NOT EXISTS `{self._url.name}` "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                    )
                except pymysql.err.OperationalError as exc:
                    raise StorageError(
                        f"database {self._url.name!r} does not exist and this account may not "
                        f"create it (MySQL error {exc.args[0]})"
                    ) from exc
        finally:
            conn.close()

    async def _migrate(self) -> None:
        async with self._connection() as conn, conn.cursor() as cur:
            # DDL is not transactional in MySQL: a named lock keeps workers from racing.
            await cur.execute("SELECT GET_LOCK('bot_logging_server.migrate', 60)")
            (got,) = await cur.fetchone()
            if got != 1:
                raise StorageUnavailable("timed out waiting for another process to migrate")
            try:
                # "IF NOT EXISTS" on an existing table is a note, which the driver would
                # raise as a Python warning: not worth one on every start.
                await cur.execute("SET SESSION sql_notes = 0")
                await cur.execute(_SCHEMA_VERSION_DDL)
                await cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
                (current,) = await cur.fetchone()
                for migration in MIGRATIONS:
                    if migration.version <= current:
                        continue
                    for statement in migration.statements:
                        await cur.execute(statement)
                    await cur.execute(
                        "INSERT INTO schema_version (version, name, applied_at) "
                        "VALUES (%s, %s, UTC_TIMESTAMP(6))",
                        (migration.version, migration.name),
                    )
                    await conn.commit()
                await cur.execute(
                    "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA = DATABASE()"
                )
                found: dict[str, set[str]] = {}
                for table, column in await cur.fetchall():
                    found.setdefault(table, set()).add(column)
                check_columns(found)
            finally:
                await cur.execute("SELECT RELEASE_LOCK('bot_logging_server.migrate')")
                await cur.execute("SET SESSION sql_notes = 1")
                # End the transaction the statements above opened: the connection goes
                # back to the pool clean (and is not closed for being mid-transaction).
                await conn.commit()

    async def close(self) -> None:
        """Finish pending group commits, close the pool and wait for its connections to close."""
        await self._group.drain()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            await pool.wait_closed()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[aiomysql.Connection]:
        """A pooled connection; on any error it is rolled back, closed and not reused.

        Getting the connection and the work done on it are each bounded by the timeout, so a
        database that is down, or a network that swallows packets, costs a 503, not a hang.
        """
        pool = self._pool
        if pool is None:
            raise StorageUnavailable("storage is not open")
        try:
            conn = await self._checkout(pool)
        except Exception as exc:
            raise _translate(exc) from exc
        try:
            async with asyncio.timeout(self._timeout):
                yield conn
        except BaseException as exc:
            # A connection that saw an error may be mid-transaction or broken: drop it.
            self._discard(pool, conn)
            if isinstance(exc, (pymysql.err.MySQLError, OSError, asyncio.TimeoutError)):
                raise _translate(exc) from exc
            raise
        else:
            pool.release(conn)

    async def _checkout(self, pool: aiomysql.Pool) -> aiomysql.Connection:
        """A pooled connection within the timeout, never leaking one that comes too late."""
        # aiomysql drops pooled connections the database has closed (EOF seen) on acquire;
        # one that died silently fails its statement, within the timeout, and is dropped.
        task = asyncio.ensure_future(pool.acquire())
        try:
            # shield: a timeout (or the request going away) cancels the wait, and the task is
            # cancelled below, where a connection it got anyway is handed back to the pool.
            return await asyncio.wait_for(asyncio.shield(task), self._timeout)
        except BaseException:
            task.cancel()
            task.add_done_callback(functools.partial(_release_if_acquired, pool))
            raise

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

    async def ping(self) -> None:
        """``SELECT 1`` on a pooled connection."""
        async with self._connection() as conn, conn.cursor() as cur:
            await cur.execute("SELECT 1")
            await cur.fetchone()

    async def schema_version(self) -> int:
        """The highest applied migration."""
        async with self._connection() as conn, conn.cursor() as cur:
            await cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            (version,) = await cur.fetchone()
            await conn.commit()
            return int(version)

    async def create_user(self, username: str, token_hash: str, tel_id: int | None) -> User:
        """Insert a user; `UserExists` when the name is taken."""
        now = utc_now()
        async with self._connection() as conn, conn.cursor() as cur:
            try:
                await cur.execute(
                    "INSERT INTO users (username, token_hash, tel_id, disabled, created_at, "
                    "updated_at) VALUES (%s, %s, %s, 0, %s, %s)",
                    (username, token_hash, tel_id, now, now),
                )
            except pymysql.err.IntegrityError as exc:
                if exc.args and exc.args[0] == _DUPLICATE_KEY:
                    raise UserExists(username) from None
                raise
            user_id = cur.lastrowid
            await conn.commit()
        return User(user_id, username, token_hash, tel_id, False, now)

    async def get_user(self, username: str) -> User | None:
        """The user with exactly this name, or None."""
        async with self._connection() as conn, conn.cursor() as cur:
            await cur.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE username = %s", (username,))
            row = await cur.fetchone()
            # End the read's snapshot so the next read on this connection sees new commits.
            await conn.commit()
        # The column's collation pads with spaces ("alice " = "alice"): only an exact name.
        return _user(row) if row and row[1] == username else None

    async def list_users(self) -> list[User]:
        """Every user, by name."""
        async with self._connection() as conn, conn.cursor() as cur:
            await cur.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username")
            rows = await cur.fetchall()
            await conn.commit()
        return [_user(row) for row in rows]

    async def _update_user(self, sql: str, args: tuple, username: str) -> None:
        async with self._connection() as conn, conn.cursor() as cur:
            await cur.execute(sql, args)
            changed = cur.rowcount
            await conn.commit()
        self.users_changed += 1
        if changed == 0:
            raise UserNotFound(username)

    async def set_disabled(self, username: str, disabled: bool) -> None:
        """Disable or enable a user."""
        await self._update_user(
            "UPDATE users SET disabled = %s, updated_at = UTC_TIMESTAMP(6) WHERE username = %s",
            (disabled, username),
            username,
        )

    async def set_token_hash(self, username: str, token_hash: str) -> None:
        """Replace a user's token hash."""
        await self._update_user(
            "UPDATE users SET token_hash = %s, updated_at = UTC_TIMESTAMP(6) WHERE username = %s",
            (token_hash, username),
            username,
        )

    async def remove_user(self, username: str) -> int:
        """Delete the user and their logs in one transaction."""
        async with self._connection() as conn, conn.cursor() as cur:
            await cur.execute("SELECT id FROM users WHERE username = %s FOR UPDATE", (username,))
            row = await cur.fetchone()
            if row is None:
                await conn.rollback()
                raise UserNotFound(username)
            await cur.execute("DELETE FROM user_logs WHERE user_id = %s", (row[0],))
            deleted = cur.rowcount
            await cur.execute("DELETE FROM users WHERE id = %s", (row[0],))
            await conn.commit()
        self.users_changed += 1
        return deleted

    async def insert_logs(self, user_id: int, rows: Sequence[LogRow], received_at: datetime) -> int:
        """Join a group commit: one multi-row INSERT, one commit, shared with concurrent calls.

        Returns after the commit that holds these rows; raises (and stores none of them) when
        that shared transaction fails.
        """
        if not rows:
            return 0
        # Timestamps go as text: pymysql's datetime escaper is the slowest part of a large
        # batch, and a batch usually repeats a handful of distinct times.
        times: dict[datetime, str] = {}
        received = _sql_time(received_at, times)
        params = [
            (
                user_id,
                r.pid,
                r.p_name,
                r.p_description,
                r.level,
                r.msg,
                int(r.truncated),
                r.msg_length,
                times.get(r.event_at) or _sql_time(r.event_at, times),
                times.get(r.post_time) or _sql_time(r.post_time, times),
                received,
            )
            for r in rows
        ]
        await self._group.submit(params)
        return len(rows)

    async def count_logs(self, user_id: int) -> int:
        """How many rows this user has."""
        async with self._connection() as conn, conn.cursor() as cur:
            await cur.execute("SELECT COUNT(*) FROM user_logs WHERE user_id = %s", (user_id,))
            (count,) = await cur.fetchone()
            await conn.commit()
        return int(count)

    async def _write_log_rows(self, params: list[tuple]) -> None:
        """Insert a group's rows with one multi-row INSERT and commit (the group's transaction)."""
        async with self._connection() as conn, conn.cursor(_BatchCursor) as cur:
            await cur.executemany(_INSERT_LOGS, params)
            await conn.commit()

    # -- reading -------------------------------------------------------------------------

    async def _select(self, sql: str, args: Sequence) -> list[tuple]:
        async with self._connection() as conn, conn.cursor() as cur:
            await cur.execute(sql, args)
            rows = await cur.fetchall()
            # End the read's snapshot so the next read on this connection sees new commits.
            await conn.commit()
        return list(rows)

    async def query_logs(self, user_id: int, query: LogQuery) -> list[StoredLog]:
        """One keyset page: ``id < before_id`` newest first, or ``id > after_id`` oldest first."""
        where, args = _where(user_id, query)
        order = "ASC" if query.oldest_first else "DESC"
        hint = (
            "FORCE INDEX (ix_user_logs_user_event_level)"
            if await self._small_range(user_id, query)
            else ""
        )
        rows = await self._select(
            f"SELECT {_LOG_COLUMNS} FROM user_logs {hint} WHERE {where} "
            f"ORDER BY id {order} LIMIT %s",
            (*args, query.limit),
        )
        return [_stored_log(r) for r in rows]

    async def _small_range(self, user_id: int, query: LogQuery) -> bool:
        """Whether `query` has a time range holding fewer than `_SMALL_RANGE` of the rows.

        Left alone, the optimizer walks the id order back from the newest row until it has
        a page; for a range far in the past, or a rare match, that reads most of the table.
        A small range is cheaper read whole through the event_at index and sorted. Counting
        up to `_SMALL_RANGE` entries of that index (index only) costs a few milliseconds.
        """
        if query.since is None and query.until is None:
            return False
        where, args = _where(user_id, LogQuery(since=query.since, until=query.until))
        rows = await self._select(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM user_logs WHERE {where} LIMIT %s) AS r",
            (*args, _SMALL_RANGE),
        )
        return int(rows[0][0]) < _SMALL_RANGE

    async def last_log_id(self, user_id: int) -> int:
        """The user's highest id, 0 when none."""
        rows = await self._select(
            "SELECT COALESCE(MAX(id), 0) FROM user_logs WHERE user_id = %s", (user_id,)
        )
        return int(rows[0][0])

    async def log_stats(self, user_id: int, query: LogQuery, bucket: str) -> list[LevelCount]:
        """GROUP BY the bucket and level, in SQL, on the (user_id, event_at, level) index.

        The bucket is ``event_at DIV 10^k`` (a DATETIME in numeric context is
        YYYYMMDDhhmmss.ffffff): integer grouping is much cheaper than formatting a string.
        """
        divisor, pattern = _BUCKETS[bucket]
        where, args = _where(user_id, query, with_cursor=False)
        rows = await self._select(
            f"SELECT event_at DIV {divisor} AS bucket, level, COUNT(*) FROM user_logs "
            f"WHERE {where} GROUP BY bucket, level ORDER BY bucket DESC, level LIMIT %s",
            (*args, MAX_STAT_ROWS),
        )
        return [LevelCount(datetime.strptime(str(r[0]), pattern), r[1], int(r[2])) for r in rows]


# Bucket -> (divisor of the numeric DATETIME, how the quotient reads as a time).
_BUCKETS = {
    "minute": (100, "%Y%m%d%H%M"),
    "hour": (10_000, "%Y%m%d%H"),
    "day": (1_000_000, "%Y%m%d"),
}
#: A time range with fewer rows than this is read through the event_at index.
_SMALL_RANGE = 50_000


def _where(user_id: int, query: LogQuery, with_cursor: bool = True) -> tuple[str, list]:
    """The WHERE clause and its arguments for `query`, always scoped to `user_id`."""
    optional = [
        ("level >= %s", query.min_level),
        ("event_at >= %s", query.since),
        ("event_at < %s", query.until),
        # An explicit case-insensitive collation: q must not depend on how the database
        # was created.
        (
            "msg COLLATE utf8mb4_general_ci LIKE %s ESCAPE '|'",
            None if query.q is None else like_pattern(query.q),
        ),
        ("p_name = %s", query.p_name),
        ("p_description = %s", query.p_description),
        ("pid = %s", query.pid),
    ]
    if with_cursor:
        optional += [("id < %s", query.before_id), ("id > %s", query.after_id)]
    return join_filters(("user_id = %s", user_id), optional)


def _stored_log(r: Sequence) -> StoredLog:
    return StoredLog.from_row(r)
