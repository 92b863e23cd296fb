"""The database behind the server's back: users for a server process, rows read directly.

`add_user` creates a user with the project's own code (no server needed); `rows_per_batch`
and `events_per_name` read straight from the database on a connection of their own (no
server code), so they see exactly what is committed, whatever the server's connections hold;
`execute_sql` changes it the same way (to undo a migration step, say).
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from urllib.parse import unquote, urlsplit

import pymysql

from bot_logging_server.config import DatabaseURL
from support.client import Account


async def add_user(
    database_url: str, name: str | None = None, tel_id: int | None = None
) -> Account:
    """Create a user with a random token (and `tel_id`) in the database at `database_url`
    (migrating it)."""
    from bot_logging_server.accounts import create_user
    from bot_logging_server.config import build_config
    from bot_logging_server.storage import make_storage

    store = make_storage(build_config({"database_url": database_url}, environ={}))
    await store.open()
    try:
        name = name or f"u_{uuid.uuid4().hex[:10]}"
        new = await create_user(store, name, tel_id=tel_id)
        return Account(name, new.token, new.user.id)
    finally:
        await store.close()


def rows_per_batch(database_url: str, user_id: int) -> dict[str, int]:
    """``{p_name: rows}`` of one user's committed rows, on a new connection of its own.

    Blocking: called from a coroutine it holds the event loop, so nothing of the server
    under test (in the same process) can commit while it reads.
    """
    return _counts(database_url, "SELECT p_name, COUNT(*) FROM user_logs", user_id)


def events_per_name(database_url: str, user_id: int) -> dict[str, int]:
    """``{name: events}`` of one user's committed usage events; as `rows_per_batch`."""
    return _counts(database_url, "SELECT name, COUNT(*) FROM events", user_id)


def _counts(database_url: str, select: str, user_id: int) -> dict[str, int]:
    """``{first column: count}`` of `select` (a ``SELECT x, COUNT(*) FROM table``) for one
    user, grouped by its first column, on a new connection of its own."""
    parts = urlsplit(database_url)
    column = select.split()[1].rstrip(",")
    sql = select + " WHERE user_id = {} GROUP BY " + column
    if parts.scheme == "sqlite":
        conn = sqlite3.connect(unquote(parts.path[1:]), timeout=30)
        try:
            return dict(conn.execute(sql.format("?"), (user_id,)).fetchall())
        finally:
            conn.close()
    conn = pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=parts.path.lstrip("/"),
    )
    try:
        with conn.cursor() as cur:
            cur.execute(sql.format("%s"), (user_id,))
            return {name: int(count) for name, count in cur.fetchall()}
    finally:
        conn.close()


def _mysql(url: DatabaseURL) -> pymysql.connections.Connection:
    """A connection of its own to the server of `url` (no database chosen)."""
    return pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password)


def execute_sql(url: DatabaseURL, statements: Sequence[str]) -> None:
    """Run `statements` in order on the database at `url` (created when missing), on a
    connection of its own, and commit."""
    if url.scheme == "sqlite":
        with contextlib.closing(sqlite3.connect(url.path)) as db:
            for statement in statements:
                db.execute(statement)
            db.commit()
        return
    conn = _mysql(url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{url.name}` CHARACTER SET utf8mb4")
            cur.execute(f"USE `{url.name}`")
            for statement in statements:
                cur.execute(statement)
        conn.commit()
    finally:
        conn.close()


@contextlib.contextmanager
def write_locked(database_url: str, table: str) -> Iterator[None]:
    """Another connection holds `table`'s write lock for the block (SQLite: the whole
    database's, with an exclusive transaction)."""
    url = DatabaseURL.parse(database_url)
    if url.scheme == "sqlite":
        other = sqlite3.connect(url.path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    other = _mysql(url)
    try:
        with other.cursor() as cursor:
            cursor.execute(f"LOCK TABLES `{url.name}`.`{table}` WRITE")
        yield
        with other.cursor() as cursor:
            cursor.execute("UNLOCK TABLES")
    finally:
        other.close()
