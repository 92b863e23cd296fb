"""Embedded SQLite storage through aiosqlite: the default, needing nothing installed.

Two connections are opened at start-up, both in WAL mode with ``synchronous=FULL`` (a
commit is on disk before the server answers 200): one for writes, used under an asyncio lock
so a transaction's statements never interleave with another's, and one for reads, which WAL
lets run beside a write. aiosqlite runs each call in its own thread, so nothing blocks the
event loop. Times are stored as text ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC), which sorts.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import datetime

import aiosqlite

from bot_logging_server.storage.base import (
    MAX_STAT_ROWS,
    REQUIRED_COLUMNS,
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
    utc_now,
)
from bot_logging_server.storage.group_commit import GroupCommit

__all__ = ["MIGRATIONS", "SQLiteStorage"]

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "users and user_logs",
        (
            """CREATE TABLE IF NOT EXISTS users (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                username TEXT NOT NULL UNIQUE,
                token_hash TEXT NOT NULL,
                tel_id INTEGER NULL,
                disabled INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS user_logs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                user_id INTEGER NOT NULL,
                pid INTEGER NOT NULL,
                p_name TEXT NOT NULL,
                p_description TEXT NOT NULL,
                level INTEGER NOT NULL,
                msg TEXT NOT NULL,
                truncated INTEGER NOT NULL DEFAULT 0,
                msg_length INTEGER NOT NULL,
                event_at TEXT NOT NULL,
                post_time TEXT NOT NULL,
                received_at TEXT NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS ix_user_logs_user_id ON user_logs (user_id, id)",
            "CREATE INDEX IF NOT EXISTS ix_user_logs_user_event_at "
            "ON user_logs (user_id, event_at)",
        ),
    ),
    Migration(
        2,
        "read side: (user_id, event_at, level) index",
        (
            # Covers the stats query and serves everything (user_id, event_at) did.
            "CREATE INDEX IF NOT EXISTS ix_user_logs_user_event_level "
            "ON user_logs (user_id, event_at, level)",
            "DROP INDEX IF EXISTS ix_user_logs_user_event_at",
        ),
    ),
)

