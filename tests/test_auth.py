"""Authentication (CONTRACT.md, Order of checks, step 2): the (user, token) pair or 403."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from helpers import assert_added, assert_error, client_body, new_account, post_logs
from werkzeug.datastructures import Headers

from bot_logging_server.storage import get_storage, make_storage
from bot_logging_server.users import rotate_token


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


async def test_one_users_token_never_works_with_another_users_name(client, storage, make_user):
    alice, bob = await make_user(), await make_user()
    response = await post_logs(client, alice, client_body(bob.name))
    await assert_error(response, 403, "Forbidden")
    assert await storage.count_logs(bob.id) == 0
    assert await storage.count_logs(alice.id) == 0


async def test_user_names_are_case_sensitive(client, storage, user):
    response = await post_logs(client, user, client_body(user.name.upper()))
    await assert_error(response, 403, "Forbidden")


async def test_upper_case_hex_token_is_the_same_token(client, user):
    await assert_added(await post_logs(client, user, token=user.token.upper()), 1)


async def test_disabled_user_is_403_and_enabled_again_works(client, storage, user):
    await assert_added(await post_logs(client, user), 1)
    await storage.set_disabled(user.name, True)
    await asyncio.sleep(2.1)  # past the verified-token cache (auth_cache_seconds = 2)
    await assert_error(await post_logs(client, user), 403, "Forbidden")
    await storage.set_disabled(user.name, False)
    await assert_added(await post_logs(client, user), 1)
    assert await storage.count_logs(user.id) == 2


async def test_rotated_token_replaces_the_old_one(client, storage, user):
    new_token = await rotate_token(storage, user.name)
    await asyncio.sleep(2.1)
    await assert_error(await post_logs(client, user), 403, "Forbidden")
    await assert_added(await post_logs(client, user, token=new_token), 1)


async def test_disabling_from_another_process_takes_effect_within_5_seconds(
    client, make_config, user
):
    await assert_added(await post_logs(client, user), 1)
    other = make_storage(make_config())  # a second connection, as the CLI would open
    await other.open()
    try:
        await other.set_disabled(user.name, True)
    finally:
        await other.close()
    started = time.monotonic()
    while (await post_logs(client, user)).status_code == 200:
        assert time.monotonic() - started < 5, "still accepted 5 s after disabling"
        await asyncio.sleep(0.2)


async def test_removed_user_is_403(client, storage, user):
    await assert_added(await post_logs(client, user), 1)
    assert await storage.remove_user(user.name) == 1
    await asyncio.sleep(2.1)
    await assert_error(await post_logs(client, user), 403, "Forbidden")


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
