"""What a request costs before its user is known is bounded (in process, both backends).

docs/API.md, "Order of checks" and "Limits and their flags": request bodies held at once are
bounded by ``--max-buffered-bytes`` and requests in progress by ``--max-concurrent-requests``
(past either, 503 with ``Retry-After`` before the body is read); a request whose token can
never match has at most 64 KiB of its body read; a large body is read in a helper process,
with exactly the answers it would get on the event loop. The same against a real server
process, under load: ``test_abuse.py``.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing

import orjson
import pytest
from support import (
    CLIENT_PATH,
    assert_added,
    assert_error,
    client_body,
    client_headers,
    client_record,
    new_account,
    post_logs,
)

from bot_logging_server.storage import get_storage

KIB = 1024


def padded(body: dict, size: int) -> bytes:
    """`body` as JSON of exactly `size` bytes (an unknown field takes the padding)."""
    raw = orjson.dumps({**body, "pad": ""})
    return orjson.dumps({**body, "pad": "x" * (size - len(raw))})


async def open_upload(client, headers: dict, first: bytes = b""):
    """A POST whose body is sent piece by piece; answers the entered connection."""
    connection = client.request(CLIENT_PATH, method="POST", headers=headers)
    await connection.__aenter__()
    if first:
        await connection.send(first)
    return connection


async def answered(connection, within: float = 5.0):
    """The connection's answer (status, JSON body, headers) once the request has ended."""
    async with asyncio.timeout(within):
        body = await connection.receive()
        await connection.__aexit__(None, None, None)  # the app has returned
    return connection.status_code, json.loads(body), connection.headers


@pytest.mark.parametrize("token", [None, "", "secret", "0" * 31], ids=repr)
async def test_without_a_usable_token_a_small_body_is_still_400_before_403(client, token):
    headers = {} if token is None else {"X-User-Token": token}
    raw = padded({"data": ["not an object"]}, 60 * KIB)
    response = await client.post(CLIENT_PATH, data=raw, headers=headers)
    body = await assert_error(response, 400, "BadRequest")
    assert body["detail"] == "data: must be a JSON object"


@pytest.mark.parametrize("token", [None, "secret", "0" * 31], ids=repr)
@pytest.mark.parametrize("shape", ["bad shape", "good shape"])
async def test_without_a_usable_token_a_body_over_64_kib_is_403(client, user, token, shape):
    headers = {} if token is None else {"X-User-Token": token}
    body = {"data": ["not an object"]} if shape == "bad shape" else client_body(user.name)
    response = await client.post(CLIENT_PATH, data=padded(body, 65 * KIB), headers=headers)
    await assert_error(response, 403, "Forbidden")


async def test_without_a_usable_token_an_unbounded_body_is_cut_off_after_64_kib(client, user):
    connection = await open_upload(client, {"X-User-Token": "secret"})
    sent = 0
    while connection.status_code is None and sent < 10 * 1024 * KIB:
        await connection.send(b" " * (16 * KIB))
        sent += 16 * KIB
        await asyncio.sleep(0.01)
    status, body, _ = await answered(connection)
    assert status == 403 and body == {"code": 403, "message": "Forbidden"}
    assert sent <= 128 * KIB  # of 10 MiB offered: refused soon after 64 KiB


LARGE = 300 * KIB  # over the size read in the helper process


@pytest.mark.parametrize(
    ("case", "status", "detail"),
    [
        ("valid", 200, None),
        ("not json", 400, "body: not valid JSON"),
        ("array", 400, "data: must be a JSON object"),
        ("bad field", 400, "data.logs[1].level: not a level name or number"),
        ("too many records", 413, "data.logs: more than 10000 records"),
        ("wrong token", 403, None),
        ("nan message", 200, None),
    ],
)
async def test_a_large_body_gets_the_answers_it_would_get_if_small(
    client, storage, user, case, status, detail
):
    logs = [client_record(i) for i in range(3)]
    token = user.token
    if case == "bad field":
        logs[1]["level"] = "loud"
    if case == "too many records":
        logs = [{}] * 10_001
    if case == "wrong token":
        token = "0" * 32
    raw = padded(client_body(user.name, logs), LARGE)
    if case == "not json":
        raw = raw[:-1]
    if case == "array":
        raw = padded({}, LARGE).replace(b"{", b"[", 1).replace(b'"pad":', b"", 1)[:-1] + b"]"
    if case == "nan message":
        raw = raw.replace(b'"message 0"', b"NaN", 1)
    response = await client.post(CLIENT_PATH, data=raw, headers=client_headers(token))
    assert response.status_code == status, await response.get_data(as_text=True)
    if detail is not None:
        assert (await response.get_json())["detail"] == detail
    stored = await storage.count_logs(user.id)
    assert stored == (3 if status == 200 else 0)
    # Read in the helper process (a child of this one), not on the event loop.
    assert any(child.name.startswith("SpawnProcess") for child in multiprocessing.active_children())


async def test_a_body_that_does_not_fit_the_buffer_budget_is_503_before_it_is_read(make_app):
    async with make_app(max_body_bytes=600 * KIB, max_buffered_bytes=1024 * KIB) as app:
        account = await new_account(get_storage(app.app))
        client = app.test_client()
        headers = {**client_headers(account.token), "Content-Length": str(600 * KIB)}
        whole = padded(client_body(account.name), 600 * KIB)
        first = await open_upload(client, headers, whole[: 100 * KIB])  # holds 600 KiB
        # A second body of 600 KiB does not fit in 1 MiB: 503 at once, nothing read.
        second = await open_upload(client, headers)
        status, body, answer_headers = await answered(second)
        assert (status, body["message"]) == (503, "ServiceUnavailable")
        assert answer_headers["Retry-After"] == "1"
        assert body["detail"] == "too many request bodies at once"
        # A small body (the real client's batches) needs no room.
        await assert_added(await post_logs(client, account), 1)
        # A body without a length is cut off with 503 as soon as it would not fit.
        third = await open_upload(client, client_headers(account.token))
        sent = 0
        while third.status_code is None and sent < 2048 * KIB:
            await third.send(b" " * (32 * KIB))
            sent += 32 * KIB
            await asyncio.sleep(0.01)
        status, body, _ = await answered(third)
        assert status == 503 and sent <= 512 * KIB  # 1 MiB - 600 KiB free, a piece or two
        # The first body completes; its room is then free again for the next.
        await first.send(whole[100 * KIB :])
        await first.send_complete()
        status, body, _ = await answered(first)
        assert status == 200, body
        retry = await client.post(CLIENT_PATH, data=whole, headers=client_headers(account.token))
        await assert_added(retry, 1)


async def test_one_request_over_the_concurrency_cap_is_503_at_once(make_app):
    async with make_app(max_concurrent_requests=2) as app:
        account = await new_account(get_storage(app.app))
        client = app.test_client()
        held = [await open_upload(client, client_headers(account.token)) for _ in range(2)]
        await asyncio.sleep(0.05)
        refused = await post_logs(client, account)
        body = await assert_error(refused, 503, "ServiceUnavailable")
        assert body["detail"] == "too many requests at once"
        assert refused.headers["Retry-After"] == "1"
        for connection in held:
            await connection.send(orjson.dumps(client_body(account.name)))
            await connection.send_complete()
            assert (await answered(connection))[0] == 200
        await assert_added(await post_logs(client, account), 1)
