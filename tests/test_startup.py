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
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import AppProcess, ServerProcess, free_port, run_app

pytestmark = pytest.mark.slow

#: How long a failing process may take after printing its reason.
EXIT_WITHIN = 2.0


def run_failing(*args: str, cwd: Path) -> tuple[int, list[str], float]:
    """Run app.py; return its exit code, its non-empty output lines, and the seconds between
    its first line and its exit (a process that never exits fails the test after 30 s)."""
    with AppProcess(cwd, *args, cwd=cwd) as app:
        code = app.wait_exit_blocking(30)
    return code, app.lines(), app.seconds_from_first_output_to_exit()


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
    run_app(
        "--database-url", f"sqlite:///{path}", "users", "add", "someone", cwd=tmp_path, check=True
    )
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
    done = run_app("users", "add", "alice", "--password", "pw", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # stdout is the token alone (scripts capture it); where it went is said on stderr.
    assert done.stdout == hashlib.md5(b"alicepw").hexdigest() + "\n"
    assert f"sqlite:///{tmp_path / 'bot_logging.db'}" in done.stderr


# -- MySQL ------------------------------------------------------------------------------------


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
    flags = ["--user", name, "--password", password, "--db-name", database]
    with ServerProcess("", tmp_path, *flags, cwd=tmp_path) as server:
        line = server.wait_for_line("listening on")
        # The moment the line is out, a client can connect (not only "soon").
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            pass
        assert f"listening on http://127.0.0.1:{server.port}" in line and "storage mysql" in line
        server.signal(signal.SIGTERM)
        assert server.wait_exit_blocking(15) == 0
