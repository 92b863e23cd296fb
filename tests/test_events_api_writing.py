"""Writing to the native usage-events API, ``POST /api/events``: with an ingest key (in a
header or the URL) or a user's token, into the key owner's events only; refused (403) without
valid credentials, for a disabled or removed key or owner, and for reading with a key; a bad
field or body (400), too many events (413) and the rate limit (429) write nothing.
"""

from __future__ import annotations

import pytest
from support import assert_error, read_headers
from support import assert_events_added as assert_ok
from support import post_events as post
from support import read_json as get

from bot_logging_server import accounts

pytest_plugins = ["support.api_fixtures"]


async def test_a_key_writes_a_batch_into_its_users_events(client, storage, user, key):
    body = {
        "events": [
            {
                "name": "click",
                "session": "s1",
                "category": "ui",
                "page": "/home",
                "time": 1641719727243,
                "data": {"x": 1},
                "sequence": 1,
            },
            {"name": "scroll", "session": "s1", "time": "2022-01-09 09:15:28.000001"},
            {"name": "bare"},
        ]
    }
    response = await post(
        client, body, key, headers={"User-Agent": "Browser/1", "X-Real-IP": "203.0.113.9"}
    )
    await assert_ok(response, 3)
    (stored_key,) = await storage.list_keys(user.id)
    page = await get(client, "/api/events", user, order="asc")
    click, scroll, bare = page["events"]
    assert (click["source"], click["session"], click["category"], click["page"]) == (
        "api",
        "s1",
        "ui",
        "/home",
    )
    assert click["data"] == {"x": 1} and click["sequence"] == 1
    assert click["client_time"] == "1641719727243"
    assert click["client_at"] == click["event_at"] == "2022-01-09T09:15:27.243000Z"
    assert scroll["client_at"] == "2022-01-09T09:15:28.000001Z"
    assert bare["client_time"] is None and bare["event_at"] == bare["received_at"]
    for event in page["events"]:
        assert event["ingest_key_id"] == stored_key.id
        assert (event["ip"], event["user_agent"]) == ("203.0.113.9", "Browser/1")
    (session,) = (await get(client, "/api/sessions", user))["sessions"]
    assert (session["session"], session["event_count"], session["last_event_name"]) == (
        "s1",
        2,
        "scroll",
    )


async def test_the_key_may_come_in_the_url(client, storage, user, key):
    await assert_ok(
        await client.post(f"/api/events?key={key}", json={"events": [{"name": "a"}]}), 1
    )
    assert await storage.count_events(user.id) == 1


@pytest.mark.parametrize("bearer", [False, True], ids=["x-user-token", "bearer"])
async def test_a_users_token_writes_too(client, storage, user, bearer):
    response = await post(client, {"events": [{"name": "a"}]}, headers=read_headers(user, bearer))
    await assert_ok(response, 1)
    (event,) = (await get(client, "/api/events", user))["events"]
    assert event["ingest_key_id"] is None


async def test_an_empty_batch_adds_nothing_and_unknown_fields_are_ignored(
    client, storage, user, key
):
    await assert_ok(await post(client, {"events": [], "v": 2}, key), 0)
    await assert_ok(await post(client, {"events": [{"name": "a", "colour": "red"}]}, key), 1)
    assert await storage.count_events(user.id) == 1


async def test_an_unparseable_time_is_stored_and_listed_as_invalid(client, user, key):
    await assert_ok(
        await post(client, {"events": [{"name": "bad", "time": "soon"}, {"name": "ok"}]}, key), 2
    )
    (invalid,) = (await get(client, "/api/events", user, invalid_time="true"))["events"]
    assert (invalid["name"], invalid["client_time"], invalid["time_valid"]) == (
        "bad",
        "soon",
        False,
    )


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({}, id="none"),
        pytest.param({"X-Ingest-Key": "0" * 32}, id="unknown-key"),
        pytest.param({"X-Ingest-Key": "not-a-key"}, id="malformed-key"),
        pytest.param({"X-User-Token": "0" * 32}, id="token-without-user"),
        pytest.param({"X-User": "nobody_at_all", "X-User-Token": "0" * 32}, id="unknown-user"),
    ],
)
async def test_without_valid_credentials_it_is_403_and_writes_nothing(
    client, storage, user, key, credentials
):
    response = await post(client, {"events": [{"name": "a"}]}, headers=credentials)
    await assert_error(response, 403, "Forbidden")
    assert await storage.count_events(user.id) == 0


@pytest.mark.parametrize("change", ["disable key", "remove key", "disable user"])
async def test_a_disabled_or_removed_key_or_owner_is_refused(client, storage, user, key, change):
    await assert_ok(await post(client, {"events": [{"name": "a"}]}, key), 1)
    if change == "disable key":
        await accounts.set_key_disabled(storage, f"k_{user.name}", True)
    elif change == "remove key":
        await accounts.remove_key(storage, f"k_{user.name}")
    else:
        await accounts.set_disabled(storage, user.name, True)
    await assert_error(await post(client, {"events": [{"name": "b"}]}, key), 403, "Forbidden")
    assert await storage.count_events(user.id) == 1


