"""The storages the ingest benchmark runs the server on, and how it counts their rows.

A scratch MariaDB database (created and dropped here), a SQLite file in a temporary
directory, and no database at all for bench/floor_app.py (the HTTP stack's own cost).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import uuid


class Backend:
    """Where the server stores rows, and how the benchmark counts them."""

    name: str
    url: str

    def setup(self) -> None:
        """Create the storage before the server starts."""

    def teardown(self) -> None:
        """Remove the storage and everything in it."""

    def count(self) -> int:
        """The rows in ``user_logs`` now."""
        ...


class MySQLBackend(Backend):
    """A scratch database ``bench_<random>`` on a MariaDB server, dropped at teardown."""

    def __init__(self, host: str, port: int, user: str, password: str) -> None:
        import pymysql

        self.name = "mysql"
        self._pymysql = pymysql
        self._args = {"host": host, "port": port, "user": user, "password": password}
        self.db = f"bench_{uuid.uuid4().hex[:10]}"
        cred = user + (f":{password}" if password else "")
        self.url = f"mysql://{cred}@{host}:{port}/{self.db}"

    def _run(self, sql: str) -> tuple:
        conn = self._pymysql.connect(**self._args, autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchone() or ()
        finally:
            conn.close()

    def setup(self) -> None:
        """Create the scratch database (the server makes its tables)."""
        self._run(f"CREATE DATABASE `{self.db}` CHARACTER SET utf8mb4")

    def teardown(self) -> None:
        """Drop the scratch database."""
        self._run(f"DROP DATABASE IF EXISTS `{self.db}`")

    def count(self) -> int:
        """``COUNT(*)`` of the scratch database's ``user_logs``."""
        return int(self._run(f"SELECT COUNT(*) FROM `{self.db}`.user_logs")[0])


class SQLiteBackend(Backend):
    """A SQLite file in a temporary directory, removed at teardown."""

    def __init__(self) -> None:
        self.name = "sqlite"
        self._dir = tempfile.mkdtemp(prefix="bench_sqlite_")
        self.path = os.path.join(self._dir, "bench.db")
        self.url = f"sqlite:///{self.path}"

    def teardown(self) -> None:
        """Remove the temporary directory and the file in it."""
        shutil.rmtree(self._dir, ignore_errors=True)

    def count(self) -> int:
        """``COUNT(*)`` of the file's ``user_logs``."""
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM user_logs").fetchone()[0])
        finally:
            conn.close()


class FloorBackend(Backend):
    """No database: bench/floor_app.py, the HTTP stack's own cost (rows are not counted)."""

    def __init__(self, kind: str) -> None:
        self.name = f"floor-{kind}"
        self.url = ""

    def count(self) -> int:
        """Always 0: the floor app stores nothing."""
        return 0
