"""MySQL's bulk write (`storage.mysql_insert`): the values written into its multi-row INSERTs
are the driver's own literals, whether the session has backslash escapes or not, and text of
every kind is stored exactly."""

from __future__ import annotations

from datetime import datetime

import aiomysql
import pytest

from bot_logging_server.config import DatabaseURL
from bot_logging_server.storage import LogRow, mysql_insert
from bot_logging_server.storage.mysql_insert import insert_statements

TEXTS = [
    "plain",
    "it's",
    'say "hi"',
    "back\\slash",
    "\\'",
    "nul\x00byte",
    "line\nfeed\rreturn",
    "ctrl-z\x1a",
    "ünïcödé ✓ 𝄞",
    "",
    "%s %% ?",
]
# No two equal as keys (1 == True == 1.0 share a literal, as they are the same SQL number).
OTHERS = [-5, 2**63 - 1, True, None, 1.5, datetime(2026, 1, 2, 3, 4, 5, 6)]
MOST = 1_000_000  # bytes a statement may take
MODES = ["STRICT_ALL_TABLES", "STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES"]


async def _connect(url: str, sql_mode: str) -> aiomysql.Connection:
    parsed = DatabaseURL.parse(url)
    conn = await aiomysql.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.user,
        password=parsed.password or "",
        db=parsed.name,
        charset="utf8mb4",
        autocommit=True,
    )
    async with conn.cursor() as cur:
        await cur.execute(f"SET sql_mode = '{sql_mode}'")
    return conn


@pytest.mark.parametrize("sql_mode", MODES)
async def test_every_value_is_written_as_the_driver_escapes_it(mysql_database, sql_mode):
    conn = await _connect(mysql_database, sql_mode)
    # Columns of text only (each value once, or repeated), of integers only, of one value,
    # and of mixed types: each is written its own way.
    columns = [TEXTS, TEXTS * 2, [0, -5, 2**63 - 1, 7, 7], ["same"] * 3, TEXTS + OTHERS]
    try:
        for values in columns:
            (statement,) = insert_statements("t", ["a", "b"], [(v, v) for v in values], conn, MOST)
            expected = ",".join(f"({conn.escape(v)},{conn.escape(v)})" for v in values)
            assert statement == f"INSERT INTO t (a, b) VALUES {expected}".encode()
    finally:
        conn.close()


@pytest.mark.parametrize("sql_mode", MODES)
async def test_text_of_every_kind_is_stored_exactly(mysql_database, sql_mode):
    conn = await _connect(mysql_database, sql_mode)
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "CREATE TEMPORARY TABLE texts (n INT, v VARCHAR(64) CHARACTER SET utf8mb4 "
                "COLLATE utf8mb4_bin)"
            )
            rows = [(n, text) for n, text in enumerate(TEXTS * 2)]  # repeated: written once
            for statement in insert_statements("texts", ["n", "v"], rows, conn, MOST):
                await cur.execute(statement)
            await cur.execute("SELECT n, v FROM texts ORDER BY n")
            assert list(await cur.fetchall()) == rows
    finally:
        conn.close()


def test_rows_of_the_wrong_width_are_refused():
    class Conn:
        server_status = 0
        escape = repr

    with pytest.raises(ValueError):
        list(insert_statements("t", ["a", "b"], [(1, 2), (3,)], Conn(), MOST))
    with pytest.raises(ValueError):
        list(insert_statements("t", ["a", "b"], [(1, 2, 3)], Conn(), MOST))


@pytest.mark.parametrize("database_url", ["mysql"], indirect=True)
async def test_the_mysql_writer_escapes_each_distinct_value_of_a_group_once(
    storage, user, monkeypatch
):
    """The speed of large batches: the driver's escaping, remembered for the group."""
    escaped = []
    escape, quote = aiomysql.Connection.escape, mysql_insert._backslash_quoted

    def counting(self, value):
        escaped.append(value)
        return escape(self, value)

    def counting_text(value):
        escaped.append(value)
        return quote(value)

    monkeypatch.setattr(aiomysql.Connection, "escape", counting)
    monkeypatch.setattr(mysql_insert, "_backslash_quoted", counting_text)
    at = datetime(2020, 5, 5, 12, 22, 22)
    rows = [LogRow(1, "p", "d", 40, f"m{i % 3}", False, 2, at, at) for i in range(200)]
    await storage.insert_logs(user.id, rows, datetime(2026, 1, 1))
    # Each distinct value once: three messages, one process name, one logger, not 200 each.
    # (Only this batch's own values are counted: the app's background services may write
    # meanwhile on other connections.)
    assert sorted(v for v in escaped if v in ("m0", "m1", "m2")) == ["m0", "m1", "m2"]
    assert escaped.count("p") == escaped.count("d") == 1
    assert await storage.count_logs(user.id) == 200
