"""Authentication (docs/API.md, "Order of checks", step 3): the (user, token) pair or 403.

Isolation between users and changes to users (disable, rotate, remove) are in
``test_isolation.py``.
"""

from __future__ import annotations

import json
import unicodedata
import uuid

import pytest
from support import assert_added, assert_error, client_body, new_account, post_logs
from werkzeug.datastructures import Headers

from bot_logging_server.storage import get_storage
from bot_logging_server.tokens import hash_token, random_token


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


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(
            lambda n: "".join(chr(ord(c) + 0xFEE0) if c.isascii() else c for c in n),
            id="full-width",
        ),
        pytest.param(lambda n: unicodedata.normalize("NFD", n), id="nfd"),
    ],
)
async def test_look_alike_spellings_of_a_name_reach_the_same_user(client, make_user, spelling):
    account = await make_user(name=f"caf\u00e9{uuid.uuid4().hex[:6]}")
    assert spelling(account.name) != account.name
    response = await post_logs(client, account, client_body(spelling(account.name)))
    await assert_added(response, 1)
    headers = {"X-User": spelling(account.name), "X-User-Token": account.token}
    listing = await client.get("/api/logs", headers=headers)
    assert listing.status_code == 200
    assert [r["user_id"] for r in (await listing.get_json())["logs"]] == [account.id]


async def test_a_name_stored_before_names_were_normalised_is_still_found(client, storage):
    legacy = "\uff4c\uff45\uff47" + uuid.uuid4().hex[:6]  # full-width "leg", stored as is
    token = random_token()
    user = await storage.create_user(legacy, hash_token(token), None)
    account = type("Account", (), {"name": legacy, "token": token})
    await assert_added(await post_logs(client, account), 1)
    assert await storage.count_logs(user.id) == 1
