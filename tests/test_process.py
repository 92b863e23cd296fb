"""The real thing, as processes: ``python3 app.py`` serving, and the ``users`` CLI.

The server is started on a free port, talked to over a socket exactly as the real client
does (``//send_logs``, kept-alive connection), and always killed at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import signal
import sqlite3

from support import ServerProcess, client_body, client_record, run_app


def send_as_the_client(port: int, user: str, token: str) -> list[dict]:
    """Three batches on one kept-alive connection, exactly as RemoteLogger sends them."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    answers = []
    for batch in range(3):
        logs = [client_record(i) for i in range(10)]
        logs[3]["msg"] = {"batch": batch, "detail": [1, 2, 3]}  # a non-string msg
        conn.request(
            "POST",
            "//send_logs",
            body=json.dumps(client_body(user, logs)),
            headers={"Content-Type": "application/json", "X-User-Token": token},
        )
        response = conn.getresponse()
        assert response.getheader("Content-Type") == "application/json"
        answers.append(json.loads(response.read()))
    conn.close()
    return answers


def test_app_py_on_the_sqlite_default_with_a_cli_user(tmp_path):
    """No database options: SQLite in ./bot_logging.db; the README's path for a new user."""
    added = run_app("users", "add", "alice", "--password", "pw", cwd=tmp_path, check=True)
    token = added.stdout.strip()
    assert token == hashlib.md5(b"alicepw").hexdigest()
    with ServerProcess("", tmp_path, cwd=tmp_path) as server:
        server.wait_ready_blocking()
        answers = send_as_the_client(server.port, "alice", token)
    assert answers == [{"code": 200, "message": "Logs added successfully", "added": 10}] * 3
    assert (tmp_path / "bot_logging.db").exists()
    listing = run_app("users", "list", cwd=tmp_path)
    assert "alice" in listing.stdout and token not in listing.stdout
    with contextlib.closing(sqlite3.connect(tmp_path / "bot_logging.db")) as db:
        assert db.execute("SELECT COUNT(*) FROM user_logs").fetchone() == (30,)


def test_app_py_on_mysql_with_the_originals_four_flags(tmp_path, mysql_database):
    from bot_logging_server.config import DatabaseURL

    url = DatabaseURL.parse(mysql_database)
    db_flags = ["--user", url.user, "--password", url.password, "--db-name", url.name]
    added = run_app(*db_flags, "users", "add", "proc_bob", cwd=tmp_path, check=True)
    token = added.stdout.strip()
    with ServerProcess("", tmp_path, *db_flags, cwd=tmp_path) as server:
        port = server.wait_ready_blocking().port
        answers = send_as_the_client(port, "proc_bob", token)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/send_logs", body=b"{}", headers={"X-User-Token": token})
        bad = conn.getresponse()
        assert (bad.status, json.loads(bad.read())["message"]) == (400, "BadRequest")
        conn.close()
        server.signal(signal.SIGTERM)
        assert server.wait_exit_blocking(timeout=15) == 0
        output = server.output()
    assert answers == [{"code": 200, "message": "Logs added successfully", "added": 10}] * 3
    first_line = output.splitlines()[0]
    assert "storage mysql" in first_line and f"http://127.0.0.1:{port}" in first_line
    removed = run_app(*db_flags, "users", "remove", "proc_bob", cwd=tmp_path)
    assert removed.returncode == 0 and "30 log records" in removed.stdout


def test_environment_variables_select_mysql_like_the_flags(tmp_path, mysql_database):
    from bot_logging_server.config import DatabaseURL

    url = DatabaseURL.parse(mysql_database)
    env = {
        "LOGGER_DB_USER": url.user,
        "LOGGER_DB_PASSWORD": url.password,
        "LOGGER_DB_NAME": url.name,
    }
    result = run_app("users", "list", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "bot_logging.db").exists()


def test_server_that_cannot_reach_its_database_exits_1_with_a_clear_line(tmp_path):
    url = "mysql://root@127.0.0.1:1/nothing"
    with ServerProcess(url, tmp_path, cwd=tmp_path) as server:
        assert server.wait_exit_blocking(timeout=60) == 1
    output = server.output()
    assert "start-up failed" in output and "cannot connect" in output
