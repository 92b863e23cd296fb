"""The `Dialect`: how a backend's SQL differs from the SQL the table families write once.

The families (`storage.users`, `storage.logs`...) write their SQL once, with ``?``
placeholders, and ask the backend's dialect for the rest: placeholders, times, the text
search, the stats bucket, row locks, upsert, index hints. `storage.mysql_dialect` and
`storage.sqlite_dialect` fill it in. Both backends are sent times as `time_text`, and build
multi-row INSERTs with `multi_row_insert`.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

__all__ = ["Dialect", "is_word_char", "multi_row_insert", "time_text"]


def time_text(moment: datetime) -> str:
    """`moment` as ``YYYY-MM-DD HH:MM:SS.ffffff``: how both backends are sent a time."""
    return moment.isoformat(sep=" ", timespec="microseconds")


def is_word_char(char: str) -> bool:
    """Whether `char` is part of a word: a letter, a digit or ``_`` (a regular expression's
    ``\\w``; MySQL's FULLTEXT parser splits words at the same characters)."""
    return char.isalnum() or char == "_"


@functools.lru_cache(maxsize=256)
def multi_row_insert(table: str, columns: tuple[str, ...], rows: int) -> str:
    """``INSERT INTO table (columns) VALUES (?, ...), ...`` with `rows` VALUES tuples."""
    values = "(" + ", ".join(["?"] * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([values] * rows)


class Dialect(abc.ABC):
    """How a backend's SQL differs from the SQL the table families write once.

    The families write ``?`` placeholders; a backend with another style converts them (the
    `Database` does, on every statement). Times are sent as `time_text` by both backends.
    """

    #: Short backend name: ``"mysql"`` or ``"sqlite"``.
    name: str
    #: Appended to a SELECT that reads rows the same transaction is about to change.
    lock_rows: str = ""
    #: Appended to a SELECT whose rows must not change until the transaction ends (others
    #: may read them meanwhile).
    share_rows: str = ""
    #: Appended to a text column to compare it exactly (case and accents count).
    exact_collation: str = ""

    def encode_time(self, moment: datetime) -> object:
        """`moment` as a statement argument."""
        return time_text(moment)

    @abc.abstractmethod
    def decode_time(self, value: Any) -> datetime:
        """A time column's value, as the driver returns it, as a naive UTC datetime."""

    @abc.abstractmethod
    def holds(self, column: str, text: str, anywhere: bool = False) -> tuple[str, tuple]:
        """A clause true when `column` holds `text` in any letter case, and its arguments.

        Unless `anywhere`, `text` must start where a word of `column` starts when its own
        first character is a word character (`is_word_char`): ``time`` holds in "Timeout"
        and "a time", not in "runtime". Wildcard characters in `text` are plain characters.
        """

    @abc.abstractmethod
    def starts_with(self, column: str, text: str) -> tuple[str, object]:
        """A clause true when `column` starts with `text` in any letter case, and its one
        argument. Wildcard characters in `text` are plain characters.
        """

    @abc.abstractmethod
    def bucket(self, column: str, width: str) -> tuple[str, Callable[[Any], datetime]]:
        """An expression grouping the time `column` by `width` (one of `BUCKETS`), and how
        to read the expression's value back as the start of its bucket."""

    def index_hint(self, index: str) -> str:
        """Text after ``FROM table`` that makes the planner use `index` ("" when the backend
        has no such hint, and then the families skip the work of deciding)."""
        return ""

    def pinned_index(self, index: str) -> str:
        """Text after ``FROM table`` that pins an ordered read to `index` where the planner
        may misjudge it ("" where it does not: MySQL's choice is checked with EXPLAIN)."""
        return ""

    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        keys: Sequence[str],
        *,
        rows: int = 1,
        add: Sequence[str] = (),
        keep: Sequence[str] = (),
    ) -> str:
        """An INSERT of `rows` rows of `columns` that, for each row whose unique `keys`
        exist already, updates that row instead: a column in `add` grows by the new value,
        one in `keep` keeps its value, every other non-key column takes the new value."""
        sets = []
        for column in columns:
            if column in keys or column in keep:
                continue
            new = self.new_value(column)
            sets.append(f"{column} = {column} + {new}" if column in add else f"{column} = {new}")
        insert = multi_row_insert(table, tuple(columns), rows)
        return f"{insert} {self.on_conflict(keys)} {', '.join(sets)}"

    def insert_unless_exists(self, table: str, columns: Sequence[str], keys: Sequence[str]) -> str:
        """An INSERT of one row of `columns` that, when a row with the same unique `keys`
        exists, does nothing (no error, no warning); its rowcount is 1 when it inserted, else 0.

        A row another transaction inserted and has not committed yet is waited for.
        """
        insert = multi_row_insert(table, tuple(columns), 1)
        return f"{insert} ON CONFLICT ({', '.join(keys)}) DO NOTHING"

    @abc.abstractmethod
    def on_conflict(self, keys: Sequence[str]) -> str:
        """What follows an INSERT to update the row whose unique `keys` exist already."""

    @abc.abstractmethod
    def new_value(self, column: str) -> str:
        """In `on_conflict`'s assignments: the value the INSERT tried to give `column`."""
