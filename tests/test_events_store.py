"""The event store on both backends: the schema step, the one write path (`record_events`),
sessions, group commit, the invalid-time query, and that every read stays with its owner."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from support import execute_sql

from bot_logging_server import events as ev
from bot_logging_server.config import DatabaseURL, build_config
from bot_logging_server.events import Event, EventQuery, SessionQuery, ValidationFailed
from bot_logging_server.storage import SessionExists, StorageError, make_storage, utc_now
from bot_logging_server.storage.migrations import for_backend

T0 = datetime(2022, 1, 9, 9, 15, 27, 243860)


def eye(session: str | None = "s1", name: str = "submit", **fields) -> Event:
    return Event("eye", name, session=session, category="form interaction", **fields)


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


async def all_events(storage, user_id: int, **query) -> list:
    return await storage.query_events(user_id, EventQuery(limit=1000, **query))


async def session_count(storage, user_id: int) -> int:
    rows = await storage.db.fetch("SELECT COUNT(*) FROM sessions WHERE user_id = ?", (user_id,))
    return int(rows[0][0])


# -- the schema step ----------------------------------------------------------------------


async def test_a_database_at_the_previous_version_upgrades_in_place_and_keeps_its_logs(
    fresh_database_url,
):
    url = DatabaseURL.parse(fresh_database_url)
    steps = for_backend(url.scheme)
    events_step = next(m.version for m in steps if m.name.startswith("usage events"))
    previous = [m for m in steps if m.version < events_step]
    now = "2026-01-02 03:04:05.678901"
    version_table = (
        "CREATE TABLE schema_version (version INT NOT NULL PRIMARY KEY, name VARCHAR(255) "
        "NOT NULL, applied_at DATETIME(6) NOT NULL)"
        if url.scheme == "mysql"
        else "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at TEXT NOT NULL)"
    )
    execute_sql(
        url,
        [
            version_table,
            *(statement for m in previous for statement in m.statements),
            *(
                f"INSERT INTO schema_version VALUES ({m.version}, '{m.name}', '{now}')"
                for m in previous
            ),
            "INSERT INTO users (username, token_hash, tel_id, disabled, created_at, updated_at) "
            f"VALUES ('old', 'h', NULL, 0, '{now}', '{now}')",
            "INSERT INTO user_logs (user_id, pid, p_name, p_description, level, msg, truncated, "
            f"msg_length, event_at, post_time, received_at) VALUES (1, 7, 'p', 'd', 40, "
            f"'kept', 0, 4, '{now}', '{now}', '{now}')",
        ],
    )
    storage = make_storage(build_config({"database_url": fresh_database_url}, environ={}))
    await storage.open()
    try:
        rows = await storage.db.fetch("SELECT MAX(version) FROM schema_version")
        assert int(rows[0][0]) == steps[-1].version >= events_step
        assert await storage.count_logs(1) == 1
        logs = await storage.db.fetch("SELECT msg, event_at FROM user_logs")
        assert logs[0][0] == "kept"
        assert storage.db.dialect.decode_time(logs[0][1]) == datetime.fromisoformat(now)
        # The new tables work on the upgraded database.
        user = await storage.get_user("old")
        done = await ev.record_events(user, [eye()], storage=storage)
        assert done.added == 1 and done.new_sessions == {"s1"}
    finally:
        await storage.close()


async def test_the_event_tables_have_the_indexes_their_queries_need(storage):
    if storage.name == "sqlite":
        rows = await storage.db.fetch(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN "
            "('events', 'sessions', 'ingest_keys')"
        )
    else:
        rows = await storage.db.fetch(
            "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN "
            "('events', 'sessions', 'ingest_keys')"
        )
    names = {row[0] for row in rows}
    assert {
        "ix_events_user_id",  # per owner
        "ix_events_session_time",  # a session's events in time order
        "ix_events_user_time_name",  # time ranges, stats per name
        "ix_events_user_category_name",  # category / name
        "ix_events_user_skew",  # invalid client times
        "ix_sessions_user_started",
        "ix_ingest_keys_lookup",
    } <= names


# -- the write path -----------------------------------------------------------------------


async def test_an_event_round_trips_every_field(storage, user):
    owner = await storage.get_user(user.name)
    received = datetime(2022, 1, 9, 9, 15, 30)
    event = Event(
        "eye",
        "submit",
        session="sess-😀",
        category="form interaction",
        page="/checkout",
        data={"host": "shop", "form": {"q": "naïve"}, "n": [1, 2.5, None]},
        data_raw='{"host":"shop"}',
        client_time="2022-01-09 09:15:27.243860",
        sequence=3,
        ip="10.0.0.7",
        user_agent="Mozilla/5.0",
    )
    done = await ev.record_events(owner, [event], received_at=received, storage=storage)
    assert done == ev.Recorded(1, frozenset({"sess-😀"}))
    (stored,) = await all_events(storage, user.id)
    assert (stored.user_id, stored.source, stored.session, stored.name) == (
        user.id,
        "eye",
        "sess-😀",
        "submit",
    )
    assert (stored.category, stored.page, stored.sequence) == ("form interaction", "/checkout", 3)
    assert stored.data == {"host": "shop", "form": {"q": "naïve"}, "n": [1, 2.5, None]}
    assert stored.data_raw == '{"host":"shop"}'
    assert stored.client_time == "2022-01-09 09:15:27.243860"
    assert stored.client_at == stored.event_at == T0
    assert stored.received_at == received
    assert stored.clock_skew_ms == -2757 and stored.time_valid
    assert (stored.ip, stored.user_agent, stored.ingest_key_id) == ("10.0.0.7", "Mozilla/5.0", None)


async def test_an_unparseable_time_is_stored_raw_and_shows_in_the_invalid_time_query(storage, user):
    owner = await storage.get_user(user.name)
    received = datetime(2026, 1, 1, 12, 0, 0)
    times = {
        "bad": "yesterday-ish",
        "future": "2026-01-01T12:00:05Z",
        "slightly-ahead": "2026-01-01T12:00:00.5",
        "past": "2025-12-31T23:59:59",
        "none": None,
    }
    await ev.record_events(
        owner,
        [eye(name=name, client_time=value) for name, value in times.items()],
        received_at=received,
        storage=storage,
    )
    stored = {e.name: e for e in await all_events(storage, user.id)}
    assert stored["bad"].client_time == "yesterday-ish" and stored["bad"].client_at is None
    assert stored["bad"].event_at == received and not stored["bad"].time_valid
    assert stored["none"].client_time is None and stored["none"].time_valid
    invalid = {e.name for e in await all_events(storage, user.id, invalid_time=True)}
    assert invalid == {"bad", "future", "slightly-ahead"}
    tolerant = await all_events(storage, user.id, invalid_time=True, tolerance_ms=1000)
    assert {e.name for e in tolerant} == {"bad", "future"}


async def test_a_batch_keeps_its_order_and_names_its_new_sessions_once(storage, user):
    owner = await storage.get_user(user.name)
    batch = [eye("a", "1"), eye("b", "2"), eye("a", "3"), eye(None, "4")]
    first = await ev.record_events(owner, batch, storage=storage)
    assert first.added == 4 and first.new_sessions == {"a", "b"}
    again = await ev.record_events(owner, [eye("a", "5")], storage=storage)
    assert again.new_sessions == frozenset()
    stored = await all_events(storage, user.id, descending=False)
    assert [e.name for e in stored] == ["1", "2", "3", "4", "5"]
    assert [e.session for e in stored] == ["a", "b", "a", None, "a"]
    session = await storage.find_session("eye", "a", user.id)
    assert (session.event_count, session.last_event_name) == (3, "5")


async def test_fifty_concurrent_posts_to_one_session_keep_every_event_and_open_it_once(
    storage, user
):
    owner = await storage.get_user(user.name)
    results = await asyncio.gather(
        *(ev.record_events(owner, [eye("busy", f"e{i}")], storage=storage) for i in range(50))
    )
    assert sum(1 for r in results if r.new_sessions == {"busy"}) == 1
    assert all(r.added == 1 for r in results)
    stored = await all_events(storage, user.id, session="busy")
    assert sorted(e.name for e in stored) == sorted(f"e{i}" for i in range(50))
    session = await storage.find_session("eye", "busy", user.id)
    assert session.event_count == 50
    assert await session_count(storage, user.id) == 1


async def test_concurrent_batches_share_transactions(storage, user):
    owner = await storage.get_user(user.name)
    results = await asyncio.gather(
        *(ev.record_events(owner, [eye(f"s{k}"), eye()], storage=storage) for k in range(40))
    )
    assert [r.added for r in results] == [2] * 40
    stats = storage._event_group.stats
    assert stats.requests == 40 and stats.rows == 80
    assert stats.transactions < 40  # requests that waited were written together
    assert await storage.count_events(user.id) == 80


async def test_concurrent_single_events_each_get_their_own_id(storage, user):
    owner = await storage.get_user(user.name)
    results = await asyncio.gather(
        *(ev.record_event(owner, eye("one", f"e{i}"), storage=storage) for i in range(20))
    )
    assert sum(r.session_created for r in results) == 1
    stored = {e.id: e.name for e in await all_events(storage, user.id)}
    assert {r.id: f"e{i}" for i, r in enumerate(results)} == stored


async def test_a_failed_shared_commit_stores_none_of_its_events_or_sessions(storage, user):
    # The storage layer is called directly to get a row the database itself refuses (NOT
    # NULL name), which the checks of record_events would have caught.
    batches = [[eye(f"s{k}", f"b{k}")] * 2 for k in range(29)] + [[eye("bad", None)]]
    results = await asyncio.gather(
        *(storage.insert_events(user.id, batch, utc_now()) for batch in batches),
        return_exceptions=True,
    )
    failed = {k for k, r in enumerate(results) if isinstance(r, BaseException)}
    assert all(isinstance(results[k], StorageError) for k in failed)
    assert 29 in failed and len(failed) > 1
    stored = {e.name for e in await all_events(storage, user.id)}
    assert stored == {f"b{k}" for k in range(29) if k not in failed}
    sessions = await storage.query_sessions(user.id, SessionQuery(limit=1000))
    assert {s.key for s in sessions} == {f"s{k}" for k in range(29) if k not in failed}
    assert (await storage.insert_events(user.id, [eye()], utc_now())).added == 1


@pytest.mark.parametrize(
    ("event", "detail"),
    [
        (Event("web", "x"), "events[1].source: must be one of"),
        (Event("eye", 5), "events[1].name: must be a string"),  # type: ignore[arg-type]
        (Event("eye", "x" * 256), "events[1].name: longer than 255"),
        (Event("eye", "x", category=["c"]), "events[1].category: must be a string"),
        (Event("eye", "x", session=""), "events[1].session: must be 1-64"),
        (Event("eye", "x", session="s" * 65), "events[1].session: must be 1-64"),
        (Event("eye", "x", session=7), "events[1].session: must be a string"),
        (Event("eye", "x", page=3), "events[1].page: must be a string"),
        (Event("eye", "x", data={"x": object()}), "events[1].data: not a JSON value"),
        (Event("eye", "x", data="d" * 300_000), "events[1].data: longer than"),
        (Event("eye", "x", data={"n": 2**70}), "events[1].data: integers must fit in 64 bits"),
        (Event("eye", "x", data=nested(300)), "events[1].data: nested too deeply"),
        (Event("eye", "x", data_raw=5), "events[1].data_raw: must be a string"),
        (Event("eye", "x", sequence=2**63), "events[1].sequence: must be a 64-bit"),
        (Event("eye", "x", sequence=True), "events[1].sequence: must be a 64-bit"),
        (Event("eye", "x", ip=1), "events[1].ip: must be a string"),
        (Event("eye", "x", user_agent=b"x"), "events[1].user_agent: must be a string"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
async def test_a_bad_field_refuses_the_whole_batch_and_writes_nothing(storage, user, event, detail):
    owner = await storage.get_user(user.name)
    with pytest.raises(ValidationFailed) as caught:
        await ev.record_events(owner, [eye("fresh"), event], storage=storage)
    assert caught.value.detail.startswith(detail)
    assert await storage.count_events(user.id) == 0
    assert await session_count(storage, user.id) == 0


async def test_deep_data_and_lone_surrogates_are_refused_or_cleaned_never_a_storage_error(
    storage, user
):
    owner = await storage.get_user(user.name)
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValidationFailed, match="nested too deeply"):
        await ev.record_events(owner, [eye(data=deep)], storage=storage)
    await ev.record_events(
        owner,
        [eye("s\ud800", "n\udfff", data={"k\ud800": "v\udc00"}, page="/p\ud800")],
        storage=storage,
    )
    (stored,) = await all_events(storage, user.id)
    assert (stored.session, stored.name, stored.page) == ("s\ufffd", "n\ufffd", "/p\ufffd")
    assert stored.data == {"k\ufffd": "v\ufffd"}


async def test_long_descriptive_fields_are_cut_not_refused(storage, user):
    owner = await storage.get_user(user.name)
    long = eye(page="/" + "p" * 3000, ip="1" * 100, user_agent="a" * 2000, client_time="t" * 400)
    await ev.record_events(owner, [long], storage=storage)
    (stored,) = await all_events(storage, user.id)
    assert (len(stored.page), len(stored.ip), len(stored.user_agent)) == (2048, 64, 1024)
    assert stored.client_time == "t" * 255 and not stored.time_valid


# -- sessions -----------------------------------------------------------------------------


async def test_a_started_session_is_stopped_once(storage, user):
    owner = await storage.get_user(user.name)
    session = await ev.start_session(
        owner, "microticks", client_time="2017-08-25T17:09:19.438Z", storage=storage
    )
    assert len(session.key) == 32 and int(session.key, 16) >= 0
    assert session.started_client_at == datetime(2017, 8, 25, 17, 9, 19, 438000)
    assert (session.event_count, session.stopped) == (0, False)
    stop = ev.stop_session
    assert await stop("microticks", session.key, client_time="x", storage=storage) == "stopped"
    assert await stop("microticks", session.key, storage=storage) == "already_stopped"
    assert await stop("microticks", "f" * 32, storage=storage) == "not_found"
    assert await stop("eye", session.key, storage=storage) == "not_found"
    stopped = await ev.get_session("microticks", session.key, storage=storage)
    assert stopped.stopped and stopped.stopped_client_time == "x"
    assert stopped.stopped_client_at is None


async def test_events_recorded_for_a_session_go_into_it_and_name_its_opener(storage, make_user):
    alice = await storage.get_user((await make_user()).name)
    await storage.create_key(alice.id, f"k_{uuid.uuid4().hex[:6]}", "0" * 16, "h")
    (key,) = await storage.list_keys(alice.id)
    session = await ev.start_session(key, "microticks", storage=storage)
    assert session.ingest_key_id == key.id
    first = await ev.record_event(session, Event("api", "click"), storage=storage)
    second = await ev.record_event(session, Event("api", "scroll"), storage=storage)
    assert first.session_created and not second.session_created and second.id > first.id
    stored = await all_events(storage, alice.id, session=session.key, descending=False)
    assert [(e.source, e.name, e.ingest_key_id) for e in stored] == [
        ("microticks", "click", key.id),
        ("microticks", "scroll", key.id),
    ]


async def test_session_keys_are_per_owner_and_exact(storage, make_user):
    alice = await storage.get_user((await make_user()).name)
    bob = await storage.get_user((await make_user()).name)
    assert (await ev.record_events(alice, [eye("shared")], storage=storage)).new_sessions
    assert (await ev.record_events(bob, [eye("shared")], storage=storage)).new_sessions
    assert (await ev.record_events(bob, [eye("shared ")], storage=storage)).new_sessions
    assert (await ev.record_events(bob, [eye("SHARED")], storage=storage)).new_sessions
    assert await session_count(storage, alice.id) == 1
    assert await session_count(storage, bob.id) == 3
    # Without an owner, a key two owners use finds nothing (and stops nothing).
    assert await ev.get_session("eye", "shared", storage=storage) is None
    assert await ev.stop_session("eye", "shared", storage=storage) == "not_found"
    assert (await ev.get_session("eye", "shared", owner=bob, storage=storage)).user_id == bob.id
    with pytest.raises(SessionExists):
        await ev.start_session(alice, "eye", key="shared", storage=storage)


async def test_sessions_list_with_filters_and_pages(storage, user):
    owner = await storage.get_user(user.name)
    opened = [await ev.start_session(owner, "microticks", storage=storage) for _ in range(3)]
    await ev.stop_session("microticks", opened[0].key, storage=storage)
    await ev.record_events(owner, [eye("e1")], storage=storage)
    open_ones = await storage.query_sessions(
        user.id, SessionQuery(source="microticks", stopped=False)
    )
    assert [s.key for s in open_ones] == [opened[2].key, opened[1].key]
    page = await storage.query_sessions(user.id, SessionQuery(limit=2, descending=False))
    assert [s.id for s in page] == [opened[0].id, opened[1].id]
    after = await storage.query_sessions(user.id, SessionQuery(before_id=opened[1].id))
    assert [s.id for s in after] == [opened[0].id]


# -- reading ------------------------------------------------------------------------------


async def test_a_sessions_events_read_in_client_time_order_whatever_the_arrival(storage, user):
    owner = await storage.get_user(user.name)
    arrivals = ["2022-01-09T09:00:03Z", "2022-01-09T09:00:01Z", "2022-01-09T09:00:02Z"]
    for i, stamp in enumerate(arrivals):
        await ev.record_events(owner, [eye("s", f"n{i}", client_time=stamp)], storage=storage)
    oldest_first = await all_events(storage, user.id, session="s", sort="time", descending=False)
    assert [e.name for e in oldest_first] == ["n1", "n2", "n0"]
    newest_first = await all_events(storage, user.id, session="s", sort="time")
    assert [e.name for e in newest_first] == ["n0", "n2", "n1"]


async def test_filters_and_keyset_pages(storage, user):
    owner = await storage.get_user(user.name)
    base = datetime(2022, 1, 1)
    await ev.record_events(
        owner,
        [
            Event(
                "track" if i % 2 else "eye",
                f"n{i % 3}",
                category=f"c{i % 2}",
                client_time=(base + timedelta(hours=i)).isoformat(),
                session="s",
            )
            for i in range(12)
        ],
        storage=storage,
    )
    assert len(await all_events(storage, user.id, source="track")) == 6
    assert len(await all_events(storage, user.id, category="c0", name="n0")) == 2
    window = await all_events(
        storage, user.id, since=base + timedelta(hours=2), until=base + timedelta(hours=5)
    )
    assert sorted(e.name for e in window) == ["n0", "n1", "n2"]
    first = await storage.query_events(user.id, EventQuery(limit=5))
    rest = await storage.query_events(user.id, EventQuery(limit=100, before_id=first[-1].id))
    assert len(first) + len(rest) == 12 and first[-1].id > rest[0].id
    skipped = await storage.query_events(user.id, EventQuery(limit=2, offset=10))
    assert [e.id for e in skipped] == [e.id for e in rest[-2:]]


async def test_stats_count_events_per_name_per_bucket(storage, user):
    owner = await storage.get_user(user.name)
    stamps = ["2022-01-09T09:15:00Z", "2022-01-09T09:45:00Z", "2022-01-09T10:05:00Z"]
    await ev.record_events(
        owner,
        [eye(name=n, client_time=t) for n, t in zip(["a", "a", "b"], stamps, strict=True)],
        storage=storage,
    )
    counts = await storage.event_stats(user.id, EventQuery(), "hour")
    assert [(c.start, c.name, c.count) for c in counts] == [
        (datetime(2022, 1, 9, 10), "b", 1),
        (datetime(2022, 1, 9, 9), "a", 2),
    ]


async def test_an_owner_never_reads_another_owners_events_or_sessions(storage, make_user):
    alice = await storage.get_user((await make_user()).name)
    bob = await storage.get_user((await make_user()).name)
    await ev.record_events(alice, [eye("shared", "secret")], storage=storage)
    for query in (EventQuery(), EventQuery(session="shared"), EventQuery(invalid_time=True)):
        assert await storage.query_events(bob.id, query) == []
    assert await storage.event_stats(bob.id, EventQuery(), "day") == []
    assert await storage.query_sessions(bob.id, SessionQuery()) == []
    alices = await storage.find_session("eye", "shared", alice.id)
    assert await storage.session_by_id(bob.id, alices.id) is None


async def test_removing_a_user_removes_their_events_sessions_and_keys(storage, make_user):
    alice, bob = await make_user(), await make_user()
    for account in (alice, bob):
        owner = await storage.get_user(account.name)
        await storage.create_key(owner.id, f"k_{uuid.uuid4().hex[:8]}", "1" * 16, "h")
        await ev.record_events(owner, [eye(), eye("s2")], storage=storage)
    await storage.remove_user(alice.name)
    assert await storage.count_events(alice.id) == 0
    assert await session_count(storage, alice.id) == 0
    assert await storage.list_keys(alice.id) == []
    assert await storage.count_events(bob.id) == 2
    assert await session_count(storage, bob.id) == 2
    assert len(await storage.list_keys(bob.id)) == 1


async def test_an_upsert_can_add_keep_and_write_several_rows(storage):
    table = f"probe_{uuid.uuid4().hex[:8]}"
    db = storage.db
    async with db.transaction() as tx:
        await tx.execute(
            f"CREATE TABLE {table} (k VARCHAR(16) NOT NULL PRIMARY KEY, n INT NOT NULL, "
            "first VARCHAR(8) NOT NULL, last VARCHAR(8) NOT NULL)"
        )
    try:
        upsert = db.dialect.upsert(
            table, ("k", "n", "first", "last"), ("k",), rows=2, add=("n",), keep=("first",)
        )
        for args in [
            ("a", 1, "a1", "a1", "b", 2, "b1", "b1"),
            ("a", 3, "a2", "a2", "c", 4, "c", "c"),
        ]:
            async with db.transaction() as tx:
                await tx.execute(upsert, args)
        assert await db.fetch(f"SELECT k, n, first, last FROM {table} ORDER BY k") == [
            ("a", 4, "a1", "a2"),
            ("b", 2, "b1", "b1"),
            ("c", 4, "c", "c"),
        ]
    finally:
        async with db.transaction() as tx:
            await tx.execute(f"DROP TABLE {table}")


async def test_insert_rows_splits_large_inserts_into_statements_the_server_accepts(storage, user):
    """A batch of large events passes MySQL's packet limit as one statement."""
    owner = await storage.get_user(user.name)
    big = "é" * 250_000
    events = [eye(name=f"n{i}", data={"blob": big}) for i in range(60)]  # 30 MB as UTF-8
    assert (await ev.record_events(owner, events, storage=storage)).added == 60
    assert await storage.count_events(user.id) == 60