_USER_COLUMNS = "id, username, token_hash, tel_id, disabled, created_at"
_LOG_COLUMNS = (
    "id, user_id, pid, p_name, p_description, level, msg, truncated, msg_length, "
    "event_at, post_time, received_at"
)
_INSERT_LOGS = (
    "INSERT INTO user_logs (user_id, pid, p_name, p_description, level, msg, truncated, "
    "msg_length, event_at, post_time, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: Rows per multi-row INSERT when a group is large: one prepared statement of this many
#: VALUES tuples runs about twice as fast per row as ``executemany`` of a one-row INSERT.
_CHUNK_ROWS = 64
_INSERT_CHUNK = _INSERT_LOGS + ", (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" * (_CHUNK_ROWS - 1)
_BUSY_TIMEOUT_MS = 10_000


def _text(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="microseconds")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _user(row: Sequence) -> User:
    return User(
        id=row[0],
        username=row[1],
        token_hash=row[2],
        tel_id=row[3],
        disabled=bool(row[4]),
        created_at=_time(row[5]),
    )


async def _to_the_end(statement: Awaitable[object]) -> None:
    """Await `statement` to its end even when the caller is cancelled meanwhile.

    aiosqlite runs the statement in its own thread whatever happens to the awaiting task; a
    cancelled await would leave us not knowing whether BEGIN or COMMIT ran. The cancellation
    is raised once the statement has finished.
    """
    task = asyncio.ensure_future(statement)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


def _translate(exc: BaseException) -> StorageError:
    """Map a sqlite3 error to ours: a locked or unopenable file is worth a retry."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        if "locked" in text or "busy" in text or "unable to open" in text:
            return StorageUnavailable(f"database unavailable: {exc}")
    return StorageError(f"database error: {type(exc).__name__}")


class SQLiteStorage(Storage):
    """`Storage` in one SQLite file: a write connection and a read connection."""

    name = "sqlite"

    def __init__(self, path: str, timeout: float = _BUSY_TIMEOUT_MS / 1000) -> None:
        """Remember the file; nothing is opened before `open`.

        `timeout` is how long, in seconds, a write waits for a lock held by another process
        before raising `StorageUnavailable` (answered 503).
        """
        self._path = path
        self._busy_timeout_ms = max(1, int(timeout * 1000))
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        # One writer: while a transaction commits, the next requests gather into one group.
        self._group: GroupCommit[tuple] = GroupCommit(self._write_log_rows, writers=1)

    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        conn = await aiosqlite.connect(self._path, isolation_level=None)
        await conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms:d}")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = FULL")
        return conn

    async def open(self) -> None:
        """Open both connections (creating the file) and migrate."""
        try:
            self._writer = await self._connect()
            await self._migrate()
            self._reader = await self._connect()
        except sqlite3.Error as exc:
            await self.close()
            raise _translate(exc) from exc
        except BaseException:
            await self.close()
            raise

    async def _migrate(self) -> None:
        assert self._writer is not None
        async with self._transaction() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            async with conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version") as c:
                (current,) = await c.fetchone()
            for migration in MIGRATIONS:
                if migration.version <= current:
                    continue
                for statement in migration.statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, _text(utc_now())),
                )
            found: dict[str, set[str]] = {}
            for table in REQUIRED_COLUMNS:
                async with conn.execute(f"PRAGMA table_info({table})") as c:
                    found[table] = {row[1] for row in await c.fetchall()}
            check_columns(found)

    async def close(self) -> None:
        """Finish pending group commits, then close both connections."""
        await self._group.drain()
        for attr in ("_reader", "_writer"):
            conn = getattr(self, attr)
            setattr(self, attr, None)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` on the write connection; COMMIT on success, else ROLLBACK."""
        if self._writer is None:
            raise StorageUnavailable("storage is not open")
        async with self._write_lock:
            conn = self._writer
            try:
                await _to_the_end(conn.execute("BEGIN IMMEDIATE"))
                try:
                    yield conn
                except BaseException:
                    await _to_the_end(conn.execute("ROLLBACK"))
                    raise
                await _to_the_end(conn.execute("COMMIT"))
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        await conn.execute("ROLLBACK")
                raise _translate(exc) from exc
            except asyncio.CancelledError:
                # The caller went away (a client that disconnected) after BEGIN ran: undo it
                # before the lock is released, or the next writer finds a transaction open.
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        await _to_the_end(conn.execute("ROLLBACK"))
                raise

    async def _read(self, sql: str, args: Sequence = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise StorageUnavailable("storage is not open")
        try:
            async with self._reader.execute(sql, args) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    async def ping(self) -> None:
        """``SELECT 1`` on the read connection."""
        await self._read("SELECT 1")

    async def schema_version(self) -> int:
        """The highest applied migration."""
        rows = await self._read("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return int(rows[0][0])

    async def create_user(self, username: str, token_hash: str, tel_id: int | None) -> User:
        """Insert a user; `UserExists` when the name is taken."""
        now = utc_now()
        async with self._transaction() as conn:
            try:
                cur = await conn.execute(
                    "INSERT INTO users (username, token_hash, tel_id, disabled, created_at, "
                    "updated_at) VALUES (?, ?, ?, 0, ?, ?)",
                    (username, token_hash, tel_id, _text(now), _text(now)),
                )
            except sqlite3.IntegrityError:
                raise UserExists(username) from None
            user_id = cur.lastrowid
        assert user_id is not None
        return User(user_id, username, token_hash, tel_id, False, now)

    async def get_user(self, username: str) -> User | None:
        """The user with exactly this name, or None."""
        rows = await self._read(
            f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", (username,)
        )
        return _user(rows[0]) if rows else None

    async def list_users(self) -> list[User]:
        """Every user, by name."""
        rows = await self._read(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username")
        return [_user(row) for row in rows]

    async def _update_user(self, sql: str, args: tuple, username: str) -> None:
        async with self._transaction() as conn:
            cur = await conn.execute(sql, args)
            changed = cur.rowcount
        self.users_changed += 1
        if changed == 0:
            raise UserNotFound(username)

    async def set_disabled(self, username: str, disabled: bool) -> None:
        """Disable or enable a user."""
        await self._update_user(
            "UPDATE users SET disabled = ?, updated_at = ? WHERE username = ?",
            (int(disabled), _text(utc_now()), username),
            username,
        )

    async def set_token_hash(self, username: str, token_hash: str) -> None:
        """Replace a user's token hash."""
        await self._update_user(
            "UPDATE users SET token_hash = ?, updated_at = ? WHERE username = ?",
            (token_hash, _text(utc_now()), username),
            username,
        )

    async def remove_user(self, username: str) -> int:
        """Delete the user and their logs in one transaction."""
        async with self._transaction() as conn:
            async with conn.execute("SELECT id FROM users WHERE username = ?", (username,)) as c:
                row = await c.fetchone()
            if row is None:
                raise UserNotFound(username)
            cur = await conn.execute("DELETE FROM user_logs WHERE user_id = ?", (row[0],))
            deleted = cur.rowcount
            await conn.execute("DELETE FROM users WHERE id = ?", (row[0],))
        self.users_changed += 1
        return deleted

    async def insert_logs(self, user_id: int, rows: Sequence[LogRow], received_at: datetime) -> int:
        """Join a group commit: one prepared INSERT, one transaction shared with concurrent calls.

        Returns after the commit that holds these rows; raises (and stores none of them) when
        that shared transaction fails.
        """
        if not rows:
            return 0
        received = _text(received_at)
        # A batch repeats a handful of distinct times: format each once.
        times: dict[datetime, str] = {}
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
                times.get(r.event_at) or times.setdefault(r.event_at, _text(r.event_at)),
                times.get(r.post_time) or times.setdefault(r.post_time, _text(r.post_time)),
                received,
            )
            for r in rows
        ]
        await self._group.submit(params)
        return len(rows)

    async def count_logs(self, user_id: int) -> int:
        """How many rows this user has."""
        rows = await self._read("SELECT COUNT(*) FROM user_logs WHERE user_id = ?", (user_id,))
        return int(rows[0][0])

    async def _write_log_rows(self, params: list[tuple]) -> None:
        """Insert a group's rows in one transaction: 64-row INSERTs, the rest one by one."""
        full = len(params) - len(params) % _CHUNK_ROWS
        async with self._transaction() as conn:
            for start in range(0, full, _CHUNK_ROWS):
                chunk = params[start : start + _CHUNK_ROWS]
                await conn.execute(_INSERT_CHUNK, [value for row in chunk for value in row])
            if full < len(params):
                await conn.executemany(_INSERT_LOGS, params[full:])

    # -- reading -------------------------------------------------------------------------

    async def _reader_with_functions(self) -> None:
        """Register ``blst_fold`` (Python's casefold) on the read connection, once.

        SQLite's own LIKE and lower() fold ASCII only; ``q`` is case-insensitive for every
        script, as on MySQL.
        """
        if self._reader is None:
            raise StorageUnavailable("storage is not open")
        if getattr(self, "_functions_ready", None) is not self._reader:
            await self._reader.create_function("blst_fold", 1, _fold, deterministic=True)
            self._functions_ready = self._reader

    async def query_logs(self, user_id: int, query: LogQuery) -> list[StoredLog]:
        """One keyset page: ``id < before_id`` newest first, or ``id > after_id`` oldest first."""
        await self._reader_with_functions()
        where, args = _where(user_id, query)
        order = "ASC" if query.oldest_first else "DESC"
        rows = await self._read(
            f"SELECT {_LOG_COLUMNS} FROM user_logs WHERE {where} ORDER BY id {order} LIMIT ?",
            (*args, query.limit),
        )
        return [_stored_log(r) for r in rows]

    async def last_log_id(self, user_id: int) -> int:
        """The user's highest id, 0 when none."""
        rows = await self._read(
            "SELECT COALESCE(MAX(id), 0) FROM user_logs WHERE user_id = ?", (user_id,)
        )
        return int(rows[0][0])

    async def log_stats(self, user_id: int, query: LogQuery, bucket: str) -> list[LevelCount]:
        """Group by a prefix of the stored ``event_at`` text (it sorts and cuts cleanly)."""
        chars, suffix = _BUCKET_PREFIX[bucket]
        await self._reader_with_functions()
        where, args = _where(user_id, query, with_cursor=False)
        rows = await self._read(
            f"SELECT substr(event_at, 1, {chars}) AS bucket, level, COUNT(*) FROM user_logs "
            f"WHERE {where} GROUP BY bucket, level ORDER BY bucket DESC, level LIMIT ?",
            (*args, MAX_STAT_ROWS),
        )
        return [LevelCount(_time(r[0] + suffix), r[1], r[2]) for r in rows]


# Bucket -> (characters of "YYYY-MM-DD HH:MM:SS" kept, what completes the start time).
_BUCKET_PREFIX = {"minute": (16, ":00"), "hour": (13, ":00:00"), "day": (10, " 00:00:00")}


def _fold(text: str | None) -> str | None:
    return None if text is None else text.casefold()


def _where(user_id: int, query: LogQuery, with_cursor: bool = True) -> tuple[str, list]:
    """The WHERE clause and its arguments for `query`, always scoped to `user_id`."""
    optional = [
        ("level >= ?", query.min_level),
        ("event_at >= ?", None if query.since is None else _text(query.since)),
        ("event_at < ?", None if query.until is None else _text(query.until)),
        ("instr(blst_fold(msg), ?) > 0", None if query.q is None else query.q.casefold()),
        ("p_name = ?", query.p_name),
        ("p_description = ?", query.p_description),
        ("pid = ?", query.pid),
    ]
    if with_cursor:
        optional += [("id < ?", query.before_id), ("id > ?", query.after_id)]
    return join_filters(("user_id = ?", user_id), optional)


def _stored_log(r: Sequence) -> StoredLog:
    return StoredLog.from_row(r, _time)
