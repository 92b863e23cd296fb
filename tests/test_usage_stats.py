"""The usage dashboards' numbers, counted by the server in SQL over every row (never a
sample): ``GET /api/sessions/stats`` (sessions started per UTC day or hour, per source on
request) and ``GET /api/events/pages`` (the top pages with their views, clicks and
sessions), on both backends.

The viewer used to count these in the browser from the newest 5,000 sessions and 3,000
events; the data here is more than that (written through the storage layer in a few
transactions, not request by request), so only an exact server count can pass.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from support import assert_error, read_headers

from bot_logging_server.blueprints import events as events_blueprint
from bot_logging_server.openapi import responses
from bot_logging_server.storage import Event
from bot_logging_server.storage import sessions as sessions_storage

FIRST_DAY = datetime(2025, 1, 1)
DAYS = 180
JUST_BEFORE_MIDNIGHT = timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999)


def sessions_on(day: int) -> int:
    """How many sessions the plan starts on day `day` (0 on every tenth day: a gap)."""
    return 0 if day % 10 == 3 else 20 + (day * 7) % 43


def day_iso(day: int) -> str:
    return (FIRST_DAY + timedelta(days=day)).strftime("%Y-%m-%dT00:00:00.000000Z")


async def get(client, path, account, **params):
    response = await client.get(path, query_string=params, headers=read_headers(account))
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


async def start_sessions(storage, user_id: int, day: int, count: int, prefix: str = "s") -> None:
    """`count` sessions opened on `day` (by their first event): the first half at 00:00:00,
    the rest at 23:59:59.999999, the last microsecond of that UTC day; odd ones through
    ``track``, even ones through ``api``."""
    start = FIRST_DAY + timedelta(days=day)
    early = [
        Event("track" if i % 2 else "api", "page_view", session=f"{prefix}{day}-{i}")
        for i in range(count // 2)
    ]
    late = [
        Event("track" if i % 2 else "api", "page_view", session=f"{prefix}{day}-{i}")
        for i in range(count // 2, count)
    ]
    await storage.insert_events(user_id, early, start)
    await storage.insert_events(user_id, late, start + JUST_BEFORE_MIDNIGHT)


@pytest.fixture
async def year_of_sessions(storage, user):
    """The plan's sessions for `user` (more than 5,000), by day."""
    days = [day for day in range(DAYS) if sessions_on(day)]
    for part in range(0, len(days), 10):  # ten days at a time share group commits
        await asyncio.gather(
            *(start_sessions(storage, user.id, d, sessions_on(d)) for d in days[part : part + 10])
        )
    return {day_iso(d): sessions_on(d) for d in days}


# -- sessions per day / hour ----------------------------------------------------------------


async def test_sessions_per_day_count_every_session_not_a_sample(
    client, storage, user, year_of_sessions
):
    total = sum(year_of_sessions.values())
    assert total > 6000  # the browser counted at most 5,000
    stats = await get(client, "/api/sessions/stats", user)
    assert stats["bucket"] == "day" and stats["partial"] is False
    assert stats["total"] == total
    assert {c["start"]: c["count"] for c in stats["counts"]} == year_of_sessions
    starts = [c["start"] for c in stats["counts"]]
    assert starts == sorted(starts, reverse=True)  # newest first; empty days are absent
    assert day_iso(3) not in starts and all(c["source"] is None for c in stats["counts"])
    responses.SessionStatsSchema().load(stats)


async def test_a_session_belongs_to_the_utc_day_and_hour_it_started_in(client, storage, user):
    await start_sessions(storage, user.id, 0, 3)  # 1 at 00:00:00, 2 at 23:59:59.999999
    await storage.insert_events(
        user.id, [Event("api", "a", session="next")], FIRST_DAY + timedelta(days=1)
    )
    days = await get(client, "/api/sessions/stats", user, bucket="day")
    assert [(c["start"], c["count"]) for c in days["counts"]] == [(day_iso(1), 1), (day_iso(0), 3)]
    hours = await get(client, "/api/sessions/stats", user, bucket="hour")
    assert [(c["start"], c["count"]) for c in hours["counts"]] == [
        ("2025-01-02T00:00:00.000000Z", 1),
        ("2025-01-01T23:00:00.000000Z", 2),
        ("2025-01-01T00:00:00.000000Z", 1),
    ]


