"""MySQL / MariaDB SQL: the `MySQLDialect`, and the ``%s`` placeholders its driver takes.

Times are DATETIME(6) columns (the driver returns datetimes), the text search is ``LIKE``
under an explicit case-insensitive collation, a stats bucket is integer division of the
numeric DATETIME, and an upsert is ``ON DUPLICATE KEY UPDATE``. `storage.mysql` runs the
statements, each through `format_style`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from bot_logging_server.storage.dialect import Dialect, is_word_char, multi_row_insert

__all__ = ["MySQLDialect", "format_style"]

# Bucket -> (divisor of the numeric DATETIME, how the quotient reads as a time).
_BUCKETS = {
    "minute": (100, "%Y%m%d%H%M"),
    "hour": (10_000, "%Y%m%d%H"),
    "day": (1_000_000, "%Y%m%d"),
}


def _like_pattern(text: str, anywhere: bool = True) -> str:
    """``%text%`` (``text%`` unless `anywhere`) for ``LIKE ... ESCAPE '|'``, with ``|``,
    ``%`` and ``_`` in `text` escaped."""
    escaped = text.replace("|", "||").replace("%", "|%").replace("_", "|_")
    return f"%{escaped}%" if anywhere else f"{escaped}%"


def _pcre_escaped(text: str) -> str:
    """`text` as a PCRE pattern that matches it literally: every ASCII character but a letter
    or digit behind a backslash (which makes any such character plain)."""
    return "".join("\\" + char if char.isascii() and not char.isalnum() else char for char in text)


class MySQLDialect(Dialect):
    """MySQL/MariaDB SQL: ``%s`` placeholders, DATETIME(6) columns, row locks, index hints."""

    name = "mysql"
    lock_rows = " FOR UPDATE"
    share_rows = " LOCK IN SHARE MODE"
    exact_collation = " COLLATE utf8mb4_bin"

    def decode_time(self, value: Any) -> datetime:
        """The driver already returns a DATETIME as a datetime."""
        return value

    def holds(self, column: str, text: str, anywhere: bool = False) -> tuple[str, tuple]:
        """``LIKE`` under an explicit case-insensitive collation (not the database's own);
        at the start of a word, also a ``REGEXP`` (PCRE) that no word character precedes
        the text (``LIKE`` first: it is cheaper, and rules most rows out)."""
        like = f"{column} COLLATE utf8mb4_general_ci LIKE ? ESCAPE '|'"
        if anywhere or not is_word_char(text[:1]):
            return like, (_like_pattern(text),)
        pattern = r"(*UCP)(?i)(?<!\w)" + _pcre_escaped(text)
        return f"({like} AND {column} REGEXP ?)", (_like_pattern(text), pattern)

    def starts_with(self, column: str, text: str) -> tuple[str, object]:
        """``LIKE 'text%'`` under the same case-insensitive collation as `contains`."""
        return (
            f"{column} COLLATE utf8mb4_general_ci LIKE ? ESCAPE '|'",
            _like_pattern(text, anywhere=False),
        )

    def bucket(self, column: str, width: str) -> tuple[str, Callable[[Any], datetime]]:
        """``column DIV 10^k``: a DATETIME in numeric context is YYYYMMDDhhmmss.ffffff, and
        integer grouping is much cheaper than formatting a string."""
        divisor, pattern = _BUCKETS[width]
        return f"{column} DIV {divisor}", lambda value: datetime.strptime(str(value), pattern)

    def index_hint(self, index: str) -> str:
        """``FORCE INDEX (index)``."""
        return f"FORCE INDEX ({index})"

    def insert_unless_exists(self, table: str, columns: Sequence[str], keys: Sequence[str]) -> str:
        """``ON DUPLICATE KEY UPDATE`` of a key to itself: changes nothing, so its rowcount is
        0 (``INSERT IGNORE`` would turn every error into a warning, and warn on a duplicate)."""
        insert = multi_row_insert(table, tuple(columns), 1)
        return f"{insert} ON DUPLICATE KEY UPDATE {keys[0]} = {keys[0]}"

    def on_conflict(self, keys: Sequence[str]) -> str:
        """``ON DUPLICATE KEY UPDATE`` (any unique key: the table's own)."""
        return "ON DUPLICATE KEY UPDATE"

    def new_value(self, column: str) -> str:
        """``VALUES(column)`` (MariaDB's spelling; MySQL 8.0.20+ accepts it with a
        deprecation note)."""
        return f"VALUES({column})"


@functools.lru_cache(maxsize=1024)
def format_style(sql: str) -> str:
    """`sql` written with ``?`` placeholders, in pymysql's ``%s`` style.

    The families' SQL holds no ``?`` but placeholders (values are always arguments).
    """
    return sql.replace("%", "%%").replace("?", "%s")
