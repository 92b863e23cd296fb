"""Tokens and passwords never appear in a log line, an error or ``--help``.

A real server runs on MySQL with an account that has a password and an API key, at DEBUG
level, through a full life: users created through the API, batches accepted and refused, a
database outage (errors logged), a shutdown. Its whole output is then searched for every
secret it saw. ``--help``, configuration errors and CLI errors are searched too.
"""

from __future__ import annotations

import secrets
import signal

import pytest
from support import ServerProcess, batch_body, client_headers, http, run_app

pytestmark = pytest.mark.slow


async def test_a_full_run_with_errors_never_logs_a_token_or_password(
    mysql_account, mysql_proxy, tmp_path
):
    db_user, db_password, db_name = mysql_account
    api_key = "apikey-" + secrets.token_hex(12)
    user_password = "userpw-" + secrets.token_hex(8)
    wrong_token = secrets.token_hex(16)
    seen: list[str] = [db_password, api_key, user_password, wrong_token]
    flags = ["--user", db_user, "--password", db_password, "--db-host", "127.0.0.1"]
    flags += ["--db-port", str(mysql_proxy.port), "--db-name", db_name, "--log-level", "DEBUG"]
    flags += ["--db-timeout", "1"]
    server = ServerProcess("", tmp_path, *flags, env={"LOGGER_API_KEY": api_key})
    with server:
        await server.wait_ready()
        port = server.port
        created = await http(
            port,
            "POST",
            "/create_user",
            b'{"user": "sec_alice", "password": "%s"}' % user_password.encode(),
            {"X-Api-Key": api_key, "Content-Type": "application/json"},
        )
        assert created.status == 200, created
        token = created.json()["token"]
        seen.append(token)
        ok = await http(
            port, "POST", "//send_logs", batch_body("sec_alice", "a", 3), client_headers(token)
        )
        assert ok.status == 200
        for body, headers, status in [
            (batch_body("sec_alice", "b", 1), client_headers(wrong_token), 403),
            (batch_body("nobody", "b", 1), client_headers(token), 403),
            (b'{"data": {"user": "sec_alice", "pid": "x"}}', client_headers(token), 400),
            (b"\xff\xfe not json", client_headers(token), 400),
        ]:
            assert (await http(port, "POST", "//send_logs", body, headers)).status == status
        bad_key = await http(port, "POST", "/create_user", b"{}", {"X-Api-Key": wrong_token})
        assert bad_key.status == 403
        await mysql_proxy.cut()  # errors get logged
        down = await http(
            port,
            "POST",
            "//send_logs",
            batch_body("sec_alice", "c", 1),
            client_headers(wrong_token),
        )
        assert down.status == 503
        assert (await http(port, "GET", "/healthz")).status == 503
        await mysql_proxy.restore()
        server.signal(signal.SIGTERM)
        assert await server.wait_exit(timeout=15) == 0
    output = server.output()
    assert "database unavailable" in output  # the error paths did log
    assert "DEBUG" in output
    for secret in seen:
        assert secret not in output, f"a secret is in the server's output: {secret[:6]}..."


def test_help_never_shows_a_secret_from_the_environment():
    env = {
        "LOGGER_DB_PASSWORD": "envpw-" + secrets.token_hex(6),
        "LOGGER_API_KEY": "envkey-" + secrets.token_hex(6),
        "LOGGER_DATABASE_URL": "mysql://u:urlpw-" + secrets.token_hex(6) + "@h:3306/db",
    }
    done = run_app("--help", env=env)
    assert done.returncode == 0
    for value in env.values():
        assert value not in done.stdout + done.stderr
    assert "urlpw" not in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--database-url", "mysql://u:SECRETPW@h:notaport/db"],
        ["--database-url", "mysql://u:SECRETPW@h:3306/"],
        ["--database-url", "nosuch://u:SECRETPW@h/db"],
        ["--user", "u", "--password", "SECRETPW", "--db-port", "99999"],
    ],
    ids=["bad port", "no database", "bad scheme", "port out of range"],
)
def test_configuration_errors_never_repeat_a_password(args):
    done = run_app(*args)
    assert done.returncode != 0
    assert "SECRETPW" not in done.stdout + done.stderr


def test_a_wrong_database_password_is_not_echoed(mysql_server):
    url = f"mysql://root:SECRETPW@{mysql_server.host}:{mysql_server.port}/blst_nothere"
    for args in (["--database-url", url, "users", "list"], ["--database-url", url, "--port", "0"]):
        done = run_app(*args)
        output = done.stdout + done.stderr
        assert done.returncode != 0
        assert "SECRETPW" not in output
        assert "1045" in output  # access denied, said without the password
