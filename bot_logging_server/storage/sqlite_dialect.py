"""SQLite SQL: the `SQLiteDialect`, and the case fold its text search calls.

Times are stored as text ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC), which sorts, and a stats
bucket is a prefix of it. SQLite's own LIKE and lower() fold ASCII only, so the text search
compares Python's casefold, registered on the read connections as ``blst_fold`` (`fold`) by
`storage.sqlite`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from bot_logging_server.storage.dialect import Dialect, is_word_char

__all__ = ["SQLiteDialect", "fold", "holds_word"]

# Bucket -> (characters of "YYYY-MM-DD HH:MM:SS" kept, what completes the start time).
_BUCKET_PREFIX = {"minute": (16, ":00"), "hour": (13, ":00:00"), "day": (10, " 00:00:00")}


class SQLiteDialect(Dialect):
    """SQLite SQL: ``?`` placeholders, times as sortable text, a registered case fold."""

    name = "sqlite"

    def decode_time(self, value: Any) -> datetime:
        """Stored text back to a datetime."""
        return datetime.fromisoformat(value)

    def pinned_index(self, index: str) -> str:
        """``INDEXED BY index``: without statistics for every index (``ANALYZE``), SQLite
        may read a user's rows through another index of theirs and sort them all."""
        return f"INDEXED BY {index}"

    def holds(self, column: str, text: str, anywhere: bool = False) -> tuple[str, tuple]:
        """On Python's casefold (SQLite's own LIKE and lower() fold ASCII only, and q must
        fold every script): ``instr`` on ``blst_fold``, or ``blst_holds_word`` (`holds_word`)
        at the start of a word; both registered on the read connections."""
        if anywhere or not is_word_char(text[:1]):
            return f"instr(blst_fold({column}), ?) > 0", (text.casefold(),)
        return f"blst_holds_word({column}, ?)", (text.casefold(),)

    def starts_with(self, column: str, text: str) -> tuple[str, object]:
        """The casefolded `column` starts with the casefolded `text` (as `contains`)."""
        return f"instr(blst_fold({column}), ?) = 1", text.casefold()

    def bucket(self, column: str, width: str) -> tuple[str, Callable[[Any], datetime]]:
        """A prefix of the stored time text (it sorts and cuts cleanly)."""
        chars, suffix = _BUCKET_PREFIX[width]
        return f"substr({column}, 1, {chars})", lambda value: datetime.fromisoformat(value + suffix)

    def on_conflict(self, keys: Sequence[str]) -> str:
        """``ON CONFLICT (keys) DO UPDATE SET``."""
        return f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET"

    def new_value(self, column: str) -> str:
        """``excluded.column``."""
        return f"excluded.{column}"


def fold(text: str | None) -> str | None:
    """`text` casefolded (None stays None): ``blst_fold``, which `SQLiteDialect` searches with."""
    return None if text is None else text.casefold()


def holds_word(text: str | None, word: str) -> bool:
    """Whether casefolded `text` holds `word` (casefolded) where no word character precedes
    it: ``blst_holds_word``, `SQLiteDialect.holds` at the start of a word."""
    if text is None:
        return False
    folded = text.casefold()
    at = folded.find(word)
    while at >= 0:
        if at == 0 or not is_word_char(folded[at - 1]):
            return True
        at = folded.find(word, at + 1)
    return False
