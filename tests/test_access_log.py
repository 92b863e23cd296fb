"""Operators' logs: ``--log-format json`` and ``--access-log on``, never printing a secret.

The access log has one line per request with method, path, status, duration, user and
records; a token sent in a header, in a query string or in a path never appears in the
server's output (the real process's output is searched for it).
"""

from __future__ import annotations

import json
import logging
import signal
import sys

import orjson
import pytest
from support import (
    ServerProcess,
    add_user,
    batch_body,
    client_body,
    client_headers,
    http,
    post_logs,
    read_headers,
)

from bot_logging_server.logformat import JSONFormatter
from bot_logging_server.observe import ACCESS_LOGGER, masked_target


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ACCESS_LOGGER]


async def test_each_request_logs_method_path_status_duration_user_and_records(
    make_app, make_user, caplog
):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    async with make_app(access_log="on") as app:
        client = app.test_client()
        account = await make_user()
        assert (await post_logs(client, account, client_body(account.name, 3))).status_code == 200
        assert (await post_logs(client, account, token="0" * 32)).status_code == 403
        read = await client.get("/api/logs", headers=read_headers(account))
        assert read.status_code == 200
    stored, refused, listed = access_records(caplog)
    assert (stored.method, stored.path, stored.status) == ("POST", "//send_logs", 200)
    assert (stored.user, stored.records) == (account.name, 3)
    assert stored.duration_ms > 0
    assert stored.getMessage().startswith("POST //send_logs 200 ")
    assert stored.getMessage().endswith(f"user={account.name} records=3")
    assert (refused.status, refused.user, refused.records) == (403, None, None)
    assert refused.getMessage().endswith("user=- records=-")
    assert (listed.method, listed.path, listed.status, listed.user) == (
        "GET",
        "/api/logs",
        200,
        account.name,
    )


async def test_a_token_in_the_query_string_or_the_path_is_masked(make_app, make_user, caplog):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    async with make_app(access_log="on") as app:
        client = app.test_client()
        account = await make_user()
        await client.get(
            "/api/logs",
            query_string={"token": account.token, "level": "error"},
            headers=read_headers(account, bearer=True),
        )
        await client.get(f"/nowhere/{account.token}")
    logged = [r.getMessage() for r in access_records(caplog)]
    assert logged[0].startswith("GET /api/logs?token=***&level=error 200 ")
    assert logged[1].startswith("GET /nowhere/*** 404 ")
    assert all(account.token not in line for line in logged)


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        (b"token=abc&level=error", "/p?token=***&level=error"),
        (b"api_key=k&X-User-Token=t&password=pw", "/p?api_key=***&X-User-Token=***&password=***"),
        (b"secret=s&sig=1&q=payment", "/p?secret=***&sig=***&q=payment"),
        (b"q=" + b"ab" * 16, "/p?q=***"),  # a token's shape, whatever the parameter
        (b"", "/p"),
    ],
    ids=["token", "key-header-password", "secret-signature", "token-shaped", "none"],
)
def test_masked_target_hides_secret_parameters(query, shown):
    assert masked_target("/p", query) == shown


async def test_no_access_log_by_default(app, caplog):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    await app.test_client().get("/healthz")
    assert access_records(caplog) == []


def test_json_lines_hold_time_level_logger_message_extras_and_the_traceback():
    logger = logging.getLogger("test.json")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logger.makeRecord(
            "test.json",
            logging.ERROR,
            __file__,
            1,
            "failed %s",
            ("x",),
            sys.exc_info(),
            extra={"status": 500, "user": "alice", "when": object()},
        )
    line = JSONFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["time"].endswith("Z") and entry["time"][10] == "T"
    assert (entry["level"], entry["logger"], entry["message"]) == ("ERROR", "test.json", "failed x")
    assert (entry["status"], entry["user"]) == (500, "alice")
    assert entry["when"].startswith("<object object")  # not JSON: written as text
    assert "ValueError: boom" in entry["exception"]
    assert "args" not in entry and "msg" not in entry


@pytest.mark.slow
async def test_the_served_json_log_is_all_json_and_never_holds_the_token(
    fresh_database_url, tmp_path
):
    args = ("--log-format", "json", "--access-log", "on")
    with ServerProcess(fresh_database_url, tmp_path, *args) as server:
        await server.wait_ready(timeout=60)
        user = await add_user(fresh_database_url)
        body = batch_body(user.name, "p", 4)
        sent = await http(server.port, "POST", "//send_logs", body, client_headers(user.token))
        assert sent.status == 200
        headers = {"X-User": user.name, "Authorization": f"Bearer {user.token}"}
        read = await http(server.port, "GET", f"/api/logs?token={user.token}", headers=headers)
        assert read.status == 200
        await http(server.port, "GET", f"/{user.token}", headers=headers)
        # A graceful stop: every access line is written before the process exits (a kill
        # could come between an answer and its access line).
        server.signal(signal.SIGTERM)
        assert await server.wait_exit(15) == 0
    output = server.output()
    assert user.token not in output
    entries = [orjson.loads(line) for line in output.splitlines() if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    access = [e for e in entries if e["logger"] == ACCESS_LOGGER]
    batch = next(e for e in access if e["method"] == "POST")
    assert (batch["path"], batch["status"], batch["user"], batch["records"]) == (
        "//send_logs",
        200,
        user.name,
        4,
    )
    assert batch["duration_ms"] > 0
    listed = next(e for e in access if e["path"].startswith("/api/logs"))
    assert (listed["path"], listed["status"], listed["user"]) == (
        "/api/logs?token=***",
        200,
        user.name,
    )
    assert any(e["path"] == "/***" and e["status"] == 404 for e in access), access
