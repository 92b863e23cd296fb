"""What SQLite errors mean: sqlite3's exceptions as `StorageError`s.

`translate` names the fault as SQLite names it (disk full, read-only, I/O error, locked),
never with SQL text: those a retry may fix are `StorageUnavailable` (503), a unique key met
is `DuplicateKey`, the rest `StorageError`.
"""

from __future__ import annotations

import sqlite3

from bot_logging_server.storage.base import DuplicateKey, StorageError, StorageUnavailable

__all__ = ["translate"]

_UNIQUE_FAILED = {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}
# SQLite's primary result codes (the prefix of its extended error names) after which a retry
# may work, and how a log line names them.
_RETRYABLE = {
    "SQLITE_FULL": "disk full",
    "SQLITE_READONLY": "the database is read-only",
    "SQLITE_IOERR": "disk I/O error",
    "SQLITE_CANTOPEN": "cannot open the database file",
    "SQLITE_BUSY": "the database is locked by another process",
    "SQLITE_LOCKED": "the database is locked",
    "SQLITE_PERM": "permission denied",
    "SQLITE_PROTOCOL": "file locking failed",
    "SQLITE_INTERRUPT": "the statement was interrupted",
}
_BROKEN = {
    "SQLITE_CORRUPT": "the database file is corrupt",
    "SQLITE_NOTADB": "the file is not a SQLite database",
}


def translate(exc: BaseException, cause: str = "") -> StorageError:
    """Map a sqlite3 or value error to ours, naming the fault (never SQL text).

    `cause` adds what the operating system says (see `SQLiteDatabase._diagnose`).
    """
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", None) or ""
        primary = "_".join(name.split("_")[:2])
        if isinstance(exc, sqlite3.IntegrityError) and name in _UNIQUE_FAILED:
            return DuplicateKey(f"duplicate key ({name})")
        named = f" ({name})" if name else ""
        if primary in _RETRYABLE:
            return StorageUnavailable(f"{_RETRYABLE[primary]}{named}{cause}")
        if primary in _BROKEN:
            return StorageError(f"database error: {_BROKEN[primary]}{named}")
        if not name and "locked" in str(exc).lower():
            return StorageUnavailable("the database is locked")
        return StorageError(f"database error: {type(exc).__name__}{named}")
    return StorageError(f"database error: {type(exc).__name__}")
