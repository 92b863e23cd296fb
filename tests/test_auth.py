"""Authentication (docs/API.md, "Order of checks", step 3): the (user, token) pair or 403.

Isolation between users and changes to users (disable, rotate, remove) are in
``test_isolation.py``.
"""

from __future__ import annotations

import json

import pytest
from support import assert_added, assert_error, client_body, new_account, post_logs
from werkzeug.datastructures import Headers

from bot_logging_server.storage import get_storage


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("0" * 32, id="wrong-token"),
        pytest.param("", id="empty"),
        pytest.param("abc", id="too-short"),
        pytest.param("g" * 32, id="not-hex"),
        pytest.param("0" * 33, id="too-long"),
    ],
)
async def test_wrong_or_malformed_token_is_403_and_writes_nothing(client, storage, user, token):
    await assert_error(await post_logs(client, user, token=token), 403, "Forbidden")
    assert await storage.count_logs(user.id) == 0


async def test_missing_token_is_403_and_writes_nothing(client, storage, user):
    response = await client.post("//send_logs", json=client_body(user.name))
    await assert_error(response, 403, "Forbidden")
    assert await storage.count_logs(user.id) == 0


async def test_unknown_user_and_wrong_token_answer_the_same(client, user):
    unknown = await post_logs(client, user, client_body("nobody_" + user.name))
    wrong = await post_logs(client, user, token="f" * 32)
    assert (
        await unknown.get_json()
        == await wrong.get_json()
        == {
            "code": 403,
            "message": "Forbidden",
        }
    )


async def test_upper_case_hex_token_is_the_same_token(client, user):
    await assert_added(await post_logs(client, user, token=user.token.upper()), 1)


async def test_auth_with_cache_disabled_checks_every_request(make_app, make_config):
    async with make_app(auth_cache_seconds=0) as app:
        storage = get_storage(app.app)
        account = await new_account(storage)
        client = app.test_client()
        await assert_added(await post_logs(client, account), 1)
        await storage.set_disabled(account.name, True)
        await assert_error(await post_logs(client, account), 403, "Forbidden")


async def test_two_different_token_headers_are_403(client, storage, user):
    for tokens in ([user.token, "0" * 32], ["0" * 32, user.token]):
        headers = [("Content-Type", "application/json")] + [("X-User-Token", t) for t in tokens]
        response = await client.post(
            "//send_logs", data=json.dumps(client_body(user.name)), headers=Headers(headers)
        )
        await assert_error(response, 403, "Forbidden")
    assert await storage.count_logs(user.id) == 0


async def test_token_with_surrounding_whitespace_is_the_same_token(client, user):
    await assert_added(await post_logs(client, user, token=f"  {user.token} "), 1)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("'" * 100_000, id="huge"),
        pytest.param("", id="empty"),
        pytest.param("has space", id="space"),
        pytest.param("nul\x00", id="nul"),
    ],
)
async def test_a_name_no_user_can_have_is_403(client, storage, user, name):
    response = await post_logs(client, user, client_body(name))
    await assert_error(response, 403, "Forbidden")
    assert await storage.count_logs(user.id) == 0
