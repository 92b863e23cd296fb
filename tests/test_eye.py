"""The Eye (docs/EVENTS-INTERFACES.md): ``POST /eye/collector`` with DRF's ``Token`` header,
its exact answers, and the four queries, on both backends."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from support import count_rows, new_account, new_key, no_leak, stored_events

from bot_logging_server.events import Event, SessionQuery, record_events
from bot_logging_server.storage import get_storage

# What The Eye's client sends, byte for byte (json.dumps of its dict, DRF token header).
CLIENT_BODY = (
    b'{"session_id": "e2085be5-9137-4e4e-80b5-f1ffddc25423", "category": "page interaction", '
    b'"name": "pageview", "data": {"host": "www.consumeraffairs.com", "path": "/"}, '
    b'"timestamp": "2022-01-09 09:15:27.243860"}'
)
SESSION = "e2085be5-9137-4e4e-80b5-f1ffddc25423"
NOT_PROVIDED = {"detail": "Authentication credentials were not provided."}
INVALID = {"detail": "Invalid token."}


def token_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Token {key}", "Content-Type": "application/json"}


def user_headers(account) -> dict[str, str]:
    return {"Authorization": f"Token {account.token}", "X-User": account.name}


async def collect(client, key: str, body=None, **headers):
    if body is None:
        body = CLIENT_BODY
    elif not isinstance(body, bytes):
        body = json.dumps(body).encode()
    return await client.post("/eye/collector", data=body, headers={**token_headers(key), **headers})


def event(session="s1", name="submit", **fields) -> dict:
    return {
        "session_id": session,
        "category": fields.pop("category", "form interaction"),
        "name": name,
        "data": fields.pop("data", {"host": "h", "path": "/form"}),
        "timestamp": fields.pop("timestamp", "2022-01-09 09:15:27.243860"),
        **fields,
    }


async def answer(response) -> object:
    text = await response.get_data(as_text=True)
    no_leak(text)
    assert response.content_type == "application/json", text
    return json.loads(text)


async def list_events(client, account, path: str, **params) -> dict:
    response = await client.get(path, query_string=params, headers=user_headers(account))
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


# -- the collector ------------------------------------------------------------------------


async def test_the_clients_request_is_answered_added_then_updated_as_json_strings(
    client, storage, user
):
    key = await new_key(storage, user.id)
    first = await collect(client, key)
    assert first.status_code == 200
    assert first.content_type == "application/json"
    assert await first.get_data() == b'"Session with session_id:' + SESSION.encode() + b' added!"'
    second = await collect(client, key)
    assert await second.get_data() == (
        b'"Session with session_id:' + SESSION.encode() + b' updated!"'
    )
    rows = await stored_events(storage, user.id)
    assert len(rows) == 2
    row = rows[0]
    assert (row["source"], row["session_key"], row["category"], row["name"]) == (
        "eye",
        SESSION,
        "page interaction",
        "pageview",
    )
    assert json.loads(row["data"]) == {"host": "www.consumeraffairs.com", "path": "/"}
    assert row["page"] == "/"
    assert row["client_time"] == "2022-01-09 09:15:27.243860"
    assert row["data_raw"] is None  # no extra keys: nothing kept beside the data
    assert row["ingest_key_id"] is not None and row["user_id"] == user.id


async def test_the_trailing_slash_path_of_the_django_view_works_too(client, storage, user):
    key = await new_key(storage, user.id)
    response = await client.post("/eye/collector/", data=CLIENT_BODY, headers=token_headers(key))
    assert await answer(response) == f"Session with session_id:{SESSION} added!"


async def test_fifty_concurrent_posts_to_one_session_keep_all_fifty_and_add_it_once(
    client, storage, user
):
    key = await new_key(storage, user.id)
    responses = await asyncio.gather(
        *(collect(client, key, event("busy", name=f"e{i}")) for i in range(50))
    )
    bodies = [await answer(r) for r in responses]
    assert all(r.status_code == 200 for r in responses)
    assert bodies.count("Session with session_id:busy added!") == 1
    assert bodies.count("Session with session_id:busy updated!") == 49
    rows = await stored_events(storage, user.id)
    assert sorted(r["name"] for r in rows) == sorted(f"e{i}" for i in range(50))
    sessions = await storage.query_sessions(user.id, SessionQuery())
    assert [(s.key, s.event_count) for s in sessions] == [("busy", 50)]


async def test_extra_keys_are_kept_and_come_back_as_extra(client, storage, user):
    key = await new_key(storage, user.id)
    body = json.dumps(event("x", referrer="https://a.example/", ab_test={"arm": 2})).encode()
    await collect(client, key, body)
    (row,) = await stored_events(storage, user.id)
    assert row["data_raw"] == body.decode()
    page = await list_events(client, user, "/eye/event", session_id="x")
    assert page["results"][0]["extra"] == {"referrer": "https://a.example/", "ab_test": {"arm": 2}}


async def test_a_users_own_token_with_x_user_writes_for_that_user(client, storage, user):
    response = await client.post("/eye/collector", data=CLIENT_BODY, headers={**user_headers(user)})
    assert await answer(response) == f"Session with session_id:{SESSION} added!"
    (row,) = await stored_events(storage, user.id)
    assert row["ingest_key_id"] is None


# -- refusals: DRF's 401s, then 400s for the body; nothing is written -------------------


@pytest.mark.parametrize(
    ("authorization", "body"),
    [
        pytest.param(None, NOT_PROVIDED, id="no-header"),
        pytest.param("Bearer 0123456789abcdef0123456789abcdef", NOT_PROVIDED, id="other-scheme"),
        pytest.param(
            "Token", {"detail": "Invalid token header. No credentials provided."}, id="no-key"
        ),
        pytest.param(
            "Token a b",
            {"detail": "Invalid token header. Token string should not contain spaces."},
            id="spaces",
        ),
        pytest.param("Token 0123456789abcdef0123456789abcdef", INVALID, id="unknown-key"),
        pytest.param("Token not-a-key", INVALID, id="malformed-key"),
    ],
)
async def test_missing_or_bad_credentials_get_drfs_401(client, storage, user, authorization, body):
    await new_key(storage, user.id)
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = await client.post("/eye/collector", data=CLIENT_BODY, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Token"
    assert await answer(response) == body
    assert await count_rows(storage, "events", user.id) == 0


async def test_a_disabled_key_is_an_inactive_user(client, storage, user):
    key = await new_key(storage, user.id, disabled=True)
    response = await collect(client, key)
    assert response.status_code == 401
    assert await answer(response) == {"detail": "User inactive or deleted."}
    assert await count_rows(storage, "events", user.id) == 0


async def test_a_key_of_a_disabled_user_is_an_inactive_user(client, storage, user):
    key = await new_key(storage, user.id)
    await storage.set_disabled(user.name, True)
    response = await collect(client, key)
    assert response.status_code == 401
    assert await answer(response) == {"detail": "User inactive or deleted."}


async def test_a_wrong_user_token_with_x_user_is_an_invalid_token(client, storage, user):
    headers = {"Authorization": "Token " + "0" * 32, "X-User": user.name}
    response = await client.post("/eye/collector", data=CLIENT_BODY, headers=headers)
    assert response.status_code == 401 and await answer(response) == INVALID
    assert await count_rows(storage, "events", user.id) == 0


BAD_BODIES = [
    pytest.param(b"{not json", "JSON parse error", id="not-json"),
    pytest.param(b"", "JSON parse error", id="empty"),
    pytest.param(b"[1, 2]", "body: must be a JSON object", id="list"),
    pytest.param(b'"text"', "body: must be a JSON object", id="string"),
    pytest.param({"name": "x"}, "session_id: this field is required", id="no-session"),
    pytest.param(event(None), "session_id: this field is required", id="null-session"),
    pytest.param(event(""), "session_id: this field is required", id="empty-session"),
    pytest.param(event({"a": 1}), "session_id: must be a string", id="object-session"),
    pytest.param(event(True), "session_id: must be a string", id="bool-session"),
    pytest.param(event("s" * 65), "session_id: must be 1-64 characters", id="long-session"),
    pytest.param(event(name=None), "name: this field is required", id="no-name"),
    pytest.param(event(name=7), "name: must be a string", id="number-name"),
    pytest.param(event(name="n" * 256), "name: longer than 255", id="long-name"),
    pytest.param(event(category=["a"]), "category: must be a string", id="list-category"),
    pytest.param(event(category="c" * 256), "category: longer than 255", id="long-category"),
    pytest.param(event(data={"x": "y" * 262_144}), "data: longer than", id="huge-data"),
    pytest.param(event(extra="z" * 262_144), "body: must be a string of at most", id="huge-extra"),
]


@pytest.mark.parametrize(("body", "detail"), BAD_BODIES)
async def test_bad_input_on_every_field_is_a_400_detail_and_writes_nothing(
    client, storage, user, body, detail
):
    key = await new_key(storage, user.id)
    response = await collect(client, key, body)
    assert response.status_code == 400
    answered = await answer(response)
    assert list(answered) == ["detail"] and answered["detail"].startswith(detail), answered
    assert await count_rows(storage, "events", user.id) == 0
    assert await count_rows(storage, "sessions", user.id) == 0


@pytest.mark.parametrize(
    "timestamp", ["yesterday-ish", "2022-13-45 99:99:99", {"t": 1}, [], True, ""]
)
async def test_an_unparseable_timestamp_is_stored_flagged_and_listed_as_invalid(
    client, storage, user, timestamp
):
    key = await new_key(storage, user.id)
    response = await collect(client, key, event(timestamp=timestamp))
    assert response.status_code == 200
    (row,) = await stored_events(storage, user.id)
    assert row["client_at"] is None and row["clock_skew_ms"] is None
    assert row["client_time"] == (
        timestamp if isinstance(timestamp, str) else json.dumps(timestamp)
    )
    page = await list_events(client, user, "/eye/invalid-time")
    assert [e["time_valid"] for e in page["results"]] == [False]


@pytest.mark.parametrize(
    "timestamp",
    [
        "2022-01-09 09:15:27.243860",
        "2022-01-09T09:15:27.243860+00:00",
        1641719727.24386,
        "1641719727243",
    ],
)
async def test_the_eyes_format_iso_and_unix_times_all_parse(client, storage, user, timestamp):
    key = await new_key(storage, user.id)
    await collect(client, key, event(timestamp=timestamp))
    (row,) = await stored_events(storage, user.id)
    at = storage.db.dialect.decode_time(row["client_at"])
    assert abs(at - datetime(2022, 1, 9, 9, 15, 27, 243860)) < timedelta(milliseconds=1)


# -- the queries ----------------------------------------------------------------------------


async def test_a_sessions_events_come_newest_first_by_timestamp(client, storage, user):
    key = await new_key(storage, user.id)
    for name, second in (("b", 20), ("a", 10), ("c", 30)):
        await collect(client, key, event("s", name, timestamp=f"2022-01-09 09:15:{second}.0"))
    await collect(client, key, event("other", "z"))
    page = await list_events(client, user, "/eye/event", session_id="s")
    assert [e["name"] for e in page["results"]] == ["c", "b", "a"]
    first = page["results"][0]
    assert first["session_id"] == "s" and first["timestamp"] == "2022-01-09 09:15:30.0"
    assert first["event_at"] == "2022-01-09T09:15:30.000000Z" and first["time_valid"] is True
    assert page["next"] is None and page["previous"] is None


async def test_category_and_inclusive_range_queries(client, storage, user):
    key = await new_key(storage, user.id)
    for i, category in enumerate(["form", "page", "form"]):
        await collect(
            client,
            key,
            event(f"s{i}", f"n{i}", category=category, timestamp=f"2022-01-09 10:00:0{i}"),
        )
    page = await list_events(client, user, "/eye/category-events", category="form")
    assert [e["name"] for e in page["results"]] == ["n2", "n0"]
    every = await list_events(client, user, "/eye/category-events")
    assert len(every["results"]) == 3
    both_ends = await list_events(
        client, user, "/eye/range-events", start="2022-01-09 10:00:00", end="2022-01-09 10:00:01"
    )
    assert [e["name"] for e in both_ends["results"]] == ["n1", "n0"]


async def test_invalid_time_lists_future_timestamps_beyond_the_tolerance(client, storage, user):
    key = await new_key(storage, user.id)
    now = datetime.now(UTC).replace(tzinfo=None)
    for name, ahead in (("far", 3600), ("near", 5), ("past", -60)):
        moment = (now + timedelta(seconds=ahead)).strftime("%Y-%m-%d %H:%M:%S.%f")
        await collect(client, key, event("s", name, timestamp=moment))
    strict = await list_events(client, user, "/eye/invalid-time")
    assert [e["name"] for e in strict["results"]] == ["near", "far"]
    tolerant = await list_events(client, user, "/eye/invalid-time", tolerance="600")
    assert [e["name"] for e in tolerant["results"]] == ["far"]


async def test_pages_link_to_the_next_and_previous_page(client, storage, user):
    key = await new_key(storage, user.id)
    for i in range(5):
        await collect(client, key, event("s", f"n{i}", timestamp=f"2022-01-09 10:00:0{i}"))
    first = await list_events(client, user, "/eye/event", session_id="s", page_size="2")
    assert [e["name"] for e in first["results"]] == ["n4", "n3"]
    assert first["previous"] is None and "page=2" in first["next"]
    path = first["next"].split("://", 1)[1].split("/", 1)[1]
    second = await client.get("/" + path, headers=user_headers(user))
    body = await second.get_json()
    assert [e["name"] for e in body["results"]] == ["n2", "n1"]
    assert "page=1" in body["previous"]
    last = await list_events(client, user, "/eye/event", session_id="s", page_size="2", page="3")
    assert [e["name"] for e in last["results"]] == ["n0"] and last["next"] is None


@pytest.mark.parametrize(
    ("path", "params", "detail"),
    [
        ("/eye/event", {}, "session_id: this parameter is required"),
        ("/eye/event", {"session_id": "s", "page": "0"}, "page: must be an integer"),
        ("/eye/event", {"session_id": "s", "page": "x"}, "page: must be an integer"),
        ("/eye/event", {"session_id": "s", "page_size": "501"}, "page_size: must be"),
        ("/eye/event", {"session_id": "s" * 256}, "session_id: longer than 255"),
        ("/eye/range-events", {"start": "soon"}, "start: not a valid time"),
        ("/eye/range-events", {"end": "later"}, "end: not a valid time"),
        ("/eye/invalid-time", {"tolerance": "-1"}, "tolerance: must be"),
        ("/eye/invalid-time", {"tolerance": "nan"}, "tolerance: must be"),
        ("/eye/invalid-time", {"tolerance": "soon"}, "tolerance: must be"),
    ],
)
async def test_bad_query_parameters_are_400_details(client, user, path, params, detail):
    response = await client.get(path, query_string=params, headers=user_headers(user))
    assert response.status_code == 400
    assert (await answer(response))["detail"].startswith(detail)


@pytest.mark.parametrize(
    "path",
    ["/eye/event?session_id=s", "/eye/category-events", "/eye/range-events", "/eye/invalid-time"],
)
async def test_queries_need_a_users_token_and_an_ingest_key_may_not_read(
    client, storage, user, path
):
    key = await new_key(storage, user.id)
    response = await client.get(path)
    assert response.status_code == 401 and await answer(response) == NOT_PROVIDED
    response = await client.get(path, headers={"Authorization": f"Token {key}"})
    assert response.status_code == 403
    assert await answer(response) == {
        "detail": "You do not have permission to perform this action."
    }
    wrong = {"Authorization": "Token " + "1" * 32, "X-User": user.name}
    response = await client.get(path, headers=wrong)
    assert response.status_code == 401 and await answer(response) == INVALID
    response = await client.get(path, headers={"X-User": user.name, "X-User-Token": user.token})
    assert response.status_code == 200


# -- isolation ------------------------------------------------------------------------------


async def test_a_key_writes_only_for_its_owner_and_each_user_reads_only_their_own(
    client, storage, make_user
):
    alice, bob = await make_user(), await make_user()
    alice_key, bob_key = await new_key(storage, alice.id), await new_key(storage, bob.id)
    await collect(client, alice_key, event("shared", "from-alice"))
    # The same session key for another owner is another session: "added!" again.
    response = await collect(client, bob_key, event("shared", "from-bob"))
    assert await answer(response) == "Session with session_id:shared added!"
    assert [r["name"] for r in await stored_events(storage, alice.id)] == ["from-alice"]
    assert [r["name"] for r in await stored_events(storage, bob.id)] == ["from-bob"]
    for account, name in ((alice, "from-alice"), (bob, "from-bob")):
        for path, params in (
            ("/eye/event", {"session_id": "shared"}),
            ("/eye/category-events", {}),
            ("/eye/range-events", {}),
        ):
            page = await list_events(client, account, path, **params)
            assert [e["name"] for e in page["results"]] == [name]


async def test_queries_show_only_the_eyes_events(client, storage, user):
    owner = await storage.get_user(user.name)
    await record_events(owner, [Event("track", "click", session="s")], storage=storage)
    page = await list_events(client, user, "/eye/category-events")
    assert page["results"] == []


# -- CORS -----------------------------------------------------------------------------------


async def test_preflight_and_answers_allow_any_origin(client, storage, user):
    response = await client.open(
        "/eye/collector",
        method="OPTIONS",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    refused = await client.post("/eye/collector", data=CLIENT_BODY)
    assert refused.headers["Access-Control-Allow-Origin"] == "*"


async def test_a_key_disabled_elsewhere_stops_writing_after_the_auth_cache_time(make_app):
    async with make_app(auth_cache_seconds=0.2) as app:
        storage = get_storage(app.app)
        client = app.test_client()
        user = await new_account(storage)
        key = await new_key(storage, user.id)
        assert (await collect(client, key)).status_code == 200
        (stored,) = await storage.list_keys(user.id)
        # Another process (the CLI) disables it: this one's cache is not told.
        await storage.set_key_disabled(stored.name, True)
        await asyncio.sleep(0.3)
        response = await collect(client, key)
        assert response.status_code == 401
        assert await answer(response) == {"detail": "User inactive or deleted."}


async def test_a_key_sent_with_another_users_name_writes_nothing_for_either(
    client, storage, make_user
):
    alice, bob = await make_user(), await make_user()
    alice_key = await new_key(storage, alice.id)
    response = await collect(client, alice_key, **{"X-User": bob.name})
    assert response.status_code == 401 and await answer(response) == INVALID
    assert await count_rows(storage, "events", alice.id) == 0
    assert await count_rows(storage, "events", bob.id) == 0


ODD_VALUES = [
    None,
    True,
    0,
    -1,
    1.5,
    1e308,
    -(2**70),
    "",
    " ",
    "x" * 300,
    "\x00",
    "\ud800",
    "naïve 😀",
    [],
    {},
    [1, {"a": None}],
    {"path": 7},
    "2022-02-30 25:61:61",
]


@pytest.mark.parametrize("field", ["session_id", "category", "name", "data", "timestamp", "extra"])
async def test_no_value_of_any_field_gives_a_500(client, storage, user, field):
    key = await new_key(storage, user.id)
    for value in ODD_VALUES:
        body = json.dumps({**event(f"odd-{field}"), field: value}).encode()
        response = await collect(client, key, body)
        assert response.status_code in (200, 400), (field, value)
        await answer(response)
