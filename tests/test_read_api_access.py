"""Who may read: every read path (``/api/logs``, ``/api/logs/export``, ``/api/stats``,
``/api/tail``) needs the user's own token, as ``X-User-Token`` or a bearer token; a user
name beyond Latin-1 is sent as UTF-8 bytes; a disabled user cannot read.
"""

from __future__ import annotations

import uuid

import pytest
from support import assert_error, new_account, post_logs, read_headers

from bot_logging_server.storage import get_storage

READ_PATHS = ["/api/logs", "/api/logs/export", "/api/stats", "/api/tail"]


@pytest.mark.parametrize("path", READ_PATHS)
@pytest.mark.parametrize(
    "headers",
    [
        "none",
        "user only",
        "token only",
        "wrong token",
        "token of another user",
        "malformed token",
        "unknown user",
        "bearer of another scheme",
    ],
)
async def test_reading_needs_the_users_own_token(client, user, make_user, path, headers):
    other = await make_user()
    cases = {
        "none": {},
        "user only": {"X-User": user.name},
        "token only": {"X-User-Token": user.token},
        "wrong token": {"X-User": user.name, "X-User-Token": "0" * 32},
        "token of another user": {"X-User": user.name, "X-User-Token": other.token},
        "malformed token": {"X-User": user.name, "X-User-Token": "secret"},
        "unknown user": {"X-User": "nobody-here", "X-User-Token": user.token},
        "bearer of another scheme": {"X-User": user.name, "Authorization": f"Basic {user.token}"},
    }
    response = await client.get(path, headers=cases[headers])
    await assert_error(response, 403, "Forbidden")


async def test_a_bearer_token_works_like_x_user_token(client, user):
    await post_logs(client, user)
    response = await client.get("/api/logs", headers=read_headers(user, bearer=True))
    assert response.status_code == 200
    assert len((await response.get_json())["logs"]) == 1


async def test_a_user_name_beyond_latin_1_is_sent_as_utf_8_bytes(client, make_user):
    account = await make_user(name=f"zoë_🚀_{uuid.uuid4().hex[:6]}")
    await post_logs(client, account)
    # Quart's test client writes header values as UTF-8 bytes, as the viewer does.
    response = await client.get("/api/logs", headers=read_headers(account))
    assert response.status_code == 200
    assert len((await response.get_json())["logs"]) == 1


async def test_a_disabled_user_cannot_read(make_app):
    async with make_app(auth_cache_seconds=0) as app:
        client, storage = app.test_client(), get_storage(app.app)
        account = await new_account(storage)
        assert (await client.get("/api/logs", headers=read_headers(account))).status_code == 200
        await storage.set_disabled(account.name, True)
        response = await client.get("/api/logs", headers=read_headers(account))
        await assert_error(response, 403, "Forbidden")
