"""The native usage-events API: ``POST /api/events`` (ingest key or token), ``GET
/api/events``, ``GET /api/sessions``, ``GET /api/events/stats`` and the dashboards' counts
(``GET /api/events/pages``, ``GET /api/sessions/stats``, counted in tests/test_usage_stats.py);
its error shape, its CORS, its documentation, and that a key only ever writes into its own
user's events; and that the common case, loaded without the schema, loads as the schema
loads it."""

from __future__ import annotations

import copy

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from support import assert_error, read_headers

from bot_logging_server import accounts
from bot_logging_server.openapi import responses
from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.events_api import load_events, load_events_reference

OK = {"code": 200, "message": "Events added successfully"}
READ_PATHS = (
    "/api/events",
    "/api/sessions",
    "/api/events/stats",
    "/api/events/pages",
    "/api/sessions/stats",
)


@pytest.fixture
async def key(storage, user):
    """A fresh ingest key of `user` (its value in clear)."""
    return (await accounts.create_key(storage, user.name, f"k_{user.name}")).value


async def post(client, body, key=None, headers=None, **kwargs):
    sent = {"X-Ingest-Key": key} if key else {}
    return await client.post(
        "/api/events", json=body, headers={**sent, **(headers or {})}, **kwargs
    )


async def get(client, path, account, **params):
    response = await client.get(path, query_string=params, headers=read_headers(account))
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


async def assert_ok(response, added):
    assert response.status_code == 200, await response.get_data(as_text=True)
    assert response.content_type == "application/json"
    assert await response.get_json() == {**OK, "added": added}


# -- writing ------------------------------------------------------------------------------


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


# -- CORS ---------------------------------------------------------------------------------


async def asgi_headers(app, method: str, path: str, headers: dict[str, str]) -> tuple:
    """Status, headers and body exactly as the app sends them (the test client's response
    object adds a default Content-Type of its own)."""
    sent: list[dict] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
        "extensions": {},
    }
    requested = False

    async def receive():
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app.app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    names = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], names, body


async def test_a_browser_preflight_from_any_origin_is_allowed(app):
    status, headers, body = await asgi_headers(
        app,
        "OPTIONS",
        "/api/events",
        {
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-ingest-key",
        },
    )
    assert (status, body) == (204, b"")
    assert headers["access-control-allow-origin"] == "*"
    assert "POST" in headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "x-ingest-key"} <= allowed
    assert int(headers["access-control-max-age"]) > 0
    assert "content-type" not in headers  # no body, and never HTML


async def test_every_answer_to_a_post_is_readable_from_another_origin(client, key):
    origin = {"Origin": "https://shop.example"}
    ok = await post(client, {"events": [{"name": "a"}]}, key, origin)
    refused = await post(client, {"events": [{"name": "a"}]}, "0" * 32, origin)
    bad = await post(client, {"events": "x"}, key, origin)
    assert [r.status_code for r in (ok, refused, bad)] == [200, 403, 400]
    assert all(r.headers.get("Access-Control-Allow-Origin") == "*" for r in (ok, refused, bad))


async def test_reading_stays_same_origin(client, user):
    response = await client.get(
        "/api/events", headers={**read_headers(user), "Origin": "https://x.example"}
    )
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers


# -- reading ------------------------------------------------------------------------------


