"""Group commit: concurrent batches share transactions, and each keeps the contract's rules.

docs/API.md, "Order of checks", step 7: the whole batch is written in one transaction and 200
is sent only after the commit; a batch that fails validation never fails another batch.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from support import (
    assert_added,
    assert_error,
    client_body,
    client_record,
    log_rows,
    new_account,
    post_logs,
    recent_logs,
    rows_per_batch,
)

from bot_logging_server.storage import LogRow, StorageError, get_storage, utc_now
from bot_logging_server.storage.group_commit import GroupCommit


async def test_concurrent_batches_are_all_stored_in_fewer_transactions(storage, user):
    results = await asyncio.gather(
        *(storage.insert_logs(user.id, log_rows(3, f"b{k}"), utc_now()) for k in range(40))
    )
    assert results == [3] * 40
    assert await storage.count_logs(user.id) == 120
    stats = storage._group.stats
    assert stats.requests == 40
    assert stats.transactions < 40  # requests that waited were written together
    stored = await recent_logs(storage, user.id, 200)
    assert sorted(r.msg for r in stored) == sorted(f"b{k} {i}" for k in range(40) for i in range(3))


async def test_each_batch_keeps_its_rows_contiguous_and_in_order(storage, user):
    await asyncio.gather(
        *(storage.insert_logs(user.id, log_rows(5, f"b{k}"), utc_now()) for k in range(20))
    )
    stored = list(reversed(await recent_logs(storage, user.id, 200)))
    for start in range(0, 100, 5):
        tags = {r.msg.split()[0] for r in stored[start : start + 5]}
        assert len(tags) == 1
        assert [r.msg.split()[1] for r in stored[start : start + 5]] == list("01234")


async def test_a_failed_shared_commit_fails_every_member_and_stores_none_of_them(storage, user):
    # 30 concurrent batches; the last one has a row the database refuses (NOT NULL p_name).
    # It waits in the queue with the others, so its whole group fails with it.
    batches = [log_rows(2, f"b{k}") for k in range(29)] + [log_rows(1, "bad", p_name=None)]
    results = await asyncio.gather(
        *(storage.insert_logs(user.id, batch, utc_now()) for batch in batches),
        return_exceptions=True,
    )
    failed = [k for k, r in enumerate(results) if isinstance(r, BaseException)]
    assert all(isinstance(results[k], StorageError) for k in failed)
    assert 29 in failed
    assert len(failed) > 1  # the members that shared its transaction got the error too
    stored = {r.msg for r in await recent_logs(storage, user.id, 500)}
    expected = {f"b{k} {i}" for k, r in enumerate(results) if r == 2 for i in range(2)}
    assert stored == expected  # nothing partial: every failed member's rows are absent
    # The storage is still usable afterwards.
    assert await storage.insert_logs(user.id, log_rows(1, "after"), utc_now()) == 1


async def test_an_invalid_batch_never_fails_the_batches_sent_beside_it(client, storage, user):
    good = [post_logs(client, user, client_body(user.name, 3)) for _ in range(12)]
    bad = post_logs(client, user, client_body(user.name, [client_record(level="loud")]))
    *answers, refused = await asyncio.gather(*good, bad)
    for answer in answers:
        await assert_added(answer, 3)
    await assert_error(refused, 400, "BadRequest")
    assert await storage.count_logs(user.id) == 36


async def test_insert_logs_returns_only_after_its_rows_are_committed(storage, user, database_url):
    # Concurrent inserts share transactions; each, when it returns, finds its own rows on
    # another connection (read at once, holding the event loop).
    async def insert_then_look(k: int) -> int:
        await storage.insert_logs(user.id, log_rows(3, p_name=f"i{k}"), utc_now())
        return rows_per_batch(database_url, user.id).get(f"i{k}", 0)

    assert await asyncio.gather(*(insert_then_look(k) for k in range(10))) == [3] * 10


async def test_every_answer_comes_after_its_commit(client, storage, user, database_url):
    # The moment its 200 arrives, a request's own rows are visible on another connection.
    # The read blocks the event loop, so no commit still pending here can land before it.
    async def post_then_look(k: int) -> int:
        body = client_body(user.name, 2, p_name=f"c{k}")
        response = await post_logs(client, user, body)
        visible = rows_per_batch(database_url, user.id).get(f"c{k}", 0)
        await assert_added(response, 2)
        return visible

    seen = await asyncio.gather(*(post_then_look(k) for k in range(10)))
    assert seen == [2] * 10
    assert await storage.count_logs(user.id) == 20


async def packet_bytes(storage) -> int:
    """MySQL's max_allowed_packet; on SQLite a size that is merely large (4 MiB)."""
    if storage.name == "mysql":
        return int((await storage.db.fetch("SELECT @@max_allowed_packet"))[0][0])
    return 4 * 1024 * 1024


