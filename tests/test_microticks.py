"""Microticks (docs/EVENTS-INTERFACES.md): form-encoded sessions and events, the original's
bodies, error texts and their order, and the scoped GET listings, on both backends."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from support import count_rows, key_name, new_key, no_leak, stored_events

from bot_logging_server.events import Event, record_events

# jQuery's $.ajax({data: {...}}) encoding: encodeURIComponent, spaces as "+", in the order
# the client's payload object got its keys (the request's own keys, then ts, then token).
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
TS = "2017-08-25T17:09:19.438Z"
TS_ENCODED = "2017-08-25T17%3A09%3A19.438Z"
CLICK_DATA = '{"target":"some_element","clickX":406,"clickY":300}'
CLICK_ENCODED = "%7B%22target%22%3A%22some_element%22%2C%22clickX%22%3A406%2C%22clickY%22%3A300%7D"


def encode(**fields: str) -> bytes:
    """A form body as jQuery.param writes it (the caller gives the fields in order)."""
    return "&".join(
        f"{quote(k, safe='')}={quote(v, safe='~()*!.' + chr(39)).replace('%20', '+')}"
        for k, v in fields.items()
    ).encode()


async def post(client, path: str, body: bytes):
    return await client.post(path, data=body, headers=FORM)


async def answer(response) -> dict:
    text = await response.get_data(as_text=True)
    no_leak(text)
    assert response.content_type == "application/json", text
    return json.loads(text)


async def start(client, key: str) -> str:
    response = await post(client, "/sessions", encode(consumer_key=key, ts=TS, token=""))
    body = await answer(response)
    assert response.status_code == 200, body
    return body["token"]


async def track(client, token: str, action: str = "click", data: str = CLICK_DATA, ts=TS):
    return await post(client, "/events", encode(action=action, data=data, ts=ts, token=token))


# -- the client's own requests --------------------------------------------------------------


async def test_the_clients_session_event_and_stop_requests_get_the_originals_answers(
    client, storage, user
):
    key = await new_key(storage, user.id)
    body = f"consumer_key={key}&ts={TS_ENCODED}&token=".encode()
    assert body == encode(consumer_key=key, ts=TS, token="")
    response = await post(client, "/sessions", body)
    started = await answer(response)
    assert response.status_code == 200 and set(started) == {"status", "token"}
    assert started["status"] == 200
    token = started["token"]
    assert len(token) == 32 and int(token, 16) >= 0

    body = f"action=click&data={CLICK_ENCODED}&ts={TS_ENCODED}&token={token}".encode()
    response = await post(client, "/events", body)
    clicked = await answer(response)
    assert response.status_code == 200 and clicked["status"] == 200
    assert set(clicked) == {"status", "event_id"} and isinstance(clicked["event_id"], int)

    # stopSession(reason): an event, then the stop.
    reason = encode(action="stopSession", data='{"reason":"page unload"}', ts=TS, token=token)
    assert (await answer(await post(client, "/events", reason)))["status"] == 200
    response = await post(client, "/sessions/stop", f"ts={TS_ENCODED}&token={token}".encode())
    assert response.status_code == 200 and await answer(response) == {"status": 200}

    rows = await stored_events(storage, user.id)
    assert rows[0]["id"] == clicked["event_id"]
    click, stop = rows
    assert (click["source"], click["session_key"], click["name"]) == ("microticks", token, "click")
    assert json.loads(click["data"]) == json.loads(CLICK_DATA)
    assert click["data_raw"] == CLICK_DATA and click["client_time"] == TS
    assert click["ingest_key_id"] is not None and click["user_id"] == user.id
    assert stop["name"] == "stopSession" and json.loads(stop["data"]) == {"reason": "page unload"}
    session = await storage.find_session("microticks", token)
    assert session.started_client_time == TS and session.stopped_client_time == TS
    assert session.stopped and session.event_count == 2


async def test_data_that_is_not_json_is_kept_as_sent(client, storage, user):
    token = await start(client, await new_key(storage, user.id))
    response = await track(client, token, "click_book", "book 42 or something else")
    assert response.status_code == 200
    (row,) = await stored_events(storage, user.id)
    assert row["data"] is None and row["data_raw"] == "book 42 or something else"


async def test_a_stopped_session_still_takes_events_as_in_the_original(client, storage, user):
    token = await start(client, await new_key(storage, user.id))
    await post(client, "/sessions/stop", encode(ts=TS, token=token))
    response = await track(client, token)
    assert response.status_code == 200 and (await answer(response))["status"] == 200


# -- errors: texts, shapes and order; nothing written ----------------------------------------


def _error(text: str) -> dict:
    return {"error": text, "status": 400}


def _description(text: str) -> dict:
    return {"description": text, "status": 400}


NO_TS = _error('No "ts" parameter provided')
NO_TOKEN = _error('No "token" parameter provided')
NO_SESSION = _description("Could not find session")


@pytest.mark.parametrize(
    ("path", "fields", "expected"),
    [
        ("/sessions", {}, _error("Invalid consumer_key")),
        ("/sessions", {"ts": TS}, _error("Invalid consumer_key")),
        ("/sessions", {"consumer_key": "", "ts": TS}, _error("Invalid consumer_key")),
        ("/sessions", {"consumer_key": "0" * 32, "ts": TS}, _error("Invalid consumer_key")),
        ("/sessions", {"consumer_key": "nope", "ts": TS}, _error("Invalid consumer_key")),
        ("/sessions", {"consumer_key": "{key}"}, NO_TS),
        ("/sessions", {"consumer_key": "{disabled}"}, _error("Consumer is not active.")),
        ("/sessions/stop", {}, NO_TS),
        ("/sessions/stop", {"token": "{token}"}, NO_TS),
        ("/sessions/stop", {"ts": TS}, NO_TOKEN),
        ("/sessions/stop", {"ts": TS, "token": ""}, NO_SESSION),
        ("/sessions/stop", {"ts": TS, "token": "f" * 32}, NO_SESSION),
        ("/sessions/stop", {"ts": TS, "token": "t" * 500}, NO_SESSION),
        ("/events", {}, NO_TOKEN),
        ("/events", {"action": "a", "data": "d", "ts": TS}, NO_TOKEN),
        (
            "/events",
            {"token": "{token}", "data": "d", "ts": TS},
            _error('No "action" parameter provided'),
        ),
        (
            "/events",
            {"token": "{token}", "action": "a", "ts": TS},
            _error('No "data" parameter provided'),
        ),
        ("/events", {"token": "{token}", "action": "a", "data": "d"}, NO_TS),
        ("/events", {"token": "nope", "action": "a", "data": "d", "ts": TS}, NO_SESSION),
        ("/events", {"token": "", "action": "a", "data": "d", "ts": TS}, NO_SESSION),
        (
            "/events",
            {"token": "{token}", "action": "a" * 256, "data": "d", "ts": TS},
            _error("action: longer than 255 characters"),
        ),
        (
            "/events",
            {"token": "{token}", "action": "a", "data": "d" * 262_145, "ts": TS},
            _error("data: must be a string of at most 262144"),
        ),
    ],
)
async def test_refusals_answer_the_originals_error_texts_in_its_order(
    client, storage, user, path, fields, expected
):
    values = {
        "key": await new_key(storage, user.id),
        "disabled": await new_key(storage, user.id, disabled=True),
    }
    values["token"] = await start(client, values["key"])
    before = await count_rows(storage, "sessions", user.id)
    body = encode(**{k: v.format(**values) if v.startswith("{") else v for k, v in fields.items()})
    response = await post(client, path, body)
    assert response.status_code == 400
    assert await answer(response) == expected
    assert await count_rows(storage, "events", user.id) == 0
    assert await count_rows(storage, "sessions", user.id) == before
    session = await storage.find_session("microticks", values["token"])
    assert not session.stopped


async def test_stopping_twice_says_the_session_was_already_stopped(client, storage, user):
    token = await start(client, await new_key(storage, user.id))
    first = await post(client, "/sessions/stop", encode(ts=TS, token=token))
    assert first.status_code == 200
    again = await post(client, "/sessions/stop", encode(ts="later", token=token))
    assert again.status_code == 400
    assert await answer(again) == _description("Session was already stopped.")
    session = await storage.find_session("microticks", token)
    assert session.stopped_client_time == TS


async def test_a_key_disabled_after_its_session_started_writes_no_more_events(
    client, storage, user
):
    key = await new_key(storage, user.id)
    token = await start(client, key)
    await storage.set_key_disabled(await key_name(storage, user.id), True)
    # The key cache trusts a key for auth_cache_seconds; a session's key is read each time.
    response = await track(client, token)
    assert response.status_code == 400
    assert await answer(response) == _error("Consumer is not active.")
    assert await count_rows(storage, "events", user.id) == 0


async def test_a_json_body_is_not_form_fields(client, storage, user):
    key = await new_key(storage, user.id)
    response = await client.post("/sessions", json={"consumer_key": key, "ts": TS})
    assert response.status_code == 400 and await answer(response) == _error("Invalid consumer_key")


# -- reading ----------------------------------------------------------------------------------


async def listing(client, account, path: str, **params) -> dict:
    params = {"key": account.token, "user": account.name, **params}
    response = await client.get(path, query_string=params)
    body = await answer(response)
    assert response.status_code == 200, body
    assert body["status"] == 200 and body["count"] == len(body[path.strip("/")])
    return body


async def test_get_events_lists_the_users_events_with_data_parsed(client, storage, user):
    token = await start(client, await new_key(storage, user.id))
    await track(client, token)
    await track(client, token, "note", "plain text", ts="2017-08-25T17:10:00.000Z")
    body = await listing(client, user, "/events")
    session = await storage.find_session("microticks", token)
    assert body["events"][0] == {
        "id": body["events"][0]["id"],
        "session_id": session.id,
        "time": TS,
        "action": "click",
        "data": json.loads(CLICK_DATA),
    }
    assert body["events"][1]["data"] == "plain text"
    assert [e["action"] for e in body["events"]] == ["click", "note"]  # by id, ascending


async def test_get_sessions_counts_clicks_and_the_last_click(client, storage, user):
    key = await new_key(storage, user.id)
    busy, idle = await start(client, key), await start(client, key)
    await track(client, busy, ts="2017-08-25T17:09:20.000Z")
    await track(client, busy, ts="2017-08-25T17:09:30.000Z")
    await track(client, busy, "scroll", "{}", ts="2017-08-25T17:09:40.000Z")
    await post(client, "/sessions/stop", encode(ts="2017-08-25T17:10:00.000Z", token=busy))
    body = await listing(client, user, "/sessions")
    by_id = {s["id"]: s for s in body["sessions"]}
    busy_row = by_id[(await storage.find_session("microticks", busy)).id]
    idle_row = by_id[(await storage.find_session("microticks", idle)).id]
    key_id = (await storage.list_keys(user.id))[0].id
    assert busy_row == {
        "id": busy_row["id"],
        "consumer_id": key_id,
        "started_at": TS,
        "stopped_at": "2017-08-25T17:10:00.000Z",
        "clicks": 2,
        "last_action": "2017-08-25T17:09:30.000Z",
    }
    assert idle_row["clicks"] == 0 and idle_row["last_action"] is None
    assert idle_row["stopped_at"] is None


async def test_filters_sort_limit_and_offset(client, storage, user):
    first_key, second_key = await new_key(storage, user.id), await new_key(storage, user.id)
    a = await start(client, first_key)
    b = await start(client, second_key)
    for i, token in enumerate([a, b, a]):
        await track(client, token, f"act{i}", "{}", ts=f"2017-08-2{i + 5}T10:00:00Z")
    keys = {k.id: k for k in await storage.list_keys(user.id)}
    second = next(k for k in keys.values() if k.id != min(keys))
    names = lambda body: [e["action"] for e in body["events"]]  # noqa: E731
    assert names(await listing(client, user, "/events", **{"sort.desc": "id"})) == [
        "act2",
        "act1",
        "act0",
    ]
    assert names(await listing(client, user, "/events", sort="action", limit="2")) == [
        "act0",
        "act1",
    ]
    assert names(await listing(client, user, "/events", limit="1", offset="2")) == ["act2"]
    assert names(await listing(client, user, "/events", date="2017-08-26")) == ["act1"]
    assert names(await listing(client, user, "/events", date="2017-08")) == [
        "act0",
        "act1",
        "act2",
    ]
    assert names(await listing(client, user, "/events", consumer=str(second.id))) == ["act1"]
    assert names(await listing(client, user, "/events", consumer=second.name)) == ["act1"]
    assert names(await listing(client, user, "/events", consumer="nobody")) == []
    assert names(await listing(client, user, "/events", ip="<local>")) == ["act0", "act1", "act2"]
    assert names(await listing(client, user, "/events", ip="10.9.9.9")) == []
    sessions = await listing(client, user, "/sessions", **{"sort.desc": "started_at"})
    assert len(sessions["sessions"]) == 2
    assert (await listing(client, user, "/sessions", consumer=second.name))["count"] == 1


@pytest.mark.parametrize("path", ["/events", "/sessions"])
@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"sort": "id; DROP TABLE events"}, "sort: must be one of"),
        ({"sort.desc": "data"}, "sort: must be one of"),
        ({"sort": "id", "sort.desc": "id"}, "sort: give sort or sort.desc, not both"),
        ({"limit": "0"}, "limit: must be an integer from 1 to 1000"),
        ({"limit": "1001"}, "limit: must be an integer from 1 to 1000"),
        ({"limit": "ten"}, "limit: must be an integer"),
        ({"offset": "-1"}, "offset: must be an integer"),
        ({"date": "yesterday"}, "date: must be the start of a time"),
        ({"date": "2017-13"}, "date: not a valid date"),
        ({"date": "9999-12-31T23:59:59"}, "date: not a valid date"),
    ],
)
async def test_bad_listing_parameters_are_400s_never_sql(client, user, path, params, description):
    query = {"key": user.token, "user": user.name, **params}
    response = await client.get(path, query_string=query)
    assert response.status_code == 400
    body = await answer(response)
    assert body["status"] == 400 and body["description"].startswith(description), body


@pytest.mark.parametrize("path", ["/events", "/sessions"])
async def test_listings_need_a_users_token_and_answer_401_in_the_originals_shape(
    client, storage, user, path
):
    key = await new_key(storage, user.id)
    cases = [
        ({}, 'Please specify an API key using the "key" query string parameter.'),
        (
            {"key": user.token},
            'Please name the key\'s user with the "user" query string parameter.',
        ),
        ({"key": "0" * 32, "user": user.name}, "The key is not valid."),
        ({"key": key, "user": user.name}, "The key is not valid."),  # an ingest key never reads
    ]
    for params, description in cases:
        response = await client.get(path, query_string=params)
        assert response.status_code == 401
        assert await answer(response) == {"description": description, "status": 401}
    response = await client.get(
        path, query_string={"key": user.token}, headers={"X-User": user.name}
    )
    assert response.status_code == 200


# -- isolation --------------------------------------------------------------------------------


async def test_a_key_writes_for_its_owner_and_each_user_lists_only_their_own(
    client, storage, make_user
):
    alice, bob = await make_user(), await make_user()
    alice_token = await start(client, await new_key(storage, alice.id))
    bob_token = await start(client, await new_key(storage, bob.id))
    await track(client, alice_token, "alice-click")
    await track(client, bob_token, "bob-click")
    assert [r["name"] for r in await stored_events(storage, alice.id)] == ["alice-click"]
    assert [r["name"] for r in await stored_events(storage, bob.id)] == ["bob-click"]
    alice_events = await listing(client, alice, "/events")
    assert [e["action"] for e in alice_events["events"]] == ["alice-click"]
    bob_sessions = await listing(client, bob, "/sessions")
    bob_session = await storage.find_session("microticks", bob_token)
    assert [s["id"] for s in bob_sessions["sessions"]] == [bob_session.id]
    # Bob cannot filter his way into Alice's key.
    alice_key_name = await key_name(storage, alice.id)
    assert (await listing(client, bob, "/events", consumer=alice_key_name))["count"] == 0


async def test_listings_show_only_microticks_events(client, storage, user):
    owner = await storage.get_user(user.name)
    await record_events(owner, [Event("eye", "click", session="s")], storage=storage)
    assert (await listing(client, user, "/events"))["count"] == 0
    assert (await listing(client, user, "/sessions"))["count"] == 0


# -- CORS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/sessions", "/sessions/stop", "/events"])
async def test_preflight_and_answers_allow_any_origin(client, path):
    response = await client.open(
        path,
        method="OPTIONS",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    refused = await post(client, path, b"")
    assert refused.status_code == 400
    assert refused.headers["Access-Control-Allow-Origin"] == "*"


ODD_TEXTS = [
    "",
    " ",
    "x" * 300,
    "\x00",
    "naïve 😀",
    "%FF",
    "null",
    "[]",
    "{",
    "9" * 40,
    "2017-02-30T25:61:61Z",
]


@pytest.mark.parametrize("field", ["token", "action", "data", "ts", "consumer_key"])
async def test_no_value_of_any_field_gives_a_500(client, storage, user, field):
    key = await new_key(storage, user.id)
    token = await start(client, key)
    good = {"consumer_key": key, "token": token, "action": "click", "data": "{}", "ts": TS}
    for value in ODD_TEXTS:
        fields = {**good, field: value}
        for path in ("/sessions", "/events", "/sessions/stop"):
            response = await post(client, path, encode(**fields))
            assert response.status_code in (200, 400), (field, value, path)
            await answer(response)
        token = await start(client, key)  # the stop above may have stopped it
        good["token"] = token
    # Bytes that are not UTF-8 in a form value.
    response = await post(
        client, "/events", b"token=" + token.encode() + b"&action=%FF%FE&data=x&ts=1"
    )
    assert response.status_code == 200