async def test_sessions_stats_take_the_range_source_and_state_filters(
    client, storage, user, year_of_sessions
):
    # since <= started_at < until, at the exact day boundaries.
    ranged = await get(
        client,
        "/api/sessions/stats",
        user,
        since="2025-01-02T00:00:00Z",
        until="2025-01-06T00:00:00Z",
    )
    assert {c["start"]: c["count"] for c in ranged["counts"]} == {
        day_iso(d): sessions_on(d) for d in (1, 2, 4)
    }
    # The last microsecond of a day is still that day; "until" excludes the day after.
    edge = await get(
        client,
        "/api/sessions/stats",
        user,
        since="2025-01-01T23:59:59.999999Z",
        until="2025-01-02T00:00:00Z",
    )
    assert edge["total"] == sessions_on(0) - sessions_on(0) // 2
    per_source = await get(client, "/api/sessions/stats", user, by_source="true")
    day0 = {c["source"]: c["count"] for c in per_source["counts"] if c["start"] == day_iso(0)}
    expected_track = len([i for i in range(sessions_on(0)) if i % 2])
    assert day0 == {"api": sessions_on(0) - expected_track, "track": expected_track}
    assert per_source["total"] == sum(year_of_sessions.values())
    track = await get(client, "/api/sessions/stats", user, source="track")
    assert track["total"] == sum(
        len([i for i in range(n) if i % 2]) for n in year_of_sessions.values()
    )
    stopped = await get(client, "/api/sessions/stats", user, stopped="true")
    assert stopped["counts"] == [] and stopped["total"] == 0
    assert await storage.stop_session("api", "s0-0", FIRST_DAY, user_id=user.id) == "stopped"
    stopped = await get(client, "/api/sessions/stats", user, stopped="true")
    assert stopped["counts"] == [{"start": day_iso(0), "source": None, "count": 1}]
    one = await get(client, "/api/sessions/stats", user, session="s4-1")
    assert one["counts"] == [{"start": day_iso(4), "source": None, "count": 1}]


async def test_sessions_stats_only_count_the_users_own_sessions(client, storage, make_user):
    alice, bob = await make_user(), await make_user()
    await start_sessions(storage, alice.id, 0, 5)
    await start_sessions(storage, bob.id, 0, 2, prefix="s")  # the same keys, another owner
    assert (await get(client, "/api/sessions/stats", alice))["total"] == 5
    assert (await get(client, "/api/sessions/stats", bob))["total"] == 2
    carol = await make_user()
    assert await get(client, "/api/sessions/stats", carol) == {
        "bucket": "day",
        "by_source": False,
        "counts": [],
        "total": 0,
        "partial": False,
    }


async def test_sessions_stats_past_the_row_limit_keep_the_newest_buckets_and_say_partial(
    client, storage, user, monkeypatch
):
    for day in range(4):
        await start_sessions(storage, user.id, day, 2)
    monkeypatch.setattr(sessions_storage, "MAX_STAT_ROWS", 3)
    monkeypatch.setattr(events_blueprint, "MAX_STAT_ROWS", 3)
    stats = await get(client, "/api/sessions/stats", user)
    assert [c["start"] for c in stats["counts"]] == [day_iso(3), day_iso(2), day_iso(1)]
    assert stats["partial"] is True


# -- top pages ------------------------------------------------------------------------------


def page_event(name: str, page: str | None, at: datetime, session: str | None) -> Event:
    time = at.isoformat() + "Z"
    return Event("api", name, session=session, page=page, client_time=time, client_at=at)


@pytest.fixture
async def many_events(storage, user):
    """7,500 events: the oldest 4,000 on /old (the top page, unseen in the newest 3,000),
    then 3,500 newer ones on /new and others."""
    old, new = datetime(2025, 3, 1), datetime(2025, 6, 1)
    batches = [
        [
            page_event(
                "page_view" if i % 4 else "click", "/old", old + timedelta(seconds=i), f"o{i % 40}"
            )
            for i in range(start, start + 1000)
        ]
        for start in range(0, 4000, 1000)
    ]
    batches.append(
        [page_event("click", "/new", new + timedelta(seconds=i), f"n{i % 7}") for i in range(1000)]
    )
    batches.append(
        [page_event("visit", "/new", new + timedelta(seconds=i), None) for i in range(1000, 2000)]
    )
    batches.append(
        [
            page_event("load", f"/p{i % 12}", new + timedelta(seconds=i), "x")
            for i in range(2000, 3000)
        ]
    )
    batches.append(
        [
            page_event("scroll", None if i % 2 else "", new + timedelta(seconds=i), "x")
            for i in range(3000, 3500)
        ]
    )
    for batch in batches:
        await storage.insert_events(user.id, batch, datetime(2025, 7, 1))
    return old, new


