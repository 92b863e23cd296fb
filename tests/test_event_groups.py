"""Usage events written by group commit: requests of every kind in one shared transaction
(batches with and without sessions, single events whose id is answered) each get exactly
their results, and the sessions their counts."""

from __future__ import annotations

import asyncio

from bot_logging_server import events as ev
from bot_logging_server.events import Event, EventQuery


async def test_batches_and_single_events_in_one_group_each_get_their_results(
    storage, user, monkeypatch
):
    owner = await storage.get_user(user.name)
    group = storage._event_group
    monkeypatch.setattr(group, "_writers", 1)  # MySQL's two: the groups below, in order
    batch = [Event("api", f"b{i}", session="shared" if i % 2 else None) for i in range(6)]
    # Queued while the first request's transaction runs: the rest share the next one.
    results = await asyncio.gather(
        ev.record_events(owner, [Event("api", "first", session="first")], storage=storage),
        ev.record_events(owner, batch, storage=storage),
        ev.record_event(owner, Event("api", "single", session="shared"), storage=storage),
        ev.record_events(
            owner, [Event("api", "bare"), Event("api", "x", session="x")], storage=storage
        ),
        ev.record_event(owner, Event("api", "lone"), storage=storage),
        ev.record_events(owner, batch[:2], storage=storage),
    )
    assert group.stats.largest_group == 5
    first, batched, single, bare, lone, again = results
    assert (first.added, first.new_sessions) == (1, {"first"})
    assert (batched.added, batched.new_sessions) == (6, {"shared"})
    assert (bare.added, bare.new_sessions) == (2, {"x"})
    assert (again.added, again.new_sessions) == (2, frozenset())
    assert not single.session_created and not lone.session_created
    stored = await storage.query_events(user.id, EventQuery(limit=100, descending=False))
    batch_names = [f"b{i}" for i in range(6)]
    order = ["first", *batch_names, "single", "bare", "x", "lone", "b0", "b1"]
    assert [e.name for e in stored] == order
    by_id = {e.id: e for e in stored}
    assert (by_id[single.id].name, by_id[single.id].session) == ("single", "shared")
    assert (by_id[lone.id].name, by_id[lone.id].session) == ("lone", None)
    assert [e.session for e in stored if e.name in batch_names] == [None, "shared"] * 4
    shared = await storage.find_session("api", "shared", user.id)
    assert (shared.event_count, shared.last_event_name) == (5, "b1")
