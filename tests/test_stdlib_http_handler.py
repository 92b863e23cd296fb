"""Python's own ``logging.handlers.HTTPHandler`` pointed at ``/send_logs`` works unchanged.

``HTTPHandler("host:port", "/send_logs", method="POST", credentials=(user, token))`` POSTs
each record form-encoded with basic auth, and ignores the answer: a record the server does
not take is lost silently. docs/API.md, "Python's logging.handlers.HTTPHandler", says what is
stored. The real handler is checked against a real server process on both backends; the
mapping's corners through the in-process app.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import logging.handlers
import os
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from support import (
    Account,
    ServerProcess,
    add_user,
    assert_added,
    assert_error,
    client_body,
    client_headers,
    logger_rows,
    recent_logs,
)

from bot_logging_server.schemas.form_record import format_message

# -- the real handler against a real server ------------------------------------------------

# HTTPHandler opens a connection per record and never closes it: the standard library's own
# ResourceWarning, nothing the server can change.
stdlib_leaks_sockets = pytest.mark.filterwarnings("ignore::ResourceWarning")


@dataclass
class Live:
    port: int
    user: Account

    def handler(self, token: str | None = None) -> logging.handlers.HTTPHandler:
        credentials = (self.user.name, token or self.user.token)
        return logging.handlers.HTTPHandler(
            f"127.0.0.1:{self.port}", "/send_logs", method="POST", credentials=credentials
        )

    def rows(self, logger: str) -> list[dict[str, Any]]:
        return logger_rows(self.port, self.user, logger)


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    if request.param == "sqlite":
        database_url = f"sqlite:///{tmp_path_factory.mktemp('stdlib-db') / 'logs.db'}"
    else:
        database_url = request.getfixturevalue("mysql_database")
    user = asyncio.run(add_user(database_url))
    with ServerProcess(database_url, tmp_path_factory.mktemp("stdlib-server")) as server:
        server.wait_ready_blocking()
        yield Live(server.port, user)


def logger_with(handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger(f"stdlib_test.{uuid.uuid4().hex[:8]}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    return log


@stdlib_leaks_sockets
def test_records_of_the_real_http_handler_are_stored_with_their_arguments_applied(live):
    log = logger_with(live.handler())
    log.warning("sku %s out of stock", "A-17")
    log.error("%(count)d orders for %(who)s", {"count": 3, "who": "bob"})
    log.info("due %s", dt.date(2024, 1, 31))  # not a literal: its repr stands in
    log.critical("plain 100% text")
    log.debug("sku %d", "A-17")  # a bad format: kept, not lost
    rows = live.rows(log.name)
    assert [row["msg"] for row in rows] == [
        "sku A-17 out of stock",
        "3 orders for bob",
        "due datetime.date(2024, 1, 31)",
        "plain 100% text",
        "sku %d (arguments ('A-17',))",
    ]
    assert [row["level"] for row in rows] == [30, 40, 20, 50, 10]
    for row in rows:
        assert (row["pid"], row["p_name"], row["p_description"]) == (
            os.getpid(),
            "MainProcess",
            log.name,
        )
        event_at = dt.datetime.fromisoformat(row["event_at"].replace("Z", "+00:00"))
        assert abs((dt.datetime.now(dt.UTC) - event_at).total_seconds()) < 60


@stdlib_leaks_sockets
def test_the_record_time_is_kept_to_the_microsecond(live):
    log = logger_with(live.handler())
    record = log.makeRecord(log.name, logging.WARNING, __file__, 1, "timed", (), None)
    record.created = 1_700_000_000.123456
    log.handle(record)
    [row] = live.rows(log.name)
    assert row["event_at"] == "2023-11-14T22:13:20.123456Z"


@stdlib_leaks_sockets
def test_a_traceback_rendered_by_another_handler_follows_the_message(live):
    class Remember(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            self.format(record)  # what a StreamHandler does: sets record.exc_text

    log = logger_with(Remember())
    log.addHandler(live.handler())
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.exception("charge %d failed", 42)
    [row] = live.rows(log.name)
    first, *rest = row["msg"].splitlines()
    assert first == "charge 42 failed"
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "ZeroDivisionError: division by zero"


@stdlib_leaks_sockets
def test_without_a_rendered_traceback_the_exception_itself_is_kept(live):
    log = logger_with(live.handler())
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.exception("charge failed")
    [row] = live.rows(log.name)
    assert row["msg"] == "charge failed\nZeroDivisionError('division by zero')"


@stdlib_leaks_sockets
def test_a_wrong_token_stores_nothing(live):
    log = logger_with(live.handler(token="0" * 32))
    log.error("never stored")
    assert live.rows(log.name) == []


# -- the mapping, in process ---------------------------------------------------------------


def basic(account: Any, token: str | None = None) -> dict[str, str]:
    pair = f"{account.name}:{token or account.token}".encode()
    return {
        "Authorization": "Basic " + base64.b64encode(pair).decode(),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def record_form(**fields: Any) -> str:
    form = {
        "name": "billing",
        "msg": "m",
        "args": "()",
        "levelname": "WARNING",
        "levelno": "30",
        "created": "1700000000.5",
        "process": "4242",
        "processName": "MainProcess",
        "exc_info": "None",
        "exc_text": "None",
        "stack_info": "None",
    }
    form.update({k: str(v) for k, v in fields.items()})
    return urllib.parse.urlencode({k: v for k, v in form.items() if v != "<absent>"})


async def post_form(client: Any, account: Any, form: str, token: str | None = None) -> Any:
    return await client.post("/send_logs", data=form, headers=basic(account, token))


async def test_a_record_is_answered_like_a_batch_of_one(client, storage, user):
    await assert_added(await post_form(client, user, record_form(msg="hello")), 1)
    [row] = await recent_logs(storage, user.id)
    assert (row.msg, row.level, row.pid, row.p_name, row.p_description) == (
        "hello",
        30,
        4242,
        "MainProcess",
        "billing",
    )
    assert row.event_at == dt.datetime(2023, 11, 14, 22, 13, 20, 500000)


@pytest.mark.parametrize(
    ("fields", "stored"),
    [
        pytest.param({"levelno": "200"}, ("m", 100, 4242), id="levelno-over-100-is-100"),
        pytest.param({"levelno": "", "levelname": "error"}, ("m", 40, 4242), id="levelname"),
        pytest.param({"process": "None"}, ("m", 30, 0), id="no-process-id"),
        pytest.param(
            {"stack_info": "Stack (most recent call last):\n  x"},
            ("m\nStack (most recent call last):\n  x", 30, 4242),
            id="stack-info",
        ),
        pytest.param({"msg": "é ☃"}, ("é ☃", 30, 4242), id="non-ascii"),
    ],
)
async def test_what_a_record_stores(client, storage, user, fields, stored):
    await assert_added(await post_form(client, user, record_form(**fields)), 1)
    [row] = await recent_logs(storage, user.id)
    assert (row.msg, row.level, row.pid) == stored


async def test_a_record_without_a_time_gets_the_receive_time(client, storage, user):
    await assert_added(await post_form(client, user, record_form(created="<absent>")), 1)
    [row] = await recent_logs(storage, user.id)
    assert row.event_at == row.received_at


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        pytest.param({"msg": "<absent>"}, "form.msg: missing (not a logging record)", id="no-msg"),
        pytest.param({"levelno": "loud"}, "form.levelno: not a level number", id="bad-levelno"),
        pytest.param(
            {"levelno": "<absent>", "levelname": "<absent>"},
            "form.levelno: missing (and no known levelname)",
            id="no-level",
        ),
        pytest.param(
            {"created": "yesterday"},
            "form.created: not a time in seconds since the epoch",
            id="bad-created",
        ),
        pytest.param(
            {"created": "1e300"},
            "form.created: not a time in seconds since the epoch",
            id="created-out-of-range",
        ),
        pytest.param({"process": "many"}, "form.process: not a process id", id="bad-process"),
    ],
)
async def test_a_form_that_is_not_a_logging_record_is_400_and_stores_nothing(
    client, storage, user, fields, detail
):
    body = await assert_error(
        await post_form(client, user, record_form(**fields)), 400, "BadRequest"
    )
    assert body["detail"] == detail
    assert await storage.count_logs(user.id) == 0


async def test_a_wrong_token_is_403_and_the_body_is_not_read(client, storage, user):
    response = await post_form(client, user, "not a form at all", token="0" * 32)
    await assert_error(response, 403, "Forbidden")
    assert await storage.count_logs(user.id) == 0


async def test_json_sent_as_a_form_without_basic_auth_is_still_a_batch(client, storage, user):
    """``curl -d '{...}'`` labels JSON as a form: it stays a /send_logs batch."""
    headers = client_headers(user.token) | {"Content-Type": "application/x-www-form-urlencoded"}
    body = json.dumps(client_body(user.name, 2))
    await assert_added(await client.post("/send_logs", data=body, headers=headers), 2)


# -- reading the arguments back ------------------------------------------------------------


@pytest.mark.parametrize(
    ("msg", "args", "stored"),
    [
        ("sku %s", "('A-17',)", "sku A-17"),
        ("%s and %r", "('a', 'b')", "a and 'b'"),
        ("%d%% of %.1f", "(50, 2.25)", "50% of 2.2"),
        ("%(n)d items", "{'n': 3}", "3 items"),
        (
            "at %s",
            "(datetime.datetime(2024, 1, 31, 0, 0),)",
            "at datetime.datetime(2024, 1, 31, 0, 0)",
        ),
        ("100% sure", "()", "100% sure"),
        ("x %s", "(<object object at 0x7f00>,)", "x %s (arguments (<object object at 0x7f00>,))"),
        ("%d", "('text',)", "%d (arguments ('text',))"),
        ("%s %s", "('one',)", "%s %s (arguments ('one',))"),
        ("%99999999s", "('x',)", "%99999999s (arguments ('x',))"),
        ("%*s", "(5, 'x')", "%*s (arguments (5, 'x'))"),
        ("%s", "[1, 2]", "%s (arguments [1, 2])"),
        ("%s", "(" * 500 + ")" * 500, "%s (arguments " + "(" * 500 + ")" * 500 + ")"),
        ("%s", "(__import__('os').getpid(),)", "__import__('os').getpid()"),
    ],
)
def test_arguments_are_read_back_as_literals_and_never_run(msg, args, stored):
    assert format_message(msg, args) == stored
