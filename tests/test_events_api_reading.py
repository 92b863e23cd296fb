"""Reading the native usage-events API: ``GET /api/events`` (filters, keyset pages both ways),
``GET /api/sessions`` and ``GET /api/events/stats``; a bad query parameter is 400 naming it,
and every read path needs the user's token.
"""

from __future__ import annotations

import pytest
from support import assert_error, read_headers
from support import assert_events_added as assert_ok
from support import post_events as post
from support import read_json as get

pytest_plugins = ["support.api_fixtures"]


READ_PATHS = (
    "/api/events",
    "/api/sessions",
    "/api/events/stats",
    "/api/events/pages",
    "/api/sessions/stats",
)


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