async def test_events_filter_and_page_by_keyset_both_ways(client, user, key):
    events = [
        {
            "name": f"n{i % 3}",
            "category": f"c{i % 2}",
            "session": f"s{i % 2}",
            "page": f"/p{i % 2}",
            "time": f"2022-01-01T{i:02d}:00:00Z",
        }
        for i in range(10)
    ]
    await assert_ok(await post(client, {"events": events}, key), 10)
    assert len((await get(client, "/api/events", user, name="n0"))["events"]) == 4
    assert len((await get(client, "/api/events", user, category="c1", session="s1"))["events"]) == 5
    assert len((await get(client, "/api/events", user, page="/p0", source="api"))["events"]) == 5
    assert (await get(client, "/api/events", user, source="eye"))["events"] == []
    window = await get(
        client, "/api/events", user, since="2022-01-01T02:00:00Z", until="2022-01-01T05:00:00"
    )
    assert [e["event_at"][11:13] for e in window["events"]] == ["04", "03", "02"]
    for order in ("desc", "asc"):
        seen, cursor = [], None
        for _ in range(5):  # 10 events, 4 a page: 3 pages (a loop that never ends is a bug)
            params = {"limit": 4, "order": order, **({"cursor": cursor} if cursor else {})}
            page = await get(client, "/api/events", user, **params)
            seen += [e["id"] for e in page["events"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(seen, reverse=order == "desc") and len(seen) == len(set(seen)) == 10


async def test_sessions_list_and_filter(client, storage, user, key):
    await assert_ok(
        await post(client, {"events": [{"name": "a", "session": f"s{i}"} for i in range(3)]}, key),
        3,
    )
    owner = await storage.get_user(user.name)
    await storage.stop_session("api", "s1", await _now(storage), user_id=owner.id)
    everything = await get(client, "/api/sessions", user)
    assert [s["session"] for s in everything["sessions"]] == ["s2", "s1", "s0"]
    open_ones = await get(client, "/api/sessions", user, stopped="false", order="asc")
    assert [s["session"] for s in open_ones["sessions"]] == ["s0", "s2"]
    assert [
        s["session"] for s in (await get(client, "/api/sessions", user, session="s1"))["sessions"]
    ] == ["s1"]
    first = await get(client, "/api/sessions", user, limit=2)
    rest = await get(client, "/api/sessions", user, limit=2, cursor=first["next_cursor"])
    assert [s["session"] for s in rest["sessions"]] == ["s0"] and rest["next_cursor"] is None


async def _now(storage):
    from bot_logging_server.storage import utc_now

    return utc_now()


async def test_stats_count_per_name_per_bucket(client, user, key):
    events = [
        {"name": "click", "time": "2022-01-09T09:10:00Z"},
        {"name": "click", "time": "2022-01-09T09:50:00Z"},
        {"name": "view", "time": "2022-01-09T09:55:00Z"},
        {"name": "click", "time": "2022-01-09T10:01:00Z"},
    ]
    await assert_ok(await post(client, {"events": events}, key), 4)
    stats = await get(
        client, "/api/events/stats", user, bucket="hour", since="2022-01-09T00:00:00Z"
    )
    assert stats == {
        "bucket": "hour",
        "counts": [
            {"start": "2022-01-09T10:00:00.000000Z", "name": "click", "count": 1},
            {"start": "2022-01-09T09:00:00.000000Z", "name": "click", "count": 2},
            {"start": "2022-01-09T09:00:00.000000Z", "name": "view", "count": 1},
        ],
        "partial": False,
    }


@pytest.mark.parametrize(
    ("path", "params", "detail"),
    [
        ("/api/events", {"limit": "0"}, "query.limit:"),
        ("/api/events", {"limit": "1001"}, "query.limit:"),
        ("/api/events", {"cursor": "junk"}, "query.cursor: not a valid cursor"),
        ("/api/events", {"since": "yesterday"}, "query.since: not a valid timestamp"),
        ("/api/events", {"source": "web"}, "query.source: must be one of"),
        ("/api/events", {"invalid_time": "maybe"}, "query.invalid_time: not a valid boolean"),
        ("/api/events", {"tolerance_ms": "-1"}, "query.tolerance_ms:"),
        ("/api/events", {"order": "sideways"}, "query.order: must be one of"),
        ("/api/events", {"session": "s" * 65}, "query.session:"),
        ("/api/sessions", {"stopped": "perhaps"}, "query.stopped: not a valid boolean"),
        ("/api/sessions", {"until": "soon"}, "query.until: not a valid timestamp"),
        ("/api/events/stats", {"bucket": "week"}, "query.bucket: must be one of"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
async def test_a_bad_query_parameter_is_400_naming_it(client, user, path, params, detail):
    response = await client.get(path, query_string=params, headers=read_headers(user))
    answer = await assert_error(response, 400, "BadRequest")
    assert answer["detail"].startswith(detail), answer["detail"]


async def test_reading_needs_the_users_token(client, user):
    for path in READ_PATHS:
        await assert_error(await client.get(path), 403, "Forbidden")
        response = await client.get(path, headers={"X-User": user.name, "X-User-Token": "0" * 32})
        await assert_error(response, 403, "Forbidden")


# -- documentation ------------------------------------------------------------------------


async def test_the_events_api_is_documented_with_the_parameters_it_reads(client):
    spec = await (await client.get("/openapi.json")).get_json()
    validate(spec)
    filters = {
        "source",
        "session",
        "category",
        "name",
        "page",
        "since",
        "until",
        "invalid_time",
        "tolerance_ms",
    }
    paths = spec["paths"]
    assert {p["name"] for p in paths["/api/events"]["get"]["parameters"]} == filters | {
        "limit",
        "cursor",
        "order",
    }
    assert {p["name"] for p in paths["/api/events/stats"]["get"]["parameters"]} == filters | {
        "bucket"
    }
    assert {p["name"] for p in paths["/api/events/pages"]["get"]["parameters"]} == filters | {
        "limit",
        "sort",
    }
    session_filters = {"source", "session", "stopped", "since", "until"}
    assert {p["name"] for p in paths["/api/sessions"]["get"]["parameters"]} == session_filters | {
        "limit",
        "cursor",
        "order",
    }
    assert {p["name"] for p in paths["/api/sessions/stats"]["get"]["parameters"]} == (
        session_filters | {"bucket", "by_source"}
    )
    post_op = paths["/api/events"]["post"]
    assert {"ingest_key": []} in post_op["security"]
    assert set(post_op["responses"]) >= {"200", "400", "403", "413", "429", "503"}
    assert spec["components"]["schemas"]["EventIn"]["required"] == ["name"]


async def test_real_answers_load_through_the_documented_schemas(client, user, key):
    response = await post(client, {"events": [{"name": "a", "session": "s", "data": [1]}]}, key)
    responses.EventsResultSchema().load(await response.get_json())
    page = responses.EventPageSchema().load(await get(client, "/api/events", user))
    assert set(page["events"][0]) == set(responses.StoredEventSchema().fields)
    sessions = responses.SessionPageSchema().load(await get(client, "/api/sessions", user))
    assert set(sessions["sessions"][0]) == set(responses.SessionSchema().fields)
    stats = responses.EventStatsSchema().load(await get(client, "/api/events/stats", user))
    assert stats["counts"][0]["count"] == 1
    sessions = responses.SessionStatsSchema().load(await get(client, "/api/sessions/stats", user))
    assert sessions["counts"][0]["count"] == sessions["total"] == 1
    await assert_ok(await post(client, {"events": [{"name": "click", "page": "/a"}]}, key), 1)
    pages = responses.TopPagesSchema().load(await get(client, "/api/events/pages", user))
    assert pages["pages"] == [{"page": "/a", "events": 1, "views": 0, "clicks": 1, "sessions": 0}]


# -- the common case is loaded without the schema, to the same result -----------------------

_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=300)
    | st.sampled_from(["", "s", "click", "x" * 64, "x" * 65, "y" * 255, "y" * 256])
)
_EVENT_LIKE = (
    st.dictionaries(
        st.sampled_from(["name", "session", "category", "page", "data", "time", "sequence", "x"]),
        _VALUES | st.dictionaries(st.text(max_size=5), _VALUES, max_size=3),
    )
    | _VALUES
)


#: Events near the rules' edges: each field missing, valid, at its limit, or one past it.
_NEAR_VALID = st.fixed_dictionaries(
    {"name": st.sampled_from(["click", "a", "y" * 255, "y" * 256, "", 5, None])},
    optional={
        "session": st.sampled_from([None, "s", "x" * 64, "x" * 65, "", 7]),
        "category": st.sampled_from([None, "c", "y" * 255, "y" * 256, "", False]),
        "page": st.sampled_from([None, "/", "p" * 5000, "", 3]),
        "data": _VALUES | st.dictionaries(st.text(max_size=5), _VALUES, max_size=3),
        "time": _VALUES,
        "sequence": st.sampled_from(
            [None, 0, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, True, 1.0, "1"]
        ),
        "x": _VALUES,
    },
)


_EDGES = [
    {"name": "y" * 256},
    {"name": "c", "session": ""},
    {"name": "c", "session": "x" * 65},
    {"name": "c", "category": "y" * 256},
    {"name": "c", "page": 3},
    {"name": "c", "sequence": 2**63},
    {"name": "c", "sequence": -(2**63) - 1},
    {"name": "c", "sequence": True},
    {"name": "c", "sequence": 1.0},
]


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(_NEAR_VALID, max_size=3) | st.lists(_EVENT_LIKE, max_size=4))
@example([{"name": "y" * 255, "session": "x" * 64, "sequence": 2**63 - 1}])
def test_events_load_as_the_schema_alone_loads_them(events):
    def outcome(loader) -> object:
        try:
            return loader(copy.deepcopy(events), "192.0.2.1", "agent")
        except ValidationFailed as exc:
            return exc.detail

    assert outcome(load_events) == outcome(load_events_reference)


@pytest.mark.parametrize("event", _EDGES, ids=lambda e: str(e)[:40])
def test_an_event_one_past_a_limit_is_refused_by_both_loaders(event):
    for loader in (load_events, load_events_reference):
        with pytest.raises(ValidationFailed):
            loader([event])
