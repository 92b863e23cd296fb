"""Exactly-once batches: ``Idempotency-Key`` (docs/API.md, "Exactly once: Idempotency-Key").

A batch whose answer was lost after its commit is stored once when the client sends it again
with the same key: the key is recorded in the batch's own transaction, and a repeat within
24 hours answers the first answer (``Idempotent-Replayed: true``) and writes nothing. The
connection is really cut between COMMIT and the answer in the last tests: a real server
process behind a proxy (`support.faults.TCPProxy.drop_answers`) that resets the client's connection
when the answer starts to come back.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

import orjson
import pytest
from support import (
    ServerProcess,
    TCPProxy,
    add_user,
    assert_added,
    assert_error,
    batch_body,
    client_body,
    client_headers,
    client_record,
    events_per_name,
    http,
    log_rows,
    read_headers,
    recent_logs,
    rows_per_batch,
)

from bot_logging_server.handler import Handler
from bot_logging_server.idempotency import batch_fingerprint
from bot_logging_server.retention import Policy, Purger
from bot_logging_server.schemas.ingest import load_batch
from bot_logging_server.storage import Claim, StorageError, utc_now

OK_3 = {"code": 200, "message": "Logs added successfully", "added": 3}


def new_key() -> str:
    return str(uuid.uuid4())


async def post(client, account, body, key: str | None = None, **headers: str):
    sent = client_headers(account.token)
    if key is not None:
        sent["Idempotency-Key"] = key
    sent.update(headers)
    return await client.post("//send_logs", json=body, headers=sent)


async def test_a_repeat_of_a_committed_key_answers_the_first_answer_and_stores_nothing(
    client, storage, user
):
    key, body = new_key(), client_body(user.name, 3)
    first = await post(client, user, body, key)
    await assert_added(first, 3)
    assert "Idempotent-Replayed" not in first.headers
    for _ in range(2):
        again = await post(client, user, body, key)
        assert again.status_code == 200
        assert await again.get_json() == OK_3
        assert again.headers["Idempotent-Replayed"] == "true"
    assert await storage.count_logs(user.id) == 3
    assert await storage.count_idempotency_keys(user.id) == 1


async def test_without_a_key_a_repeat_is_stored_again(client, storage, user):
    body = client_body(user.name, 3)
    for _ in range(2):
        await assert_added(await post(client, user, body), 3)
    assert await storage.count_logs(user.id) == 6
    assert await storage.count_idempotency_keys(user.id) == 0


async def test_the_retry_may_carry_a_new_post_time(client, storage, user):
    key, body = new_key(), client_body(user.name, 3, post_time="2026-01-01T00:00:00")
    await assert_added(await post(client, user, body, key), 3)
    body["data"]["post_time"] = "2026-01-01T00:00:09"
    again = await post(client, user, body, key)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert await storage.count_logs(user.id) == 3


async def test_keys_belong_to_their_user(client, storage, make_user):
    alice, bob = await make_user(), await make_user()
    key = new_key()
    await assert_added(await post(client, alice, client_body(alice.name, 3), key), 3)
    await assert_added(await post(client, bob, client_body(bob.name, 3), key), 3)
    assert await storage.count_logs(alice.id) == await storage.count_logs(bob.id) == 3


async def test_a_key_reused_for_another_batch_is_422_and_stores_nothing(client, storage, user):
    key = new_key()
    await assert_added(await post(client, user, client_body(user.name, 3), key), 3)
    other = client_body(user.name, [client_record(0, msg="something else")])
    body = await assert_error(await post(client, user, other, key), 422, "UnprocessableEntity")
    assert body["detail"] == "Idempotency-Key: already used for another request"
    assert await storage.count_logs(user.id) == 3


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 256, id="256-characters"),
        pytest.param("two words", id="space"),
        pytest.param("clé", id="not-ascii"),
        pytest.param('""', id="quoted-empty"),
    ],
)
async def test_a_malformed_key_is_400_and_stores_nothing(client, storage, user, key):
    body = await assert_error(
        await post(client, user, client_body(user.name, 3), key), 400, "BadRequest"
    )
    assert body["detail"] == "Idempotency-Key: must be 1-255 visible ASCII characters"
    assert await storage.count_logs(user.id) == 0


async def test_a_quoted_key_is_the_same_key(client, storage, user):
    body = client_body(user.name, 3)
    await assert_added(await post(client, user, body, "k-1"), 3)
    again = await post(client, user, body, '"k-1"')
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await storage.count_logs(user.id) == 3


async def test_two_different_keys_on_one_request_are_400(client, storage, user):
    headers = [
        *client_headers(user.token).items(),
        ("Idempotency-Key", "a"),
        ("Idempotency-Key", "b"),
    ]
    from werkzeug.datastructures import Headers

    response = await client.post(
        "/send_logs", json=client_body(user.name, 3), headers=Headers(headers)
    )
    body = await assert_error(response, 400, "BadRequest")
    assert body["detail"] == "Idempotency-Key: sent twice with different values"
    assert await storage.count_logs(user.id) == 0


async def test_a_wrong_token_with_a_key_is_403_before_the_key_is_looked_at(client, storage, user):
    response = await post(client, user, client_body(user.name, 3), "", **{"X-User-Token": "0" * 32})
    await assert_error(response, 403, "Forbidden")


async def test_concurrent_requests_with_one_key_store_once_and_answer_alike(client, storage, user):
    key, body = new_key(), client_body(user.name, 3)
    answers = await asyncio.gather(*(post(client, user, body, key) for _ in range(6)))
    assert [a.status_code for a in answers] == [200] * 6
    assert [await a.get_json() for a in answers] == [OK_3] * 6
    replayed = [a.headers.get("Idempotent-Replayed") for a in answers]
    assert replayed.count(None) == 1 and replayed.count("true") == 5
    assert await storage.count_logs(user.id) == 3


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_a_request_waits_for_the_transaction_holding_its_key(client, storage, user, outcome):
    """Another transaction (another worker) has claimed the key and not yet ended: the request
    waits for it, then answers its answer (commit) or stores the batch itself (rollback)."""
    key, body = new_key(), client_body(user.name, 3)
    rows = load_batch(body["data"], 65_536)
    other = {"code": 200, "message": "Logs added successfully", "added": 3, "by": "the other"}
    request = None
    try:
        async with storage.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO idempotency_keys (user_id, idempotency_key, fingerprint, answer, "
                "created_at) VALUES (?, ?, ?, ?, ?)",
                (
                    user.id,
                    key,
                    batch_fingerprint("send_logs", rows),
                    orjson.dumps(other).decode(),
                    storage.db.dialect.encode_time(utc_now()),
                ),
            )
            request = asyncio.ensure_future(post(client, user, body, key))
            await asyncio.sleep(0.5)
            assert not request.done()  # it waits for this transaction
            if outcome == "rollback":
                raise LookupError("roll back")
    except StorageError:  # the transaction's way of passing on the LookupError
        assert outcome == "rollback"
    answer = await asyncio.wait_for(request, 10)
    assert answer.status_code == 200
    if outcome == "commit":
        assert await answer.get_json() == other
        assert await storage.count_logs(user.id) == 0
    else:
        assert await answer.get_json() == OK_3
        assert await storage.count_logs(user.id) == 3


async def test_a_duplicate_in_a_group_commit_leaves_the_other_members_stored(storage, user):
    first = Claim.new(user.id, "dup", "fp", '{"added": 2}', utc_now())
    assert await storage.insert_logs(user.id, log_rows(2, "first"), utc_now(), first) == 2
    # Two batches take the writers; the rest queue behind them and share the next
    # transaction: a duplicate key, a batch without one right after it, a new key.
    claims = {
        "dup": Claim.new(user.id, "dup", "fp", '{"added": 2}', utc_now()),
        "new": Claim.new(user.id, "new", "fp2", '{"added": 2}', utc_now()),
    }
    results = await asyncio.gather(
        storage.insert_logs(user.id, log_rows(2, "w1"), utc_now()),
        storage.insert_logs(user.id, log_rows(2, "w2"), utc_now()),
        storage.insert_logs(user.id, log_rows(2, "dup"), utc_now(), claims["dup"]),
        storage.insert_logs(user.id, log_rows(2, "plain"), utc_now()),
        storage.insert_logs(user.id, log_rows(2, "new"), utc_now(), claims["new"]),
    )
    assert results == [2, 2, 0, 2, 2]
    assert storage._group.stats.largest_group >= 3  # they did share a transaction
    assert claims["dup"].duplicate is not None and claims["new"].duplicate is None
    stored = sorted({r.msg.split()[0] for r in await recent_logs(storage, user.id)})
    assert stored == ["first", "new", "plain", "w1", "w2"]
    assert await storage.count_logs(user.id) == 10


async def test_a_key_older_than_a_day_is_a_new_key(client, storage, user):
    key, body = new_key(), client_body(user.name, 3)
    await assert_added(await post(client, user, body, key), 3)
    old = storage.db.dialect.encode_time(utc_now() - timedelta(hours=24, minutes=1))
    async with storage.db.transaction() as tx:
        await tx.execute(
            "UPDATE idempotency_keys SET created_at = ? WHERE user_id = ?", (old, user.id)
        )
    again = await post(client, user, body, key)
    await assert_added(again, 3)
    assert "Idempotent-Replayed" not in again.headers
    assert await storage.count_logs(user.id) == 6
    assert await storage.count_idempotency_keys(user.id) == 1  # taken over, not added


async def test_the_purge_deletes_keys_older_than_a_day_and_keeps_the_others(client, storage, user):
    for _ in range(5):
        await assert_added(await post(client, user, client_body(user.name, 3), new_key()), 3)
    old = storage.db.dialect.encode_time(utc_now() - timedelta(hours=25))
    async with storage.db.transaction() as tx:
        await tx.execute(
            "UPDATE idempotency_keys SET created_at = ? WHERE user_id = ? AND idempotency_key IN "
            "(SELECT idempotency_key FROM (SELECT idempotency_key FROM idempotency_keys "
            "WHERE user_id = ? ORDER BY idempotency_key LIMIT 3) AS oldest)",
            (old, user.id, user.id),
        )
    report = await Purger(storage, Policy(), batch=2).run()
    # (On MySQL the database is shared with other tests: their old keys go too.)
    assert report is not None and report.idempotency_keys >= 3
    assert await storage.count_idempotency_keys(user.id) == 2
    assert await storage.count_logs(user.id) == 15  # records are retention's business


# -- usage events: POST /api/events (the tracker sends a key with every batch) -------------


EVENTS_3 = {"events": [{"name": "click", "session": "s1"}, {"name": "scroll"}, {"name": "x"}]}


async def post_events(client, account, body, key: str | None = None):
    headers = read_headers(account)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post("/api/events", json=body, headers=headers)


async def test_an_events_batch_repeated_with_its_key_is_stored_once(client, storage, user):
    key = new_key()
    first = await post_events(client, user, EVENTS_3, key)
    again = await post_events(client, user, EVENTS_3, key)
    answer = {"code": 200, "message": "Events added successfully", "added": 3}
    assert first.status_code == again.status_code == 200
    assert await first.get_json() == await again.get_json() == answer
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await storage.count_events(user.id) == 3
    assert await storage.count_idempotency_keys(user.id) == 1
    sessions = await (await client.get("/api/sessions", headers=read_headers(user))).get_json()
    assert [s["event_count"] for s in sessions["sessions"]] == [1]  # not counted twice


async def test_events_without_a_key_are_stored_again(client, storage, user):
    for _ in range(2):
        assert (await post_events(client, user, EVENTS_3)).status_code == 200
    assert await storage.count_events(user.id) == 6


async def test_an_events_key_reused_for_other_events_is_422_and_stores_nothing(
    client, storage, user
):
    key = new_key()
    assert (await post_events(client, user, EVENTS_3, key)).status_code == 200
    other = {"events": [{"name": "another"}]}
    await assert_error(await post_events(client, user, other, key), 422, "UnprocessableEntity")
    assert await storage.count_events(user.id) == 3


async def test_a_log_batchs_key_is_not_an_events_batchs(client, storage, user):
    key = new_key()
    await assert_added(await post(client, user, client_body(user.name, 3), key), 3)
    await assert_error(await post_events(client, user, EVENTS_3, key), 422, "UnprocessableEntity")
    assert await storage.count_events(user.id) == 0


async def test_a_malformed_events_key_is_400_and_stores_nothing(client, storage, user):
    await assert_error(await post_events(client, user, EVENTS_3, "a b"), 400, "BadRequest")
    assert await storage.count_events(user.id) == 0


async def test_concurrent_events_batches_with_one_key_store_once(client, storage, user):
    key = new_key()
    answers = await asyncio.gather(*(post_events(client, user, EVENTS_3, key) for _ in range(8)))
    assert {a.status_code for a in answers} == {200}
    replayed = [a.headers.get("Idempotent-Replayed") for a in answers]
    assert replayed.count(None) == 1 and replayed.count("true") == 7
    assert await storage.count_events(user.id) == 3


# -- the connection cut between COMMIT and the answer, against a real server ---------------


@pytest.fixture
async def cut_server(fresh_database_url, tmp_path):
    """A real server process behind a `TCPProxy` that can drop answers; and its user."""
    user = await add_user(fresh_database_url)
    with ServerProcess(fresh_database_url, tmp_path) as server:
        await server.wait_ready()
        proxy = await TCPProxy("127.0.0.1", server.port).start()
        try:
            yield proxy, user, fresh_database_url
        finally:
            await proxy.close()


@pytest.mark.parametrize("with_key", [True, False], ids=["with-key", "without-key"])
async def test_a_batch_whose_answer_was_lost_after_commit_is_stored_once_on_retry(
    cut_server, with_key
):
    proxy, user, database_url = cut_server
    headers = client_headers(user.token)
    if with_key:
        headers["Idempotency-Key"] = new_key()
    body = batch_body(user.name, "cut", 5)
    proxy.drop_answers(1)
    with pytest.raises(ConnectionError):
        await http(proxy.port, "POST", "//send_logs", body, headers)
    assert proxy.dropped_answers == 1
    retry = await http(proxy.port, "POST", "//send_logs", body, headers)
    assert retry.status == 200
    assert retry.json() == {"code": 200, "message": "Logs added successfully", "added": 5}
    copies = rows_per_batch(database_url, user.id)["cut"] // 5
    if with_key:
        assert retry.headers["idempotent-replayed"] == "true"
        assert copies == 1
    else:
        assert copies == 2  # what a retry without a key does: the batch is stored twice


async def test_the_logging_handler_delivers_once_across_a_lost_answer(cut_server):
    proxy, user, database_url = cut_server
    proxy.drop_answers(1)
    handler = Handler(f"http://127.0.0.1:{proxy.port}", user.name, user.token, p_name="cut")
    log = logging.getLogger(f"cut.{uuid.uuid4().hex[:8]}")
    log.propagate = False
    log.addHandler(handler)
    try:
        for i in range(5):
            log.warning("record %d", i)
        await asyncio.to_thread(handler.flush)
        for _ in range(200):
            if handler.stats.sent == 5:
                break
            await asyncio.sleep(0.05)
        assert handler.stats.sent == 5 and handler.stats.retries >= 1
    finally:
        log.removeHandler(handler)
        await asyncio.to_thread(handler.close)
    assert proxy.dropped_answers == 1
    assert rows_per_batch(database_url, user.id) == {"cut": 5}


async def test_an_events_batch_whose_answer_was_lost_is_stored_once_on_retry(cut_server):
    proxy, user, database_url = cut_server
    headers = {**read_headers(user), "Idempotency-Key": new_key()}
    body = orjson.dumps({"events": [{"name": "cut", "session": "s"} for _ in range(4)]})
    proxy.drop_answers(1)
    with pytest.raises(ConnectionError):
        await http(proxy.port, "POST", "/api/events", body, headers)
    assert proxy.dropped_answers == 1
    retry = await http(proxy.port, "POST", "/api/events", body, headers)
    assert retry.status == 200
    assert retry.json() == {"code": 200, "message": "Events added successfully", "added": 4}
    assert retry.headers["idempotent-replayed"] == "true"
    assert events_per_name(database_url, user.id) == {"cut": 4}
