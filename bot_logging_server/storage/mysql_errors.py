"""What MySQL / MariaDB errors mean: the driver's exceptions as `StorageError`s.

`translate` names the fault without SQL text: `StorageUnavailable` when a retry may work
(connection lost or refused, too many connections, lock timeouts, a read past its time
limit), `Conflict` for a deadlock or a Galera certification conflict (1213), `DuplicateKey`
for a unique key met, else `StorageError`. `node_trouble` says whether the node itself is in
trouble, so that `storage.mysql` has it checked (`storage.failover`).
"""

from __future__ import annotations

import asyncio
import functools

import pymysql

from bot_logging_server.storage.base import Conflict, DuplicateKey, StorageError, StorageUnavailable

__all__ = ["node_trouble", "translate"]

# Error numbers after which a retry can succeed, and how a log line names them.
_RETRYABLE = {
    1021: "disk full",
    1040: "too many connections",
    1047: "the Galera node is not ready (out of the primary component)",
    1053: "server shutting down",
    1114: "table full (disk full?)",
    1205: "lock wait timeout",
    1213: "deadlock",
    1290: "the server is read-only",
    1317: "query interrupted",
    1927: "connection killed",
    1969: "the query ran past its time limit and was stopped",  # MariaDB max_statement_time
    2002: "cannot connect",
    2003: "cannot connect",
    2006: "server has gone away",
    2013: "lost connection",
    2055: "lost connection",
    3024: "the query ran past its time limit and was stopped",  # MySQL max_execution_time
}
_DEADLOCK = 1213  # deadlock, or a Galera certification conflict
_DUPLICATE_KEY = 1062
# Errors that say the node itself is in trouble (not the statement): the node is re-checked.
_NODE_TROUBLE = {1047, 1053, 1927, 2002, 2003, 2006, 2013, 2055}


@functools.lru_cache(maxsize=64)
def translate(exc: BaseException) -> StorageError:
    """Map a driver, network or value exception to our own (never carrying SQL text)."""
    if isinstance(exc, (OSError, asyncio.TimeoutError, pymysql.err.InterfaceError)):
        return StorageUnavailable(f"database unreachable: {type(exc).__name__}")
    if isinstance(exc, pymysql.err.MySQLError) and exc.args:
        code = exc.args[0]
        if code in (2002, 2003):
            return StorageUnavailable(f"cannot connect to the database server (MySQL error {code})")
        if code == _DEADLOCK:
            return Conflict(f"transaction rolled back by a conflict (MySQL error {code})")
        if code in _RETRYABLE:
            return StorageUnavailable(f"{_RETRYABLE[code]} (MySQL error {code})")
        if code == _DUPLICATE_KEY:
            return DuplicateKey(f"duplicate key (MySQL error {code})")
        return StorageError(f"database error (MySQL error {code})")
    return StorageError(f"database error: {type(exc).__name__}")


def node_trouble(exc: BaseException) -> bool:
    """Whether `exc` says the database node is in trouble (rather than the statement)."""
    if isinstance(exc, (OSError, asyncio.TimeoutError, pymysql.err.InterfaceError)):
        return True
    return (
        isinstance(exc, pymysql.err.MySQLError)
        and bool(exc.args)
        and (exc.args[0] in _NODE_TROUBLE)
    )
