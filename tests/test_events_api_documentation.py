"""The OpenAPI document of the native usage-events API: it names the parameters each path
reads, and real answers load through the documented response schemas.
"""

from __future__ import annotations

from openapi_spec_validator import validate
from support import assert_events_added as assert_ok
from support import post_events as post
from support import read_json as get

from bot_logging_server.openapi import responses

pytest_plugins = ["support.api_fixtures"]


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
