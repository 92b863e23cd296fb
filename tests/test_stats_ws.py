"""The Stats_usage WebSocket (docs/API.md, "Usage events: the Stats WebSocket"): the original
clients' frames and every reply text, the rows they store, keys, scenarios, batching, on both
backends; then a real server: 200 sockets at once, ``--stats-port``, SIGTERM with open sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket as stdlib_socket
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from quart.testing.connections import WebsocketDisconnectError
from support import (
    ServerProcess,
    count_rows,
    free_port,
    key_name,
    new_account,
    new_key,
    stored_events,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bot_logging_server import create_app
from bot_logging_server.blueprints import stats_ws
from bot_logging_server.config import DatabaseURL, build_config
from bot_logging_server.events import SessionQuery
from bot_logging_server.storage import get_storage, make_storage

# The replies, byte for byte (Python's json.dumps, as the original wrote them).
PONG = '{"result": "success", "message": "pong", "data": {}}'
SUCCESS = '{"result": "success", "message": "Success", "data": {}}'
PROBLEM = (
    '{"result": "error", "message": "There has been a problem, maybe with the data you sent", '
    '"data": {}}'
)
MALFORMED = (
    '{"result": "error", "message": "The data you sent wasn\'t correct or well formated, '
    "'action' and 'data' expected\", \"data\": {}}"
)
NO_SESSION_VISIT = (
    '{"result": "error", "message": "Something was wrong: There is no session registered for '
    'this visit, must open a session first!", "data": {}}'
)
NO_VISIT = (
    '{"result": "error", "message": "Something was wrong: There is no visit registered, you '
    'must send a page visit first!", "data": {}}'
)
NO_SESSION_CALL = (
    '{"result": "error", "message": "Something was wrong: There is no session registered for '
    'this server call, must open a session first!", "data": {}}'
)
NO_KEY = (
    '{"result": "error", "message": "An ingest key is required: connect with '
    '?key=<ingest key>", "data": {}}'
)
UNKNOWN_KEY = '{"result": "error", "message": "Unknown or disabled ingest key", "data": {}}'


def expected(keys: str) -> str:
    return (
        '{"result": "error", "message": "The data you sent wasn\'t correct, expected '
        f'properties: {keys}", "data": {{}}}}'
    )


def unknown(name: str) -> str:
    return f'{{"result": "error", "message": "Action \'{name}\' doesn\'t exist !", "data": {{}}}}'


def action(name: str, **data: Any) -> str:
    """A frame as the original's clients build it (JSON.stringify of buildActionObject)."""
    return json.dumps({"type": "action", "action": name, "data": data})


PING = '{"type":"ping"}'
# The original's test page sends every value as a string ("session,user_id:1205,...").
SESSION = action("session", user_id="1205", site="NS-Shanghai")
HOME = action("visit", page="/Home", app="EcolEntomo", home="1")
SUBJECTS = action("visit", page="/subjects", app="ecolentomo", home="0")
SAMPLES = action("visit", page="samples", app="ecolentomo", home=0)
CLICK = action("click", loc_x="29.6587", loc_y="47.2147", el="div_test#333")


def session_reply(text: str) -> str:
    """The session key of a ``session`` reply, whose data is a JSON *string*."""
    body = json.loads(text)
    assert (body["result"], body["message"]) == ("success", "Success"), text
    assert isinstance(body["data"], str)
    assert body["data"].startswith('{"action":"session", "data":{"session":"'), body["data"]
    return json.loads(body["data"])["data"]["session"]


async def receive(ws: Any) -> str:
    """The next frame from the server (a test fails, never hangs, when none comes)."""
    return await asyncio.wait_for(ws.receive(), 10)


async def talk(ws: Any, *frames: str | bytes) -> list[str]:
    """Send each frame and read its reply."""
    replies = []
    for frame in frames:
        await ws.send(frame)
        replies.append(await receive(ws))
    return replies


def socket(client: Any, key: str | None, path: str = "/ws") -> Any:
    query = {"key": key} if key else {}
    return client.websocket(path, query_string=query, headers={"User-Agent": "Firefox/99"})


async def events_of(storage: Any, user_id: int) -> list[tuple]:
    rows = await stored_events(storage, user_id)
    return [(r["name"], r["page"], json.loads(r["data"])) for r in rows]


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
            session_reply((await talk(ws, SESSION))[0])
            assert await talk(ws, HOME) == [SUCCESS]
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
            session_reply((await talk(ws, SESSION))[0])
            assert await talk(ws, HOME) == [SUCCESS]
            await storage.set_key_disabled(await key_name(storage, account.id), True)
            await ws.send(CLICK)
            assert await refused_with(ws) == (UNKNOWN_KEY, 1008)
        rows = await stored_events(storage, account.id)
        assert [r["name"] for r in rows] == ["visit"]  # no click, no scenario after the refusal


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
        session_reply((await talk(ws, SESSION))[0])
        assert await talk(ws, HOME) == [SUCCESS]
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
        session_reply((await talk(ws, SESSION))[0])
        assert await talk(ws, HOME) == [SUCCESS]
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