async def test_a_message_over_the_packet_limit_is_stored_cut_and_fails_no_other_batch(
    storage, user
):
    size = await packet_bytes(storage) + 1024 * 1024  # characters, ASCII: as many bytes
    now = utc_now()
    big = LogRow(1, "proc", "big", 40, "x" * size, False, size, now, now)
    # Concurrent: the first two go at once (two writers at most), the other three queue and
    # would share the next transaction.
    batches = [log_rows(2, "a"), log_rows(2, "b"), [big], log_rows(2, "c"), log_rows(2, "d")]
    results = await asyncio.gather(
        *(storage.insert_logs(user.id, batch, utc_now()) for batch in batches),
        return_exceptions=True,
    )
    assert results == [2, 2, 1, 2, 2]
    stored = {r.p_description: r for r in await recent_logs(storage, user.id, 20)}
    assert stored["big"].msg_length == size
    if storage.name == "mysql":  # cut to what one statement can carry, and flagged
        assert stored["big"].truncated and 0 < len(stored["big"].msg) < size
        assert stored["big"].msg == "x" * len(stored["big"].msg)
    else:  # SQLite takes values up to 1e9 bytes
        assert not stored["big"].truncated and len(stored["big"].msg) == size
    assert await storage.count_logs(user.id) == 9


