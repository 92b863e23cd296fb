"""The ``/send_logs`` lane (``bot_logging_server.lanes.send_logs``): the usual
``POST /send_logs`` is served below Quart, and answers exactly as the handler does;
everything else is the handler's."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from support import (
    client_body,
    client_headers,
    client_record,
    counting_quart,
    new_account,
    recent_logs,
)

from bot_logging_server.lanes import get_lanes
from bot_logging_server.storage import get_storage

_LIMITS = {"max_records": 5, "max_msg_chars": 50}


async def _post(client: Any, token: str, body: Any, **headers: str) -> Any:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return await client.post("//send_logs", data=data, headers={**client_headers(token), **headers})


async def test_a_verified_batch_is_stored_without_quart(make_app):
    async with make_app() as app:
        storage = get_storage(app.app)
        account = await new_account(storage)
        client = app.test_client()
        handled = counting_quart(app)
        first = await _post(client, account.token, client_body(account.name, 2))
        assert first.status_code == 200 and len(handled) == 1  # verifies the token
        second = await _post(client, account.token, client_body(account.name, 3))
        assert second.status_code == 200
        assert await second.get_json() == {
            "code": 200,
            "message": "Logs added successfully",
            "added": 3,
        }
        assert len(handled) == 1  # the lane stored the second batch
        assert await storage.count_logs(account.id) == 5
        refused = await _post(client, account.token, client_body(account.name, [{"msg": 1}]))
        assert refused.status_code == 400
        assert len(handled) == 2  # a refusal is the handler's


def _cases(name: str, token: str) -> dict[str, tuple[Any, dict[str, str], str]]:
    """Requests by what they show: (body, extra headers, token)."""
    good = client_body(name, 2)
    return {
        "a verified batch": (good, {}, token),
        "no records": (client_body(name, []), {}, token),
        "a message over the limit is cut": (
            client_body(name, [client_record(msg="x" * 80)]),
            {},
            token,
        ),
        "every level spelling": (
            client_body(name, [client_record(level=v) for v in ("warn", " 50 ", "0040")]),
            {},
            token,
        ),
        "the token in capitals with spaces": (good, {}, f"  {token.upper()} "),
        "a wrong token": (good, {}, "0" * 32),
        "a malformed token": (good, {}, "nope"),
        "another user's name": (client_body("someone_else", 1), {}, token),
        "not JSON": (b'{"data": ', {}, token),
        "not UTF-8": (b'{"data": {"user": "\xff"}}', {}, token),
        "no user": ({"data": {"logs": []}}, {}, token),
        "logs not a list": (client_body(name, logs=None) | {}, {}, token),
        "a record with a bad level": (client_body(name, [client_record(level="loud")]), {}, token),
        "a record without msg": (client_body(name, [{"level": 20}]), {}, token),
        "too many records": (client_body(name, 6), {}, token),
        "an idempotency key": (good, {"Idempotency-Key": "k-1"}, token),
        "a malformed idempotency key": (good, {"Idempotency-Key": "\u00e9"}, token),
        "a form without credentials": (
            good,
            {"Content-Type": "application/x-www-form-urlencoded"},
            token,
        ),
    }


def _at_fixed_times(body: Any) -> Any:
    """`body` with every time the same whenever it is built (both runs store equal rows)."""
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict):
        data["post_time"] = "2026-01-02T03:04:05"
        for record in data.get("logs") or ():
            if isinstance(record, dict) and "event_at" in record:
                record["event_at"] = "2026-01-02T03:04:00"
    return body


def _answer(response: Any, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k.lower(), v) for k, v in response.headers.items() if k.lower() != "date")
    return response.status_code, headers, body


def _stored(rows: list[Any]) -> list[tuple]:
    return sorted((r.pid, r.p_name, r.p_description, r.level, r.msg, r.event_at) for r in rows)


async def test_every_answer_and_every_stored_row_is_the_handlers(make_app):
    """Each request is sent twice, once with the lane and once to Quart alone (as a user
    whose token is verified in both cases): same status, headers, body and rows."""
    async with make_app(**_LIMITS) as app:
        storage = get_storage(app.app)
        client = app.test_client()
        lane = get_lanes(app.app)
        for case in _cases("x", "0" * 32):
            answers, stored = [], []
            for enabled in (True, False):
                lane.enabled = enabled
                account = await new_account(storage)
                warm_body = _at_fixed_times(client_body(account.name, 1))
                warm = await _post(client, account.token, warm_body)
                assert warm.status_code == 200
                body, headers, token = _cases(account.name, account.token)[case]
                body = _at_fixed_times(body)
                response = await _post(client, token, body, **headers)
                answers.append(_answer(response, await response.get_data()))
                stored.append(_stored(await recent_logs(storage, account.id, 100)))
            assert answers[0] == answers[1], case
            assert stored[0] == stored[1], case
        lane.enabled = True


async def test_the_rate_limit_counts_a_lane_request_once_and_refuses_as_the_handler(make_app):
    for enabled in (True, False):
        async with make_app(rate_limit_requests=2) as app:
            get_lanes(app.app).enabled = enabled
            account = await new_account(get_storage(app.app))
            client = app.test_client()
            statuses = []
            for _ in range(3):
                response = await _post(client, account.token, client_body(account.name, 1))
                statuses.append(response.status_code)
            assert statuses == [200, 200, 429], enabled
            assert response.headers["Retry-After"] == "1"
            assert (await response.get_json())["code"] == 429


async def test_an_invalid_batch_is_not_counted_twice_by_the_rate_limit(make_app):
    async with make_app(rate_limit_requests=2) as app:
        account = await new_account(get_storage(app.app))
        client = app.test_client()
        assert (await _post(client, account.token, client_body(account.name, 1))).status_code == 200
        bad = client_body(account.name, [client_record(level="loud")])
        assert (await _post(client, account.token, bad)).status_code == 400
        # Two requests counted in this second (one refused as invalid): the third is over.
        third = await _post(client, account.token, client_body(account.name, 1))
        assert third.status_code == 429


async def test_a_storage_failure_in_the_lane_is_answered_as_the_handler_and_tried_once(
    make_app, monkeypatch
):
    from bot_logging_server.storage import Storage, StorageUnavailable

    async with make_app() as app:
        storage = get_storage(app.app)
        account = await new_account(storage)
        client = app.test_client()
        assert (await _post(client, account.token, client_body(account.name, 1))).status_code == 200
        calls = []

        async def failing(self, *args: Any, **kwargs: Any) -> int:
            calls.append(args)
            raise StorageUnavailable("the database went away")

        handled = counting_quart(app)
        monkeypatch.setattr(Storage, "insert_logs", failing)
        response = await _post(client, account.token, client_body(account.name, 2))
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert (await response.get_json())["code"] == 503
        assert len(calls) == 1 and handled == []


async def test_the_access_log_and_metrics_see_a_lane_request_as_a_handler_request(make_app, caplog):
    async with make_app(access_log="on") as app:
        account = await new_account(get_storage(app.app))
        client = app.test_client()
        await _post(client, account.token, client_body(account.name, 1))
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="bot_logging_server.access"):
            assert (
                await _post(client, account.token, client_body(account.name, 3))
            ).status_code == 200
        (line,) = [r for r in caplog.records if r.name == "bot_logging_server.access"]
        assert line.getMessage().startswith("POST //send_logs 200 ")
        assert line.getMessage().endswith(f"user={account.name} records=3")


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Basic dTp0"}, {"Idempotency-Key": "k-1"}],
    ids=["basic auth", "idempotency key"],
)
async def test_requests_only_the_handler_understands_go_to_quart(make_app, headers):
    async with make_app() as app:
        account = await new_account(get_storage(app.app))
        client = app.test_client()
        await _post(client, account.token, client_body(account.name, 1))
        handled = counting_quart(app)
        await _post(client, account.token, client_body(account.name, 1), **headers)
        assert len(handled) == 1


async def test_a_body_past_the_offload_size_is_given_whole_to_the_handler(make_app):
    from bot_logging_server.offload import OFFLOAD_BYTES

    async with make_app() as app:
        storage = get_storage(app.app)
        account = await new_account(storage)
        client = app.test_client()
        await _post(client, account.token, client_body(account.name, 1))
        handled = counting_quart(app)
        records = [client_record(i, msg=f"{i} " + "y" * 400) for i in range(900)]
        body = orjson.dumps(client_body(account.name, records))
        assert len(body) > OFFLOAD_BYTES
        response = await _post(client, account.token, body)
        assert (await response.get_json())["added"] == 900
        assert len(handled) == 1
        assert await storage.count_logs(account.id) == 901


async def test_a_token_never_verified_here_goes_to_the_handler_unread(make_app, monkeypatch):
    """The handler screens such a request (a locked-out address: 429) before its body."""
    from bot_logging_server import lanes

    read = []
    original = lanes._read_body

    async def reading(*args: Any) -> Any:
        read.append(args)
        return await original(*args)

    monkeypatch.setattr(lanes, "_read_body", reading)
    async with make_app() as app:
        account = await new_account(get_storage(app.app))
        client = app.test_client()
        assert (await _post(client, account.token, client_body(account.name, 1))).status_code == 200
        assert read == []  # the first request verified the token, in the handler
        assert (await _post(client, account.token, client_body(account.name, 1))).status_code == 200
        assert len(read) == 1
        assert (await _post(client, "f" * 32, client_body(account.name, 1))).status_code == 403
        assert len(read) == 1