@contextlib.contextmanager
def write_locked(backend: str, database_url: str) -> Iterator[None]:
    """Another connection holds the events table's write lock for the block."""
    url = DatabaseURL.parse(database_url)
    if backend == "sqlite":
        other = sqlite3.connect(url.path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    other = pymysql.connect(host=url.host, port=url.port, user=url.user, password=url.password)
    try:
        with other.cursor() as cursor:
            cursor.execute(f"LOCK TABLES `{url.name}`.events WRITE")
        yield
        with other.cursor() as cursor:
            cursor.execute("UNLOCK TABLES")
    finally:
        other.close()


async def test_a_frame_that_cannot_be_stored_is_never_answered_success(
    make_app, backend, database_url
):
    async with make_app(db_timeout=0.3) as app:
        storage = get_storage(app.app)
        account = await new_account(storage)
        key = await new_key(storage, account.id)
        async with socket(app.test_client(), key) as ws:
            session_reply((await talk(ws, SESSION))[0])
            assert await talk(ws, HOME) == [SUCCESS]
            with write_locked(backend, database_url):
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


# -- a real server ---------------------------------------------------------------------------


async def user_and_key(database_url: str) -> tuple[int, str]:
    """A user with an ingest key in the (fresh) database at `database_url`."""
    store = make_storage(build_config({"database_url": database_url}, environ={}))
    await store.open()
    try:
        account = await new_account(store)
        return account.id, await new_key(store, account.id)
    finally:
        await store.close()


async def stored_in(database_url: str, user_id: int) -> list[dict[str, Any]]:
    store = make_storage(build_config({"database_url": database_url}, environ={}))
    await store.open()
    try:
        return await stored_events(store, user_id)
    finally:
        await store.close()


async def open_session(ws: Any, user_id: int = 1) -> str:
    """ping, session, visit home, visit samples; the session key."""
    await ws.send(PING)
    assert await ws.recv() == PONG
    await ws.send(action("session", user_id=user_id, site="s"))
    session = session_reply(await ws.recv())
    for visit in (HOME, SAMPLES):
        await ws.send(visit)
        assert await ws.recv() == SUCCESS
    return session


def click(n: int) -> str:
    return action("click", loc_x="29.66", loc_y="47.21", el=f"b{n}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


SOCKETS, CLICKS_EACH, STORM = 200, 10, 2000


@pytest.mark.slow
async def test_two_hundred_sockets_at_once_each_get_replies_fast_beside_a_click_storm(
    fresh_database_url, tmp_path
):
    user_id, key = await user_and_key(fresh_database_url)
    stats_port = free_port()
    with ServerProcess(fresh_database_url, tmp_path, "--stats-port", str(stats_port)) as server:
        await server.wait_ready()
        ready = asyncio.Barrier(SOCKETS + 2)
        latencies: list[float] = []
        sessions: dict[str, int] = {}

        async def one(i: int) -> None:
            port = stats_port if i % 2 else server.port  # half of them on --stats-port
            async with connect(f"ws://127.0.0.1:{port}/?key={key}", open_timeout=60) as ws:
                sessions[await open_session(ws, i)] = CLICKS_EACH
                await ready.wait()
                for n in range(CLICKS_EACH):
                    started = time.perf_counter()
                    await ws.send(click(n))
                    assert await ws.recv() == SUCCESS
                    latencies.append(time.perf_counter() - started)

        async def storm() -> None:
            # One client sends a storm without reading a reply until it has sent them all.
            async with connect(f"ws://127.0.0.1:{server.port}/ws?key={key}") as ws:
                sessions[await open_session(ws)] = STORM
                await ready.wait()
                for n in range(STORM):
                    await ws.send(click(n))
                assert [await ws.recv() for _ in range(STORM)] == [SUCCESS] * STORM

        try:
            await asyncio.wait_for(
                asyncio.gather(*(one(i) for i in range(SOCKETS)), storm(), ready.wait()), 240
            )
        finally:
            output = server.output()
            print(output[-5000:])
    assert "Traceback" not in output, output[-3000:]
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(f"\n{SOCKETS} sockets, reply time: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    assert len(latencies) == SOCKETS * CLICKS_EACH
    # Measured on a busy 2-core machine, clients and server sharing it: p99 0.2-1.2 s
    # (p50 0.1-0.3 s: 200 clients in a closed loop, a commit per reply). The bound leaves
    # room for a loaded machine; a socket waiting behind another's storm would take longer.
    assert p99 < 3.0, f"p99 {p99:.3f} s"
    stored: dict[str, int] = {}
    for row in await stored_in(fresh_database_url, user_id):
        if row["name"] == "click":
            stored[row["session_key"]] = stored.get(row["session_key"], 0) + 1
    assert stored == sessions


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"], ids=["one-process", "two-workers"])
@pytest.mark.parametrize("http_server", ["hypercorn", "uvicorn"])
async def test_sigterm_stores_every_acknowledged_frame_and_closes_open_sockets_with_1001(
    fresh_database_url, tmp_path, http_server, workers
):
    user_id, key = await user_and_key(fresh_database_url)
    args = ("--http-server", http_server, "--workers", workers)
    with ServerProcess(fresh_database_url, tmp_path, *args) as server:
        await server.wait_ready()
        acked: dict[str, int] = {}
        codes: list[int | None] = []
        url = f"ws://127.0.0.1:{server.port}/?key={key}"

        async def steady() -> None:
            """One click at a time, each after the previous reply."""
            async with connect(url) as ws:
                session = await open_session(ws)
                acked[session] = 0
                try:
                    while True:
                        await ws.send(click(acked[session]))
                        assert await ws.recv() == SUCCESS
                        acked[session] += 1
                except ConnectionClosed as closed:
                    codes.append(closed.rcvd.code if closed.rcvd else None)

        async def pipelined() -> None:
            """Twenty clicks at a time, then their twenty replies."""
            async with connect(url) as ws:
                session = await open_session(ws)
                acked[session] = 0
                try:
                    while True:
                        for n in range(20):
                            await ws.send(click(n))
                        for _ in range(20):
                            assert await ws.recv() == SUCCESS
                            acked[session] += 1
                except ConnectionClosed as closed:
                    codes.append(closed.rcvd.code if closed.rcvd else None)

        clients = [asyncio.ensure_future(steady()) for _ in range(20)]
        clients += [asyncio.ensure_future(pipelined()) for _ in range(5)]
        await asyncio.sleep(1.5)
        server.signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*clients), 30)
        code = await server.wait_exit(30)
        output = server.output()
    assert code == 0, output[-3000:]
    assert codes == [1001] * 25
    assert "Traceback" not in output and " ERROR " not in output, output[-3000:]
    assert key not in output  # uvicorn logs each socket's target: the key is masked
    rows = await stored_in(fresh_database_url, user_id)
    clicks: dict[str, int] = {}
    scenarios: dict[str, dict] = {}
    for row in rows:
        if row["name"] == "click":
            clicks[row["session_key"]] = clicks.get(row["session_key"], 0) + 1
        elif row["name"] == "scenario":
            scenarios[row["session_key"]] = json.loads(row["data"])
    assert sum(acked.values()) > 100
    for session, count in acked.items():
        assert clicks.get(session, 0) >= count, (session, clicks.get(session), count)
    path = {"app": "ecolentomo", "path": ["home", "samples"], "ended": "close"}
    assert scenarios == {session: path for session in acked}


@pytest.mark.slow
@pytest.mark.parametrize("http_server", ["hypercorn", "uvicorn"])
async def test_an_idle_socket_outlives_the_keep_alive_timeout(tmp_path, http_server):
    database = f"sqlite:///{tmp_path / 'x.db'}"
    _, key = await user_and_key(database)
    args = ("--http-server", http_server, "--keep-alive-timeout", "1")
    with ServerProcess(database, tmp_path, *args) as server:
        await server.wait_ready()
        url = f"ws://127.0.0.1:{server.port}/ws?key={key}"
        async with connect(url, ping_interval=None) as ws:
            await ws.send(PING)
            assert await ws.recv() == PONG
            await asyncio.sleep(2.5)  # silent: no frame, no WebSocket ping
            await ws.send(PING)
            assert await ws.recv() == PONG


@pytest.mark.slow
@pytest.mark.parametrize("http_server", ["hypercorn", "uvicorn"])
async def test_a_frame_over_one_mib_closes_the_socket_1009(tmp_path, http_server):
    database = f"sqlite:///{tmp_path / 'x.db'}"
    _, key = await user_and_key(database)
    with ServerProcess(database, tmp_path, "--http-server", http_server) as server:
        await server.wait_ready()
        url = f"ws://127.0.0.1:{server.port}/ws?key={key}"
        async with connect(url, max_size=None) as ws:
            await ws.send(action("click", loc_x=1, loc_y=1, el="x" * 200_000))
            assert await ws.recv() == NO_VISIT  # a large frame is read (and answered)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.send(action("click", loc_x=1, loc_y=1, el="x" * 1_100_000))
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


@pytest.mark.slow
async def test_a_stats_port_in_use_fails_start_up_in_one_line(tmp_path):
    with stdlib_socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        database = f"sqlite:///{tmp_path / 'x.db'}"
        with ServerProcess(database, tmp_path, "--stats-port", str(port)) as server:
            code = await server.wait_exit(30)
            output = server.output()
    assert code == 1, output
    assert (
        output.strip()
        .splitlines()[-1]
        .endswith(f"start-up failed: cannot listen on 127.0.0.1:{port}: address already in use")
    ), output