async def test_a_message_of_multi_byte_and_escaped_characters_is_cut_to_fit(storage, user):
    packet = await packet_bytes(storage)
    # 4 bytes a character (outside the BMP), and quotes the driver escapes as two bytes.
    text = ("\U0001f680'" * (packet // 5 + 1000))[: packet // 2]
    now = utc_now()
    row = LogRow(1, "proc", "wide", 40, text, False, len(text), now, now)
    assert await storage.insert_logs(user.id, [row], utc_now()) == 1
    (stored,) = await recent_logs(storage, user.id, 1)
    assert stored.msg_length == len(text) and text.startswith(stored.msg)
    assert stored.truncated == (storage.name == "mysql")


async def test_with_a_raised_message_limit_a_huge_message_is_200_as_are_its_neighbours(
    make_app,
):
    async with make_app(max_msg_chars=2**26, max_body_bytes=2**27) as app:
        storage = get_storage(app.app)
        account = await new_account(storage)
        client = app.test_client()
        size = await packet_bytes(storage) + 1024 * 1024
        huge = client_body(account.name, [client_record(msg="y" * size, p_description="huge")])
        answers = await asyncio.gather(
            *(post_logs(client, account, client_body(account.name, 3)) for _ in range(4)),
            post_logs(client, account, huge),
            *(post_logs(client, account, client_body(account.name, 3)) for _ in range(4)),
        )
        for answer in answers[:4] + answers[5:]:
            await assert_added(answer, 3)
        await assert_added(answers[4], 1)
        (stored,) = [r for r in await recent_logs(storage, account.id, 30) if r.msg_length == size]
        assert stored.truncated == (storage.name == "mysql")
        assert await storage.count_logs(account.id) == 25


# -- the committer on its own (a real coroutine as the writer, no database) ------------------


async def test_a_lone_submit_is_written_at_once_in_its_own_transaction():
    written: list[list[int]] = []

    async def write(batch: list[int]) -> None:
        written.append(list(batch))

    group = GroupCommit(write)
    await group.submit([1, 2])
    assert written == [[1, 2]]


async def test_waiting_submits_form_one_group_bounded_by_max_rows():
    written: list[list[int]] = []
    gate = asyncio.Event()

    async def write(batch: list[int]) -> None:
        written.append(list(batch))
        await gate.wait()

    group = GroupCommit(write, writers=1, max_rows=4)
    tasks = [asyncio.create_task(group.submit([k, k])) for k in range(5)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    # The first goes alone; the rest queue while it writes, then go in groups of <= 4 rows.
    assert written == [[0, 0], [1, 1, 2, 2], [3, 3, 4, 4]]
    assert group.stats.transactions == 3 and group.stats.largest_group == 2


async def test_a_batch_larger_than_max_rows_still_goes_alone():
    written: list[list[int]] = []

    async def write(batch: list[int]) -> None:
        written.append(list(batch))

    group = GroupCommit(write, max_rows=2)
    await group.submit([1, 2, 3])
    assert written == [[1, 2, 3]]


async def test_a_member_cancelled_while_queued_is_not_written():
    written: list[list[int]] = []
    gate = asyncio.Event()

    async def write(batch: list[int]) -> None:
        written.append(list(batch))
        await gate.wait()

    group = GroupCommit(write, writers=1)
    first = asyncio.create_task(group.submit([1]))
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(group.submit([2]))
    kept = asyncio.create_task(group.submit([3]))
    await asyncio.sleep(0)
    cancelled.cancel()
    gate.set()
    await asyncio.gather(first, kept)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert written == [[1], [3]]


async def test_a_failing_writer_raises_in_every_member_of_its_group():
    gate = asyncio.Event()
    calls = 0

    async def write(batch: list[int]) -> None:
        nonlocal calls
        calls += 1
        await gate.wait()
        if calls == 2:
            raise StorageError("disk full")

    group = GroupCommit(write, writers=1)
    tasks = [asyncio.create_task(group.submit([k])) for k in range(4)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] is None
    assert all(isinstance(r, StorageError) and str(r) == "disk full" for r in results[1:])
    assert results[1] is not results[2]  # each member raises its own copy


async def test_drain_waits_for_groups_in_flight():
    finished: list[datetime] = []

    async def write(batch: list[int]) -> None:
        await asyncio.sleep(0.01)
        finished.append(utc_now())

    group = GroupCommit(write, writers=1)
    tasks = [asyncio.create_task(group.submit([k])) for k in range(3)]
    await asyncio.sleep(0)
    await group.drain()
    assert len(finished) == 2  # the first alone, then the two that queued behind it
    await asyncio.gather(*tasks)


async def test_repeated_and_tricky_values_in_one_group_are_stored_exactly(storage, user):
    # The MySQL writer escapes each distinct value once per statement: values that repeat,
    # quotes and backslashes, and equal numbers of different meaning must all survive.
    now = utc_now()
    tricky = ["it's", "back\\slash", "1", "", "it's"]
    batch = [
        LogRow(
            pid=1,
            p_name="1",
            p_description=text,
            level=1 if i % 2 else 0,
            msg=text,
            truncated=bool(i % 2),
            msg_length=1,
            event_at=now,
            post_time=now,
        )
        for i, text in enumerate(tricky)
    ]
    await asyncio.gather(*(storage.insert_logs(user.id, batch, now) for _ in range(3)))
    stored = list(reversed(await recent_logs(storage, user.id, 100)))
    assert [(r.msg, r.p_description, r.level, r.truncated) for r in stored] == [
        (t, t, 1 if i % 2 else 0, bool(i % 2)) for i, t in enumerate(tricky)
    ] * 3
    assert {(r.pid, r.p_name, r.msg_length) for r in stored} == {(1, "1", 1)}


async def test_a_group_of_any_size_is_stored_whole_and_in_order(storage, user):
    # SQLite writes large groups as 64-row INSERTs plus a remainder: 150 = 64 + 64 + 22.
    sizes = [150, 1, 63, 64, 65]
    await asyncio.gather(
        *(storage.insert_logs(user.id, log_rows(n, f"s{n}"), utc_now()) for n in sizes)
    )
    stored = list(reversed(await recent_logs(storage, user.id, 1000)))
    assert len(stored) == sum(sizes)
    for n in sizes:
        mine = [r.msg for r in stored if r.msg.startswith(f"s{n} ")]
        assert mine == [f"s{n} {i}" for i in range(n)]


async def test_waiting_submits_form_groups_bounded_by_max_bytes():
    written: list[list[int]] = []
    gate = asyncio.Event()

    async def write(batch: list[int]) -> None:
        written.append(list(batch))
        await gate.wait()

    group = GroupCommit(write, writers=1, max_bytes=100)
    sizes = [10, 60, 30, 500, 20, 20]
    tasks = [asyncio.create_task(group.submit([k], size)) for k, size in enumerate(sizes)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    # The first goes alone; then groups of at most 100 bytes, and the 500-byte one alone.
    assert written == [[0], [1, 2], [3], [4, 5]]