async def test_top_pages_count_every_event_not_the_newest_few_thousand(
    client, storage, user, many_events
):
    top = await get(client, "/api/events/pages", user)
    assert top["sort"] == "events"
    assert top["pages"][:2] == [
        {"page": "/old", "events": 4000, "views": 3000, "clicks": 1000, "sessions": 40},
        {"page": "/new", "events": 2000, "views": 1000, "clicks": 1000, "sessions": 7},
    ]
    # 84 events on /p8-/p11, 83 on the others: by events, then by page.
    assert [p["page"] for p in top["pages"][2:]] == [
        "/p10",
        "/p11",
        "/p8",
        "/p9",
        "/p0",
        "/p1",
        "/p2",
        "/p3",
    ]
    assert len(top["pages"]) == 10  # the default limit; no page for null and empty pages
    assert top["pages"][2] == {
        "page": "/p10",
        "events": 84,
        "views": 84,
        "clicks": 0,
        "sessions": 1,
    }
    responses.TopPagesSchema().load(top)
    every = await get(client, "/api/events/pages", user, limit="100")
    assert len(every["pages"]) == 14
    assert sum(p["events"] for p in every["pages"]) == 7000


async def test_top_pages_sort_by_views_clicks_or_sessions(client, storage, user, many_events):
    by_clicks = await get(client, "/api/events/pages", user, sort="clicks", limit="2")
    assert [(p["page"], p["clicks"]) for p in by_clicks["pages"]] == [
        ("/old", 1000),
        ("/new", 1000),
    ]  # a tie in clicks: the page with more events first
    by_views = await get(client, "/api/events/pages", user, sort="views", limit="3")
    assert [p["page"] for p in by_views["pages"]] == ["/old", "/new", "/p10"]
    by_sessions = await get(client, "/api/events/pages", user, sort="sessions", limit="2")
    assert [(p["page"], p["sessions"]) for p in by_sessions["pages"]] == [
        ("/old", 40),
        ("/new", 7),
    ]


async def test_top_pages_take_the_events_filters(client, storage, user, many_events):
    old, new = many_events
    recent = await get(client, "/api/events/pages", user, since=new.isoformat() + "Z", limit="1")
    assert recent["pages"] == [
        {"page": "/new", "events": 2000, "views": 1000, "clicks": 1000, "sessions": 7}
    ]
    # since <= event_at < until: /old's events are one a second from `old`.
    window = await get(
        client,
        "/api/events/pages",
        user,
        since=(old + timedelta(seconds=10)).isoformat() + "Z",
        until=(old + timedelta(seconds=20)).isoformat() + "Z",
    )
    assert window["pages"] == [
        {"page": "/old", "events": 10, "views": 8, "clicks": 2, "sessions": 10}
    ]
    clicks = await get(client, "/api/events/pages", user, name="click")
    assert [(p["page"], p["events"]) for p in clicks["pages"]] == [("/new", 1000), ("/old", 1000)]
    session = await get(client, "/api/events/pages", user, session="n3")
    assert session["pages"] == [
        {"page": "/new", "events": 143, "views": 0, "clicks": 143, "sessions": 1}
    ]
    other = await get(client, "/api/events/pages", user, source="track")
    assert other["pages"] == []


async def test_top_pages_only_count_the_users_own_events(client, storage, make_user):
    alice, bob = await make_user(), await make_user()
    at = datetime(2025, 1, 1)
    await storage.insert_events(alice.id, [page_event("click", "/a", at, "s")] * 3, at)
    await storage.insert_events(bob.id, [page_event("click", "/a", at, "s")], at)
    assert (await get(client, "/api/events/pages", alice))["pages"][0]["events"] == 3
    assert (await get(client, "/api/events/pages", bob))["pages"] == [
        {"page": "/a", "events": 1, "views": 0, "clicks": 1, "sessions": 1}
    ]


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "detail"),
    [
        ("/api/sessions/stats", {"bucket": "minute"}, "query.bucket: must be one of"),
        ("/api/sessions/stats", {"bucket": "week"}, "query.bucket: must be one of"),
        ("/api/sessions/stats", {"by_source": "maybe"}, "query.by_source: not a valid boolean"),
        ("/api/sessions/stats", {"since": "yesterday"}, "query.since: not a valid timestamp"),
        ("/api/sessions/stats", {"source": "web"}, "query.source: must be one of"),
        ("/api/events/pages", {"limit": "0"}, "query.limit:"),
        ("/api/events/pages", {"limit": "101"}, "query.limit:"),
        ("/api/events/pages", {"sort": "bytes"}, "query.sort: must be one of"),
        ("/api/events/pages", {"until": "soon"}, "query.until: not a valid timestamp"),
        ("/api/events/pages", {"invalid_time": "maybe"}, "query.invalid_time:"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
async def test_a_bad_query_parameter_is_400_naming_it(client, user, path, params, detail):
    response = await client.get(path, query_string=params, headers=read_headers(user))
    answer = await assert_error(response, 400, "BadRequest")
    assert answer["detail"].startswith(detail), answer["detail"]
