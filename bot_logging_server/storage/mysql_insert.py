"""MySQL's bulk write: multi-row ``INSERT`` statements with their values written in (not sent
as parameters), each distinct value of a column escaped once (`insert_statements`).

Group commit writes many rows that repeat most of their values (the owner, the process
names, levels, times; an events batch's source, session, client, receive time). Profiling
batches of 100 to 1000 rows showed the driver's per-value escaping as the largest cost of a
write, then the Python work per value. So the statement is built a column at a time, at C
speed (sets, maps and joins), and each distinct value of a column is escaped once
(`_column_literals`).

The literals are the driver's own: integers and text are written as pymysql writes them
(``str`` of the integer; ``escape_string`` between quotes, as `_backslash_quoted`, while the
session has backslash escapes: ``NO_BACKSLASH_ESCAPES`` off) without its type dispatch; any
other value, or text in a session without backslash escapes, goes through the connection's
``escape``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pymysql.constants import SERVER_STATUS

__all__ = ["insert_statements"]


def _backslash_quoted(text: str) -> str:
    """`text` as pymysql writes it in a session with backslash escapes (its
    ``escape_string`` between quotes: the same seven characters escaped), by chained
    replaces: several times faster than its ``str.translate`` (the backslash first)."""
    return (
        "'"
        + text.replace("\\", "\\\\")
        .replace("\0", "\\0")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\x1a", "\\Z")
        .replace('"', '\\"')
        .replace("'", "\\'")
        + "'"
    )


_INT, _STR = frozenset({int}), frozenset({str})


def _column_literals(column: tuple, escape: Callable[[Any], str], backslash: bool) -> list[str]:
    """The literals of one column's values, each distinct value written once.

    Equal values of different types (``1``, ``True``, ``1.0``) are the same number in SQL,
    so they may share a literal. A column of integers is written as pymysql's
    ``escape_int`` writes them, one of text (with `backslash` escapes) as `_backslash_quoted`,
    any other through the connection's `escape`; all at C speed but the escaping itself.
    """
    distinct = set(column)
    if len(distinct) == 1:
        return [escape(column[0])] * len(column)
    kinds = set(map(type, column))
    if kinds == _INT:
        return list(map(str, column))
    if kinds == _STR and backslash:
        if len(distinct) == len(column):
            return list(map(_backslash_quoted, column))
        known = dict(zip(distinct, map(_backslash_quoted, distinct), strict=True))
    else:
        known = {value: escape(value) for value in distinct}
    return list(map(known.__getitem__, column))


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def insert_statements(
    table: str, columns: Sequence[str], rows: Sequence[Sequence], conn: Any, most: int
) -> Iterator[bytes]:
    """Multi-row ``INSERT`` statements holding `rows` (values in `columns` order), written
    as `conn` (a pymysql or aiomysql connection) escapes values, each at most `most` bytes
    long (but for a single row longer than that)."""
    if not rows:
        return
    prefix = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ".encode()
    backslash = not conn.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES
    # A column at a time: its values' literals, then the rows' tuples of literals back.
    literals = [
        _column_literals(column, conn.escape, backslash) for column in zip(*rows, strict=True)
    ]
    if len(literals) != len(columns):
        raise ValueError(f"rows of {len(literals)} values for {len(columns)} columns")
    tuples = list(map(",".join, zip(*literals, strict=True)))
    whole = "(" + "),(".join(tuples) + ")"
    # A character takes at most 4 bytes: most groups are one statement, built at once.
    if len(prefix) + 4 * len(whole) <= most:
        yield prefix + _encode(whole)
        return
    parts: list[bytes] = []
    size = len(prefix)
    for part in map(_encode, map("({})".format, tuples)):
        if parts and size + len(part) + 1 > most:
            yield prefix + b",".join(parts)
            parts, size = [], len(prefix)
        parts.append(part)
        size += len(part) + 1
    yield prefix + b",".join(parts)
