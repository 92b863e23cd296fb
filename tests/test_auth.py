"""Authentication (docs/API.md, "Order of checks", step 3): the (user, token) pair or 403.

Isolation between users and changes to users (disable, rotate, remove) are in
``test_isolation.py``.
"""

from __future__ import annotations

import json
import logging
import unicodedata
import uuid

import pytest
from support import assert_added, assert_error, client_body, new_account, post_logs
from werkzeug.datastructures import Headers

from bot_logging_server.storage import get_storage
from bot_logging_server.tokens import hash_token, password_token, random_token


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


async def sign_in(client, name: str, password, **kwargs):
    """``POST /api/session`` with `name` and `password`; answer the response."""
    return await client.post("/api/session", json={"user": name, "password": password}, **kwargs)


async def test_a_password_signs_in_to_the_token_it_makes(client, make_user):
    alice = await make_user(password="correct horse ✓")
    response = await sign_in(client, alice.name, "correct horse ✓")
    assert response.status_code == 200
    assert await response.get_json() == {"user": alice.name, "token": alice.token}
    listed = await client.get(
        "/api/logs", headers={"X-User": alice.name, "X-User-Token": alice.token}
    )
    assert listed.status_code == 200


@pytest.mark.parametrize("password", ["wrong", "", "correct horse", "CORRECT HORSE ✓"])
async def test_a_wrong_password_is_403_and_writes_or_leaks_nothing(
    client, storage, make_user, caplog, password
):
    caplog.set_level(logging.DEBUG)
    alice = await make_user(password="correct horse ✓")
    before = await storage.get_user(alice.name)
    response = await sign_in(client, alice.name, password)
    body = await assert_error(response, 403, "Forbidden")
    assert "detail" not in body
    text = await response.get_data(as_text=True)
    assert alice.token not in text
    assert await storage.get_user(alice.name) == before
    assert await storage.count_logs(alice.id) == 0
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert alice.token not in logged and password_token(alice.name, password) not in logged
    assert not password or password not in logged


async def test_every_refusal_of_a_sign_in_looks_the_same(client, storage, make_user):
    with_password = await make_user(password="pw")
    random = await make_user()  # no password: only its token signs in
    disabled = await make_user(password="pw")
    await storage.set_disabled(disabled.name, True)
    answers = [
        await sign_in(client, "nobody_" + with_password.name, "pw"),
        await sign_in(client, with_password.name, "wrong"),
        await sign_in(client, random.name, ""),
        await sign_in(client, random.name, random.token),
        await sign_in(client, disabled.name, "pw"),
    ]
    for answer in answers:
        await assert_error(answer, 403, "Forbidden")
    ok = await sign_in(client, with_password.name, "pw")
    assert (await ok.get_json())["token"] == with_password.token


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"user": "alice"}, "body.password: missing data for required field"),
        ({"password": "x"}, "body.user: missing data for required field"),
        ({"user": "alice", "password": 5}, "body.password: not a valid string"),
        ({"user": "a b", "password": "x"}, "body.user: 1-64 characters"),
        ({"user": "alice", "password": "x" * 1025}, "body.password: longer than maximum"),
        (["alice", "x"], "body: must be a JSON object"),
    ],
)
async def test_a_sign_in_body_that_is_not_user_and_password_is_a_400(client, body, detail):
    response = await client.post("/api/session", json=body)
    answer = await assert_error(response, 400, "BadRequest")
    assert answer["detail"].lower().startswith(detail.lower())
    assert "x" * 50 not in answer["detail"]


async def test_wrong_passwords_count_toward_the_lockout(make_app):
    async with make_app(auth_failures_per_user=2, auth_failures_per_source=0) as app:
        storage = get_storage(app.app)
        client = app.test_client()
        alice = await new_account(storage, password="pw")
        for _ in range(2):
            await assert_error(await sign_in(client, alice.name, "guess"), 403, "Forbidden")
        locked = await sign_in(client, alice.name, "pw")
        await assert_error(locked, 429, "TooManyRequests")
        assert 1 <= int(locked.headers["Retry-After"]) <= 60