async def test_a_key_of_one_user_never_writes_into_another(client, storage, make_user):
    alice, bob = await make_user(), await make_user()
    alices_key = (await accounts.create_key(storage, alice.name, f"k_{alice.name}")).value
    # Whatever else the request says, the key's owner is the one written to.
    for headers in ({"X-User": bob.name}, {"X-User": bob.name, "X-User-Token": bob.token}):
        await assert_ok(
            await post(client, {"events": [{"name": "a", "session": "s"}]}, alices_key, headers), 1
        )
    assert await storage.count_events(alice.id) == 2
    assert await storage.count_events(bob.id) == 0
    assert (await get(client, "/api/events", bob))["events"] == []
    assert (await get(client, "/api/sessions", bob))["sessions"] == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/events",
        "/api/sessions",
        "/api/events/stats",
        "/api/events/pages",
        "/api/sessions/stats",
        "/api/logs",
    ],
)
async def test_a_key_never_reads(client, user, key, path):
    await assert_ok(await post(client, {"events": [{"name": "a"}]}, key), 1)
    for headers, query in (
        ({"X-Ingest-Key": key}, ""),
        ({}, f"?key={key}"),
        ({"X-User": user.name, "X-Ingest-Key": key}, f"?key={key}"),
        ({"X-User": user.name, "X-User-Token": key}, ""),
        ({"X-User": user.name, "Authorization": f"Bearer {key}"}, ""),
    ):
        await assert_error(await client.get(path + query, headers=headers), 403, "Forbidden")


BAD_EVENTS = [
    pytest.param(
        {"session": "s"}, "events[1].name: missing data for required field", id="name-missing"
    ),
    pytest.param({"name": 5}, "events[1].name: not a valid string", id="name-number"),
    pytest.param({"name": None}, "events[1].name: field may not be null", id="name-null"),
    pytest.param(
        {"name": "n" * 256}, "events[1].name: longer than maximum length 255", id="name-long"
    ),
    pytest.param(
        {"name": "a", "session": ""},
        "events[1].session: length must be between 1 and 64",
        id="session-empty",
    ),
    pytest.param(
        {"name": "a", "session": "s" * 65}, "events[1].session: length must be", id="session-long"
    ),
    pytest.param(
        {"name": "a", "session": 7}, "events[1].session: not a valid string", id="session-number"
    ),
    pytest.param(
        {"name": "a", "category": {}},
        "events[1].category: not a valid string",
        id="category-object",
    ),
    pytest.param(
        {"name": "a", "category": "c" * 256},
        "events[1].category: longer than maximum length 255",
        id="category-long",
    ),
    pytest.param(
        {"name": "a", "page": ["/"]}, "events[1].page: not a valid string", id="page-list"
    ),
    pytest.param(
        {"name": "a", "data": "d" * 300_000}, "events[1].data: longer than", id="data-long"
    ),
    pytest.param(
        {"name": "a", "sequence": 1.5},
        "events[1].sequence: not a valid integer",
        id="sequence-float",
    ),
    pytest.param(
        {"name": "a", "sequence": "1"},
        "events[1].sequence: not a valid integer",
        id="sequence-text",
    ),
    pytest.param(
        {"name": "a", "sequence": 2**63}, "events[1].sequence: must be greater", id="sequence-huge"
    ),
    pytest.param(
        {"name": "a", "sequence": True},
        "events[1].sequence: not a valid integer",
        id="sequence-bool",
    ),
    pytest.param("click", "events[1]._schema: invalid input type", id="event-not-object"),
]


@pytest.mark.parametrize(("bad", "detail"), BAD_EVENTS)
async def test_a_bad_field_is_400_naming_it_and_writes_nothing(
    client, storage, user, key, bad, detail
):
    body = {"events": [{"name": "good", "session": "fresh"}, bad]}
    response = await post(client, body, key)
    answer = await assert_error(response, 400, "BadRequest")
    assert answer["detail"].startswith(detail), answer["detail"]
    assert await storage.count_events(user.id) == 0
    assert (await get(client, "/api/sessions", user))["sessions"] == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "body: not valid JSON"),
        (b"[]", "body: must be a JSON object"),
        (b'{"event": []}', "events: must be a list"),
        (b'{"events": {"name": "a"}}', "events: must be a list"),
        (
            b'{"events": [{"name": "a", "data": ' + b"[" * 1000 + b"]" * 1000 + b"}]}",
            "events[0].data: nested too deeply",
        ),
    ],
    ids=["not-json", "array", "no-events", "events-object", "deep-data"],
)
async def test_a_bad_body_is_400_and_writes_nothing(client, storage, user, key, body, detail):
    response = await client.post("/api/events", data=body, headers={"X-Ingest-Key": key})
    answer = await assert_error(response, 400, "BadRequest")
    assert answer["detail"] == detail
    assert await storage.count_events(user.id) == 0


async def test_more_than_1000_events_is_413_and_writes_nothing(client, storage, user, key):
    await assert_ok(await post(client, {"events": [{"name": "a"}] * 1000}, key), 1000)
    response = await post(client, {"events": [{"name": "a"}] * 1001}, key)
    answer = await assert_error(response, 413, "PayloadTooLarge")
    assert answer["detail"] == "events: more than 1000 events"
    assert await storage.count_events(user.id) == 1000


async def test_the_rate_limit_counts_events_per_user(make_app):
    async with make_app(rate_limit_records=5) as app:
        client, storage = app.test_client(), app.app.extensions["bot_logging_server.storage"]
        owner = await accounts.create_user(storage, "rate_limited_events")
        key = (await accounts.create_key(storage, owner.user.username, "rate_limited_key")).value
        await assert_ok(await post(client, {"events": [{"name": "a"}] * 5}, key), 5)
        response = await post(client, {"events": [{"name": "a"}] * 5}, key)
        await assert_error(response, 429, "TooManyRequests")
        assert response.headers["Retry-After"]
        assert await storage.count_events(owner.user.id) == 5
