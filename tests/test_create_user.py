"""``POST /create_user`` (the original's API): off without an API key, 403 for a wrong key."""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
import uuid

import pytest
from support import assert_added, assert_error, post_logs

from bot_logging_server.storage import get_storage

KEY = "k" * 40


@pytest.fixture
async def keyed_client(make_app):
    async with make_app(api_key=KEY) as app:
        yield app.test_client()


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "OPTIONS"])
async def test_create_user_is_off_without_an_api_key_for_every_method(client, method):
    response = await client.open("/create_user", method=method, json={"user": "a"})
    await assert_error(response, 404, "NotFound")


async def test_empty_password_is_a_password_md5_of_the_name(keyed_client):
    response = await keyed_client.post(
        "/create_user", json={"user": "emptypw", "password": ""}, headers={"X-Api-Key": KEY}
    )
    assert (await response.get_json())["token"] == hashlib.md5(b"emptypw").hexdigest()


@pytest.mark.parametrize(
    "key", [None, "", "wrong", KEY[:-1], KEY + "x", KEY.upper(), "x" * len(KEY), "é" + KEY[1:]]
)
async def test_wrong_or_missing_api_key_is_403(keyed_client, key):
    headers = {} if key is None else {"X-Api-Key": key}
    response = await keyed_client.post("/create_user", json={"user": "a"}, headers=headers)
    await assert_error(response, 403, "Forbidden")


async def test_create_user_with_password_answers_the_md5_token(keyed_client):
    response = await keyed_client.post(
        "/create_user",
        json={"user": "carol", "password": "pw", "tel_id": 123456789},
        headers={"X-Api-Key": KEY},
    )
    assert response.status_code == 200
    body = await response.get_json()
    assert body["code"] == 200 and body["message"] == "User created"
    assert body["token"] == hashlib.md5(b"carolpw").hexdigest()
    account = type("A", (), {"name": "carol", "token": body["token"]})
    await assert_added(await post_logs(keyed_client, account), 1)


async def test_create_user_without_password_answers_a_random_token(keyed_client):
    response = await keyed_client.post(
        "/create_user", json={"user": "dave"}, headers={"X-Api-Key": KEY}
    )
    token = (await response.get_json())["token"]
    assert len(token) == 32 and token == token.lower()
    assert int(token, 16) >= 0


async def test_existing_user_is_409(keyed_client):
    for expected in (200, 409):
        response = await keyed_client.post(
            "/create_user", json={"user": "erin", "password": "x"}, headers={"X-Api-Key": KEY}
        )
        assert response.status_code == expected
    await assert_error(response, 409, "Conflict")


@pytest.mark.parametrize(
    "body",
    [
        {"user": ""},
        {"user": "has space"},
        {"user": "x" * 65},
        {"user": 5},
        {"password": "x"},
        {"user": "ok", "tel_id": "not a number"},
        {"user": "ok", "tel_id": 2**70},
        {"user": "ok", "tel_id": 2**63},
        {"user": "ok", "tel_id": 1.5},
        {"user": "ok", "tel_id": 1.0},
        {"user": "ok", "tel_id": "1.5"},
        {"user": "ok", "tel_id": True},
        {"user": "nul\u0000name"},
        {"user": "ctl\u0001name"},
        {"user": "sur\udcffrogate"},
        {"user": "ok", "password": "sur\udcffrogate"},
        ["not", "an", "object"],
    ],
    ids=repr,
)
async def test_invalid_create_user_body_is_400_and_creates_nobody(keyed_client, body):
    storage = get_storage(keyed_client.app)
    before = len(await storage.list_users())
    raw = json.dumps(body)  # json.dumps writes lone surrogates as escapes, as clients do
    response = await keyed_client.post(
        "/create_user", data=raw, headers={"X-Api-Key": KEY, "Content-Type": "application/json"}
    )
    await assert_error(response, 400, "BadRequest")
    assert len(await storage.list_users()) == before


