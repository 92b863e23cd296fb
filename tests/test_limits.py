"""Size limits: body over the limit and too many records are 413, write nothing.

docs/API.md, "Order of checks" and "Limits and their flags".
"""

from __future__ import annotations

import json

from support import assert_added, assert_error, client_body, new_account, post_logs

from bot_logging_server.storage import get_storage


async def test_body_over_the_limit_is_413_and_writes_nothing(make_app):
    async with make_app(max_body_bytes=4096) as app:
        storage = get_storage(app.app)
        account = await new_account(storage)
        client = app.test_client()
        body = client_body(account.name, 100)
        assert len(json.dumps(body)) > 4096
        await assert_error(await post_logs(client, account, body), 413, "PayloadTooLarge")
        await assert_added(await post_logs(client, account, client_body(account.name, 5)), 5)
        assert await storage.count_logs(account.id) == 5


async def test_more_records_than_the_limit_is_413_and_writes_nothing(make_app):
    async with make_app(max_records=50) as app:
        storage = get_storage(app.app)
        account = await new_account(storage)
        client = app.test_client()
        response = await post_logs(client, account, client_body(account.name, 51))
        body = await assert_error(response, 413, "PayloadTooLarge")
        assert body["detail"] == "data.logs: more than 50 records"
        await assert_added(await post_logs(client, account, client_body(account.name, 50)), 50)
        assert await storage.count_logs(account.id) == 50


async def test_default_limits_are_16_mib_and_10000_records(app):
    from bot_logging_server.config import APP_CONFIG_KEY

    config = app.app.config[APP_CONFIG_KEY]
    assert (config.max_body_bytes, config.max_records, config.max_msg_chars) == (
        16 * 1024 * 1024,
        10_000,
        65_536,
    )
    assert app.app.config["MAX_CONTENT_LENGTH"] == 16 * 1024 * 1024


async def test_too_many_records_with_a_wrong_token_is_403(client, user):
    response = await post_logs(client, user, client_body(user.name, 10_001), token="0" * 32)
    await assert_error(response, 403, "Forbidden")


async def test_the_rate_limit_is_checked_before_the_record_cap(make_app):
    async with make_app(rate_limit_requests=1, max_records=5) as app:
        storage = get_storage(app.app)
        account = await new_account(storage)
        client = app.test_client()
        await assert_added(await post_logs(client, account, client_body(account.name, 1)), 1)
        response = await post_logs(client, account, client_body(account.name, 6))
        await assert_error(response, 429, "TooManyRequests")
        assert await storage.count_logs(account.id) == 1
