"""The Stats_usage WebSocket (docs/API.md, "Usage events: the Stats WebSocket"): the original
clients' frames and every reply text, the rows they store, sessions, scenarios and keys, on
both backends. Batching and durability: tests/test_stats_ws_durability.py; a real server:
tests/test_stats_ws_server.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from quart.testing.connections import WebsocketDisconnectError
from support import (
    count_rows,
    key_name,
    new_account,
    new_key,
    stored_events,
)
from support.stats_ws import (
    CLICK,
    HOME,
    MALFORMED,
    NO_KEY,
    NO_SESSION_CALL,
    NO_SESSION_VISIT,
    NO_VISIT,
    PING,
    PONG,
    PROBLEM,
    SAMPLES,
    SESSION,
    SUBJECTS,
    SUCCESS,
    UNKNOWN_KEY,
    action,
    events_of,
    expected,
    receive,
    session_reply,
    socket,
    talk,
    unknown,
    visit_home,
)

from bot_logging_server.events import SessionQuery
from bot_logging_server.storage import get_storage

# -- the original clients' conversation ---------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/ws"])
async def test_the_original_clients_frames_get_their_exact_replies_and_store_events(
    client, storage, user, path
):
    key = await new_key(storage, user.id)
    async with socket(client, key, path) as ws:
        assert await talk(ws, PING) == [PONG]
        (opened,) = await talk(ws, SESSION)
        session = session_reply(opened)
        assert await talk(ws, HOME, CLICK, SUBJECTS) == [SUCCESS] * 3
        assert await talk(ws, action("serverCall", infos="echo")) == [SUCCESS]
        (echo,) = await talk(ws, action("echo"))
        assert json.loads(echo) == {
            "result": "success",
            "message": "Echoing",
            "data": {"type": "action", "action": "echo", "data": {}},
        }
    rows = await stored_events(storage, user.id)
    assert {(r["source"], r["session_key"]) for r in rows} == {("stats", session)}
    assert all(r["ip"] and r["user_agent"] == "Firefox/99" for r in rows)
    assert all(r["ingest_key_id"] is not None for r in rows)
    assert await events_of(storage, user.id) == [
        ("visit", "home", {"page": "home", "app": "ecolentomo", "home": True}),
        (
            "click",
            "home",
            {"loc_x": 29.6587, "loc_y": 47.2147, "el": "div_test#333", "app": "ecolentomo"},
        ),
        ("visit", "subjects", {"page": "subjects", "app": "ecolentomo", "home": False}),
        ("serverCall", None, {"infos": "echo"}),
        ("scenario", None, {"app": "ecolentomo", "path": ["home", "subjects"], "ended": "close"}),
    ]
    (stored,) = await storage.query_sessions(user.id, SessionQuery(source="stats"))
    assert stored.key == session
    assert stored.attributes == {"site": "NS-Shanghai", "user_id": 1205}
    assert stored.stopped  # the socket closed
    assert stored.user_agent == "Firefox/99"


async def test_a_plain_get_of_the_root_is_still_the_viewer_page(client):
    response = await client.get("/")
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")


@pytest.mark.parametrize(
    ("user_id", "loc_x", "home", "stored_id", "stored_x", "stored_home"),
    [
        (12, 29.66, 1, 12, 29.66, True),
        ("12", "29.66", "1", 12, 29.66, True),
        (" 12 ", " 5 ", "true", 12, 5.0, True),
        (12.0, "1e1", False, 12, 10.0, False),
        ("-3", "-0.5", "0", -3, -0.5, False),
    ],
    ids=["numbers", "numeric-strings", "padded-strings", "float-id-exponent", "negatives"],
)
async def test_numbers_may_come_as_numeric_strings(
    client, storage, user, user_id, loc_x, home, stored_id, stored_x, stored_home
):
    key = await new_key(storage, user.id)
    async with socket(client, key) as ws:
        session_reply((await talk(ws, action("session", user_id=user_id, site=7)))[0])
        frames = [
            action("visit", page="p", app="a", home=home),
            action("click", loc_x=loc_x, loc_y="100", el="b"),
        ]
        assert await talk(ws, *frames) == [SUCCESS, SUCCESS]
    (session,) = await storage.query_sessions(user.id, SessionQuery())
    assert session.attributes == {"site": "7", "user_id": stored_id}
    rows = await events_of(storage, user.id)
    assert rows[0][2]["home"] is stored_home
    assert (rows[1][2]["loc_x"], rows[1][2]["loc_y"]) == (stored_x, 100.0)


# Each case: frames sent first (all must succeed), then the frame refused and its reply.
ERRORS = {
    "not-json": ([], "nope", PROBLEM),
    "not-utf8": ([], b"\xff\xfe{", PROBLEM),
    "a-json-array": ([], "[1, 2]", PROBLEM),
    "null": ([], "null", MALFORMED),
    "no-action": ([], '{"type": "action", "data": {}}', MALFORMED),
    "no-data": ([], '{"type": "action", "action": "session"}', MALFORMED),
    "null-data": ([], '{"action": "visit", "data": null}', MALFORMED),
    "a-ping-with-an-action": (
        [],
        '{"type": "ping", "action": "ping", "data": {}}',
        unknown("ping"),
    ),
    "unknown-action": ([], action("fly"), unknown("fly")),
    "action-not-a-string": ([], '{"action": 5, "data": {}}', PROBLEM),
    "session-without-keys": ([], action("session", user_id=1), expected("user_id,site")),
    "session-data-not-an-object": (
        [],
        '{"action": "session", "data": "x"}',
        expected("user_id,site"),
    ),
    "session-user-id-not-a-number": ([], action("session", user_id="abc", site="s"), PROBLEM),
    "session-user-id-a-boolean": ([], action("session", user_id=True, site="s"), PROBLEM),
    "session-user-id-too-big": ([], action("session", user_id=2**63, site="s"), PROBLEM),
    "session-site-an-object": ([], action("session", user_id=1, site={}), PROBLEM),
    "visit-before-session": ([], HOME, NO_SESSION_VISIT),
    "visit-before-session-without-keys": ([], action("visit"), NO_SESSION_VISIT),
    "visit-without-keys": ([SESSION], action("visit", page="p"), expected("page,app,home")),
    "visit-home-not-a-flag": ([SESSION], action("visit", page="p", app="a", home=2), PROBLEM),
    "visit-page-empty": ([SESSION], action("visit", page="", app="a", home=0), PROBLEM),
    "visit-page-a-number": ([SESSION], action("visit", page=5, app="a", home=0), PROBLEM),
    "click-before-visit": ([SESSION], CLICK, NO_VISIT),
    "click-without-keys-before-visit": ([], action("click", loc_x=1), expected("loc_x,loc_y,el")),
    "click-loc-empty": ([SESSION, HOME], action("click", loc_x="", loc_y=1, el="e"), PROBLEM),
    "click-loc-nan": ([SESSION, HOME], action("click", loc_x="NaN", loc_y=1, el="e"), PROBLEM),
    "click-loc-a-boolean": ([SESSION, HOME], action("click", loc_x=True, loc_y=1, el="e"), PROBLEM),
    "click-el-a-list": ([SESSION, HOME], action("click", loc_x=1, loc_y=1, el=[]), PROBLEM),
    "server-call-without-keys": ([SESSION], action("serverCall"), expected("infos")),
    "server-call-without-session": ([], action("serverCall", infos="x"), NO_SESSION_CALL),
    "server-call-session-empty": ([], action("serverCall", infos="x", session=""), PROBLEM),
    "server-call-session-too-long": ([], action("serverCall", infos=1, session="s" * 65), PROBLEM),
}


@pytest.mark.parametrize(("before", "frame", "answer"), ERRORS.values(), ids=ERRORS.keys())
async def test_every_error_case_answers_its_text_in_one_frame_and_stores_nothing(
    client, storage, user, before, frame, answer
):
    key = await new_key(storage, user.id)
    async with socket(client, key) as ws:
        for sent in before:
            assert json.loads((await talk(ws, sent))[0])["result"] == "success"
        events = await count_rows(storage, "events", user.id)
        sessions = await count_rows(storage, "sessions", user.id)
        assert await talk(ws, frame) == [answer]
        # One frame per frame: the next reply is the ping's, nothing in between.
        assert await talk(ws, PING) == [PONG]
        assert await count_rows(storage, "events", user.id) == events
        assert await count_rows(storage, "sessions", user.id) == sessions


async def test_a_refused_frame_changes_nothing_of_the_connection(client, storage, user):
    key = await new_key(storage, user.id)
    async with socket(client, key) as ws:
        bad_session = action("session", user_id="x", site="s")
        assert await talk(ws, bad_session, HOME) == [PROBLEM, NO_SESSION_VISIT]
        session_reply((await talk(ws, SESSION))[0])
        bad_visit = action("visit", page="x", app="a", home="maybe")
        assert await talk(ws, bad_visit, CLICK) == [PROBLEM, NO_VISIT]
    assert await count_rows(storage, "events", user.id) == 0


# -- sessions, server calls, scenarios ----------------------------------------------------


async def test_a_server_call_may_name_its_session(client, storage, user):
    key = await new_key(storage, user.id)
    async with socket(client, key) as ws:
        frames = [
            action("serverCall", infos={"url": "/api/x"}, session="back-end-7"),
            action("serverCall", infos="n", session=42),
        ]
        assert await talk(ws, *frames) == [SUCCESS, SUCCESS]
        own = session_reply((await talk(ws, SESSION))[0])
        frames = [
            action("serverCall", infos="named", session="back-end-7"),
            action("serverCall", infos="own", session=None),
        ]
        assert await talk(ws, *frames) == [SUCCESS, SUCCESS]
    rows = await stored_events(storage, user.id)
    assert [(r["session_key"], json.loads(r["data"])) for r in rows] == [
        ("back-end-7", {"infos": {"url": "/api/x"}}),
        ("42", {"infos": "n"}),
        ("back-end-7", {"infos": "named"}),
        (own, {"infos": "own"}),
    ]


async def test_the_scenario_collapses_repeats_and_restarts_at_a_home_page(client, storage, user):
    key = await new_key(storage, user.id)
    async with socket(client, key) as ws:
        session_reply((await talk(ws, SESSION))[0])
        visits = [HOME, HOME, SUBJECTS, SUBJECTS, SAMPLES, HOME, SUBJECTS]
        assert await talk(ws, *visits) == [SUCCESS] * len(visits)
        other_app = action("visit", page="/a", app="other", home=0)
        assert await talk(ws, other_app) == [SUCCESS]
    scenarios = [data for name, _, data in await events_of(storage, user.id) if name == "scenario"]
    assert scenarios == [
        {"app": "ecolentomo", "path": ["home", "subjects", "samples"], "ended": "home"},
        {"app": "ecolentomo", "path": ["home", "subjects"], "ended": "app"},
        {"app": "other", "path": ["a"], "ended": "close"},
    ]


async def test_a_new_session_ends_the_scenario_and_stops_the_previous_session(
    client, storage, user
):
    key = await new_key(storage, user.id)
    async with socket(client, key) as ws:
        first = session_reply((await talk(ws, SESSION))[0])
        assert await talk(ws, HOME, SUBJECTS) == [SUCCESS, SUCCESS]
        second = session_reply((await talk(ws, action("session", user_id=2, site="b")))[0])
        # The last visit stays: a click goes into the new session, on that page.
        assert await talk(ws, CLICK) == [SUCCESS]
        sessions = {s.key: s for s in await storage.query_sessions(user.id, SessionQuery())}
        assert sessions[first].stopped and not sessions[second].stopped
    rows = await stored_events(storage, user.id)
    assert [(r["name"], r["session_key"], r["page"]) for r in rows] == [
        ("visit", first, "home"),
        ("visit", first, "subjects"),
        ("scenario", first, None),
        ("click", second, "subjects"),
    ]
    assert json.loads(rows[2]["data"])["ended"] == "session"


async def test_a_socket_closed_mid_scenario_stores_its_scenario(client, storage, user):
    key = await new_key(storage, user.id)
    async with socket(client, key) as ws:
        session_reply((await talk(ws, SESSION))[0])
        # Not waiting for the replies: the client goes away with frames still in flight,
        # some of them arriving while the first one is being stored.
        await ws.send(HOME)
        for _ in range(3):
            await asyncio.sleep(0)
        for frame in (SUBJECTS, CLICK, SAMPLES):
            await ws.send(frame)
    rows = await events_of(storage, user.id)
    assert [name for name, _, _ in rows] == ["visit", "visit", "click", "visit", "scenario"]
    assert rows[-1][2] == {
        "app": "ecolentomo",
        "path": ["home", "subjects", "samples"],
        "ended": "close",
    }
    (session,) = await storage.query_sessions(user.id, SessionQuery())
    assert session.stopped and session.event_count == 5


# -- who may write --------------------------------------------------------------------------


async def refused_with(ws: Any) -> tuple[str, int]:
    """The one reply of a refused socket, and the code it is then closed with."""
    answer = await receive(ws)
    with pytest.raises(WebsocketDisconnectError) as closed:
        await receive(ws)
    return answer, closed.value.args[0]


async def test_without_a_key_the_socket_gets_the_error_and_is_closed_1008(client, storage, user):
    async with socket(client, None) as ws:
        assert await refused_with(ws) == (NO_KEY, 1008)


@pytest.mark.parametrize("kind", ["unknown", "disabled", "not-key-shaped"])
async def test_a_bad_key_gets_the_error_and_is_closed_1008(client, storage, user, kind):
    key = {
        "unknown": "0" * 32,
        "disabled": await new_key(storage, user.id, disabled=True),
        "not-key-shaped": "x",
    }[kind]
    async with socket(client, key, "/") as ws:
        assert await refused_with(ws) == (UNKNOWN_KEY, 1008)
    assert await count_rows(storage, "sessions", user.id) == 0


async def test_without_a_key_events_go_to_the_keyless_user_when_it_is_set(make_app):
    async with make_app(keyless_events_user="anonymous_web") as app:
        storage = get_storage(app.app)
        account = await new_account(storage, name="anonymous_web")
        async with socket(app.test_client(), None) as ws:
            await visit_home(ws)
        rows = await stored_events(storage, account.id)
        assert [(r["name"], r["ingest_key_id"]) for r in rows] == [
            ("visit", None),
            ("scenario", None),
        ]


async def test_a_key_disabled_while_its_socket_is_open_stops_it_with_1008(make_app):
    async with make_app(auth_cache_seconds=0) as app:
        storage = get_storage(app.app)
        account = await new_account(storage)
        key = await new_key(storage, account.id)
        async with socket(app.test_client(), key) as ws:
            await visit_home(ws)
            await storage.set_key_disabled(await key_name(storage, account.id), True)
            await ws.send(CLICK)
            assert await refused_with(ws) == (UNKNOWN_KEY, 1008)
        rows = await stored_events(storage, account.id)
        assert [r["name"] for r in rows] == ["visit"]  # no click, no scenario after the refusal
