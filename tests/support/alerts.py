"""Helpers of the alert tests: a user with a Telegram chat id, rules through the API, and
records posted to match them.

* `BOT_TOKEN`, `TEL_ID`: the Telegram bot token and chat id the tests use.
* `alert_settings`: settings of an app whose alerts go to a `Receiver` (1 s window).
* `tel_user`, `add_alert`, `list_alerts`: a user, and their rules through ``/api/alerts``.
* `record`, `post`: client records (level ERROR, logger ``billing``) and posting them.
* `quiet_for`: that nothing more reaches a receiver for a while.

The `receiver` fixture (a `Receiver` answering 200) is in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import uuid

from bot_logging_server.accounts import create_user
from bot_logging_server.openapi.alerts import AlertListSchema
from support.client import Account, client_body, client_record, post_logs, read_headers
from support.receiver import Receiver

BOT_TOKEN = "123456:TEST-bot-token"
TEL_ID = 424242


def alert_settings(receiver: Receiver, **overrides):
    """Settings of an app whose alerts go to `receiver`: a 1 s window, 0.2 s first retry."""
    return {
        "alert_window": 1,
        "alert_retry": 0.2,
        "telegram_token": BOT_TOKEN,
        "telegram_api_url": receiver.url,
        **overrides,
    }


async def tel_user(storage, tel_id: int | None = TEL_ID) -> Account:
    """A new user with a Telegram chat id."""
    new = await create_user(storage, f"u_{uuid.uuid4().hex[:10]}", None, tel_id)
    return Account(new.user.username, new.token, new.user.id)


async def add_alert(client, user, status: int = 201, **rule):
    response = await client.post("/api/alerts", json=rule, headers=read_headers(user))
    assert response.status_code == status, await response.get_data(as_text=True)
    return await response.get_json()


async def list_alerts(client, user) -> list[dict]:
    response = await client.get("/api/alerts", headers=read_headers(user))
    assert response.status_code == 200, await response.get_data(as_text=True)
    body = await response.get_json()
    AlertListSchema().load(body)  # the documented shape
    return body["alerts"]


def record(i: int = 0, level: int = 40, msg: str | None = None, logger: str = "billing"):
    return client_record(i, level=level, msg=msg or f"payment failed {i}", p_description=logger)


async def post(client, user, records, p_name: str = "python3"):
    response = await post_logs(client, user, client_body(user.name, records, p_name=p_name))
    assert response.status_code == 200, await response.get_data(as_text=True)


async def quiet_for(receiver: Receiver, seconds: float, count: int) -> None:
    """After `seconds` more, the receiver still has `count` requests (nothing late)."""
    await asyncio.sleep(seconds)
    assert len(receiver.received) == count, [r.body[:200] for r in receiver.received]
