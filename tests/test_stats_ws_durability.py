"""The Stats_usage WebSocket's batching and durability: a click storm in a few writes, a
client far ahead of storage, a frame that cannot be stored, an app stopping with open
sockets (docs/API.md, "Usage events: the Stats WebSocket")."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from quart.testing.connections import WebsocketDisconnectError
from support import (
    new_account,
    new_key,
    stored_events,
    write_locked,
)
from support.stats_ws import (
    CLICK,
    HOME,
    PROBLEM,
    SESSION,
    SUBJECTS,
    SUCCESS,
    action,
    click,
    events_of,
    receive,
    session_reply,
    socket,
    talk,
    visit_home,
)

from bot_logging_server import create_app
from bot_logging_server.blueprints import stats_ws
from bot_logging_server.config import build_config
from bot_logging_server.events import SessionQuery
from bot_logging_server.storage import get_storage, make_storage

# -- batching and durability ----------------------------------------------------------------


async def test_a_click_storm_is_stored_in_a_few_calls_not_one_per_frame(
    client, storage, user, monkeypatch
):
    calls: list[int] = []
    real = stats_ws.record_events

    async def counted(owner: Any, events: Any, **kwargs: Any) -> Any:
        calls.append(len(events))
        return await real(owner, events, **kwargs)

    monkeypatch.setattr(stats_ws, "record_events", counted)
    key = await new_key(storage, user.id)
    async with socket(client, key) as ws:
        await visit_home(ws)
        for i in range(300):
            await ws.send(action("click", loc_x=i % 100, loc_y="1", el=f"b{i}"))
        replies = [await receive(ws) for _ in range(300)]
    assert replies == [SUCCESS] * 300
    rows = await stored_events(storage, user.id)
    clicks = [json.loads(r["data"])["el"] for r in rows if r["name"] == "click"]
    assert clicks == [f"b{i}" for i in range(300)]  # all of them, in order
    assert sum(calls) == 302 and len(calls) <= 10, calls


async def test_a_client_far_ahead_of_storage_gets_its_replies_and_is_closed_1013(
    client, storage, user, monkeypatch
):
    monkeypatch.setattr(stats_ws, "MAX_INBOX", 50)
    key = await new_key(storage, user.id)
    async with socket(client, key) as ws:
        await visit_home(ws)
        for i in range(60):
            await ws.send(click(i))
        replies = []
        with pytest.raises(WebsocketDisconnectError) as closed:
            while True:
                replies.append(await receive(ws))
    assert closed.value.args[0] == 1013
    assert 0 < len(replies) < 60 and set(replies) == {SUCCESS}
    rows = await stored_events(storage, user.id)
    clicks = [json.loads(r["data"])["el"] for r in rows if r["name"] == "click"]
    assert clicks == [f"b{i}" for i in range(len(replies))]  # what was answered, no more
    assert rows[-1]["name"] == "scenario"


async def test_a_frame_that_cannot_be_stored_is_never_answered_success(make_app, database_url):
    async with make_app(db_timeout=0.3) as app:
        storage = get_storage(app.app)
        account = await new_account(storage)
        key = await new_key(storage, account.id)
        async with socket(app.test_client(), key) as ws:
            await visit_home(ws)
            with write_locked(database_url, "events"):
                lost = action("visit", page="lost", app="ecolentomo", home=0)
                assert await talk(ws, CLICK, lost) == [PROBLEM, PROBLEM]
            # The visit that was not stored is not the last visit: the click is on "home".
            assert await talk(ws, CLICK) == [SUCCESS]
        rows = await events_of(storage, account.id)
    assert [(name, page) for name, page, _ in rows] == [
        ("visit", "home"),
        ("click", "home"),
        ("scenario", None),
    ]
    assert rows[-1][2]["path"] == ["home"]


async def test_an_app_stopping_with_open_sockets_stores_them_and_closes_them_1001(make_config):
    # Whatever serves the app (worker processes included), its own shutdown closes the
    # sockets before the storage closes.
    config = make_config()
    app = create_app(config).test_app()
    await app.startup()
    storage = get_storage(app.app)
    account = await new_account(storage)
    key = await new_key(storage, account.id)
    async with socket(app.test_client(), key) as ws:
        session = session_reply((await talk(ws, SESSION))[0])
        assert await talk(ws, HOME, SUBJECTS) == [SUCCESS, SUCCESS]
        stopping = asyncio.ensure_future(app.shutdown())
        with pytest.raises(WebsocketDisconnectError) as closed:
            await receive(ws)
        assert closed.value.args[0] == 1001
        await stopping
    store = make_storage(config)
    await store.open()
    try:
        rows = await stored_events(store, account.id)
        (stored,) = await store.query_sessions(account.id, SessionQuery())
    finally:
        await store.close()
    assert [r["name"] for r in rows] == ["visit", "visit", "scenario"]
    assert json.loads(rows[-1]["data"])["path"] == ["home", "subjects"]
    assert stored.key == session and stored.stopped


def test_the_stats_port_comes_from_its_flag_or_its_environment_variable():
    assert build_config({}, environ={}).stats_port == 0
    assert build_config({}, environ={"LOGGER_STATS_PORT": "5655"}).stats_port == 5655
    assert build_config({"stats_port": 5656}, environ={"LOGGER_STATS_PORT": "1"}).stats_port == 5656
