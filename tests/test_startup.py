"""A server or CLI that cannot start says why in one line and exits 1 at once, as a process.

Every case runs ``python3 app.py`` for real: a port already in use, a SQLite file that is
not a database or cannot be written, a MySQL server that is down or refuses the password,
and the ``users`` commands on the same. Each must exit 1 within 2 s of saying why (a
supervisor then restarts it), print exactly one line naming the cause, and never print
``listening on`` (it is printed only once the server listens). ``users add`` says which
database it wrote to, on stderr, so that the token stays the only line on stdout.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from realserver import ROOT, free_port

from bot_logging_server.config import DatabaseURL

pytestmark = pytest.mark.slow

APP = str(ROOT / "app.py")
#: How long a failing process may take after printing its reason.
EXIT_WITHIN = 2.0


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("LOGGER_", "BOT_LOGGING"))}


def run_failing(*args: str, cwd: Path) -> tuple[int, list[str], float]:
    """Run app.py; return its exit code, its non-empty output lines, and the seconds between
    its first line and its exit (a process that never exits is killed after 30 s)."""
    out_path = cwd / f"out-{uuid.uuid4().hex[:6]}.txt"
    first_line_at = None
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, APP, *args],
            cwd=cwd,
            env=_env(),
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            if first_line_at is None and out_path.stat().st_size:
                first_line_at = time.monotonic()
            time.sleep(0.01)
        ended = time.monotonic()
        code = proc.poll()
    finally:
        # The whole group: a server that hangs may have started workers.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    lines = [line for line in out_path.read_text(errors="replace").splitlines() if line.strip()]
    assert code is not None, "still running after 30 s; it printed:\n" + "\n".join(lines)
    return code, lines, ended - (first_line_at or ended)


@contextlib.contextmanager
def port_in_use() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` made unwritable: immutable when we are root (root ignores modes), else 0444."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: cannot make a file read-only")
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"chattr +i is not supported here: {done.stderr!r}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)


def assert_one_line_failure(code: int, lines: list[str], took: float, *needles: str) -> None:
    assert code == 1, lines
    assert len(lines) == 1, "\n".join(lines)
    assert "Traceback" not in lines[0]
    assert "listening on" not in lines[0]
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    assert took < EXIT_WITHIN, f"exited {took:.2f} s after saying why"


def a_sqlite_database(tmp_path: Path) -> Path:
    """A real, migrated database file with one user (made by the CLI)."""
    path = tmp_path / "real.db"
    done = subprocess.run(
        [sys.executable, APP, "--database-url", f"sqlite:///{path}", "users", "add", "someone"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


# -- SQLite -----------------------------------------------------------------------------------


@pytest.mark.parametrize("server", [[], ["--workers", "2"], ["--http-server", "uvicorn"]])
def test_sqlite_server_on_a_port_in_use_exits_1_with_one_line(tmp_path, server):
    with port_in_use() as port:
        code, lines, took = run_failing(
            "--port", str(port), "--database-url", f"sqlite:///{tmp_path / 'a.db'}", *server,
            cwd=tmp_path,
        )  # fmt: skip
    assert_one_line_failure(code, lines, took, f"cannot listen on 127.0.0.1:{port}", "in use")
    print(f"\nport in use {server}: exit {code} {took:.2f} s after: {lines[0]}")


def _not_a_database(tmp_path: Path) -> Path:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 100)
    return path


@pytest.mark.parametrize("server", [[], ["--workers", "2"], ["--http-server", "uvicorn"]])
def test_sqlite_server_on_a_file_that_is_not_a_database_exits_1_with_one_line(tmp_path, server):
    path = _not_a_database(tmp_path)
    code, lines, took = run_failing(
        "--port", str(free_port()), "--database-url", f"sqlite:///{path}", *server, cwd=tmp_path
    )
    assert_one_line_failure(code, lines, took, "start-up failed", str(path), "not a database")
    print(f"\nnot a database {server}: exit {code} {took:.2f} s after: {lines[0]}")


@pytest.mark.parametrize("command", [["users", "list"], ["users", "add", "newbie"]])
def test_users_commands_on_a_file_that_is_not_a_database_exit_1_with_one_line(tmp_path, command):
    path = _not_a_database(tmp_path)
    code, lines, took = run_failing("--database-url", f"sqlite:///{path}", *command, cwd=tmp_path)
    assert_one_line_failure(code, lines, took, "Error:", str(path), "not a database")


def test_sqlite_server_on_a_read_only_file_exits_1_with_one_line(tmp_path):
    path = a_sqlite_database(tmp_path)
    with read_only(path):
        code, lines, took = run_failing(
            "--port", str(free_port()), "--database-url", f"sqlite:///{path}", cwd=tmp_path
        )
    assert_one_line_failure(code, lines, took, "start-up failed", str(path), "readonly")
    print(f"\nread-only file: exit {code} {took:.2f} s after: {lines[0]}")


def test_users_add_on_a_read_only_file_exits_1_with_one_line(tmp_path):
    path = a_sqlite_database(tmp_path)
    with read_only(path):
        code, lines, took = run_failing(
            "--database-url", f"sqlite:///{path}", "users", "add", "newbie", cwd=tmp_path
        )
    assert_one_line_failure(code, lines, took, "Error:", "readonly")


def test_users_add_says_on_stderr_which_database_it_wrote_to(tmp_path):
    done = subprocess.run(
        [sys.executable, APP, "users", "add", "alice", "--password", "pw"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # stdout is the token alone (scripts capture it); where it went is said on stderr.
    assert done.stdout == hashlib.md5(b"alicepw").hexdigest() + "\n"
    assert f"sqlite:///{tmp_path / 'bot_logging.db'}" in done.stderr


# -- MySQL ------------------------------------------------------------------------------------


@pytest.fixture
def mysql_account(mysql_server: DatabaseURL) -> Iterator[tuple[str, str, str]]:
    """A MySQL account of this test only (name, password, database), dropped at the end."""
    name, password, database = (
        f"blst_u{uuid.uuid4().hex[:8]}",
        uuid.uuid4().hex,
        f"blst_{uuid.uuid4().hex[:12]}",
    )
    conn = pymysql.connect(
        host=mysql_server.host,
        port=mysql_server.port,
        user=mysql_server.user,
        password=mysql_server.password,
    )
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{database}`")
            for host in ("localhost", "127.0.0.1"):
                cur.execute(f"CREATE USER '{name}'@'{host}' IDENTIFIED BY %s", (password,))
                cur.execute(f"GRANT ALL ON `{database}`.* TO '{name}'@'{host}'")
        yield name, password, database
    finally:
        with conn.cursor() as cur:
            for host in ("localhost", "127.0.0.1"):
                cur.execute(f"DROP USER IF EXISTS '{name}'@'{host}'")
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()


@pytest.mark.parametrize("command", [["--port", "PORT"], ["users", "list"], ["users", "add", "x"]])
def test_a_wrong_mysql_password_is_one_line_naming_the_account(tmp_path, mysql_account, command):
    name, _password, database = mysql_account
    flags = ["--user", name, "--password", "not-the-password", "--db-name", database]
    args = [str(free_port()) if a == "PORT" else a for a in command]
    code, lines, took = run_failing(*flags, *args, cwd=tmp_path)
    assert_one_line_failure(code, lines, took, f"access denied for user '{name}'", "1045")
    assert "not-the-password" not in lines[0]
    print(f"\nwrong password {command[0]}: exit {code} {took:.2f} s after: {lines[0]}")


@pytest.mark.parametrize("server", [[], ["--workers", "2"], ["--http-server", "uvicorn"]])
def test_a_mysql_server_that_is_down_is_one_line(tmp_path, server):
    with port_in_use() as nothing_there:
        pass  # closed again: connections to it are refused
    url = f"mysql://root@127.0.0.1:{nothing_there}/nothing"
    code, lines, took = run_failing(
        "--port", str(free_port()), "--database-url", url, *server, cwd=tmp_path
    )
    assert_one_line_failure(code, lines, took, "start-up failed", "cannot connect", "2003")
    print(f"\nMySQL down {server}: exit {code} {took:.2f} s after: {lines[0]}")


def test_mysql_server_on_a_port_in_use_exits_1_before_touching_the_database(
    tmp_path, mysql_account
):
    name, password, database = mysql_account
    with port_in_use() as port:
        code, lines, took = run_failing(
            "--port", str(port), "--user", name, "--password", password, "--db-name", database,
            cwd=tmp_path,
        )  # fmt: skip
    assert_one_line_failure(code, lines, took, f"cannot listen on 127.0.0.1:{port}")


def test_listening_is_printed_once_the_port_accepts_connections(tmp_path, mysql_account):
    name, password, database = mysql_account
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, APP, "--port", str(port), "--user", name, "--password", password,
         "--db-name", database],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        # The moment the line is out, a client can connect (not only "soon").
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        assert f"listening on http://127.0.0.1:{port}" in line and "storage mysql" in line
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
        proc.stdout.close()