async def test_tel_id_may_be_a_numeric_string_and_is_stored(keyed_client):
    response = await keyed_client.post(
        "/create_user", json={"user": "telstr", "tel_id": "-100123"}, headers={"X-Api-Key": KEY}
    )
    assert response.status_code == 200
    assert (await get_storage(keyed_client.app).get_user("telstr")).tel_id == -100123


def full_width(name: str) -> str:
    """`name` with each ASCII letter and digit written as its full-width look-alike."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in name)


async def create(keyed_client, user, password=None):
    body = {"user": user} if password is None else {"user": user, "password": password}
    return await keyed_client.post("/create_user", json=body, headers={"X-Api-Key": KEY})


@pytest.mark.parametrize(
    ("existing", "look_alike"),
    [
        ("frank", full_width("frank")),
        ("caf\u00e9", "cafe\u0301"),  # NFC and NFD spellings of café
        ("\ufb01nn", "finn"),  # the "fi" ligature: created as "finn", so "finn" is taken
    ],
    ids=["full-width", "nfd", "ligature"],
)
async def test_a_look_alike_of_an_existing_name_is_taken(keyed_client, existing, look_alike):
    storage = get_storage(keyed_client.app)
    assert (await create(keyed_client, existing)).status_code == 200
    before = len(await storage.list_users())
    body = await assert_error(await create(keyed_client, look_alike), 409, "Conflict")
    assert unicodedata.normalize("NFKC", existing) in body["detail"]
    assert len(await storage.list_users()) == before


@pytest.mark.parametrize(
    "name",
    [
        "alice\u200b",
        "\u200dbob",
        "al\u200dice",
        "ev\u202eil",
        "soft\u00adhyphen",
        "\ufeffbom",
        "a\u2060b",
    ],
    ids=["zwsp", "zwj-first", "zwj-in-letters", "bidi-override", "soft-hyphen", "bom", "wj"],
)
async def test_a_name_with_an_invisible_format_character_is_400(keyed_client, name):
    storage = get_storage(keyed_client.app)
    before = len(await storage.list_users())
    body = await assert_error(await create(keyed_client, name), 400, "BadRequest")
    assert "invisible format characters" in body["detail"]
    assert len(await storage.list_users()) == before


async def test_an_emoji_sequence_joined_by_zero_width_joiners_is_a_valid_name(keyed_client):
    name = "rainbow_\U0001f3f3\ufe0f\u200d\U0001f308_\U0001f468\u200d\U0001f469"
    response = await create(keyed_client, name)
    assert response.status_code == 200
    assert (await response.get_json())["user"] == name


async def test_a_new_name_is_stored_normalised_and_its_token_made_from_that(keyed_client):
    response = await create(keyed_client, full_width("grace7"), "pw")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["user"] == "grace7"
    assert body["token"] == hashlib.md5(b"grace7pw").hexdigest()
    assert await get_storage(keyed_client.app).get_user(full_width("grace7")) is None
    account = type("Account", (), {"name": full_width("grace7"), "token": body["token"]})
    await assert_added(await post_logs(keyed_client, account), 1)


@pytest.mark.parametrize("verdict", [True, False], ids=["forced-equal", "forced-different"])
async def test_the_api_key_is_decided_by_a_constant_time_comparison_alone(
    keyed_client, monkeypatch, verdict
):
    # Timing cannot show a comparison of a few dozen bytes through HTTP. Instead the verdict
    # of hmac.compare_digest is forced: for the right key and a wrong one, the key must be
    # compared by it, and the answer must follow its verdict (no other comparison decides).
    compared: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def forced(a, b):
        if KEY in (a, b) or KEY.encode() in (a, b):
            compared.append((a, b))
            return verdict
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", forced)
    for key in (KEY, "x" * len(KEY)):
        compared.clear()
        response = await keyed_client.post(
            "/create_user", json={"user": f"ct_{uuid.uuid4().hex[:8]}"}, headers={"X-Api-Key": key}
        )
        assert compared, "the API key was not compared with hmac.compare_digest"
        assert response.status_code == (200 if verdict else 403), key
