"""The logging handler when the server refuses: retries, idempotency keys, dropped batches.

503 and 429 are retried after ``Retry-After``, and a dropped connection is retried, with
the batch's own ``Idempotency-Key``; a 400 drops the batch, counts it and the sender keeps
going; a 413 splits the batch until it fits. All against `FakeServer`.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from support import TOKEN, FakeServer, wait_for


@pytest.mark.parametrize("status", [503, 429])
def test_503_and_429_are_retried_after_retry_after_with_the_same_idempotency_key(status, attach):
    with FakeServer((status, {"Retry-After": "1"})) as fake:
        handler, log = attach(fake.url, "alice", TOKEN)
        log.warning("sku %s", "A-17")
        handler.flush()
        wait_for(lambda: handler.stats.sent == 1, what="the retry accepted")
    first, second = fake.seen
    assert first.body == second.body and first.msgs == ["sku A-17"]
    key = first.headers["idempotency-key"]
    assert uuid.UUID(key).version == 4 and second.headers["idempotency-key"] == key
    assert first.headers["x-user-token"] == TOKEN
    assert second.at - first.at >= 0.95  # Retry-After: 1, not the 0.25-0.5 s first back-off
    stats = handler.stats
    assert (stats.requests, stats.retries, stats.dropped) == (2, 1, 0)
    assert f"HTTP {status}" in stats.last_error


def test_a_dropped_connection_is_retried_with_the_same_key(attach):
    with FakeServer("drop", "drop") as fake:
        handler, log = attach(fake.url, "alice", TOKEN, flush_interval=0.1)
        log.warning("through")
        wait_for(lambda: handler.stats.sent == 1, what="delivered on the third attempt")
    assert [seen.msgs for seen in fake.seen] == [["through"]] * 3
    assert len({seen.headers["idempotency-key"] for seen in fake.seen}) == 1


def test_each_batch_has_its_own_idempotency_key(attach):
    with FakeServer() as fake:
        handler, log = attach(fake.url, "alice", TOKEN, batch_size=2)
        for i in range(6):
            log.warning("r%d", i)
        wait_for(lambda: handler.stats.sent == 6)
    assert len({seen.headers["idempotency-key"] for seen in fake.seen}) == 3


def test_a_400_drops_the_batch_counts_it_and_the_sender_keeps_going(attach, capsys):
    with FakeServer(400) as fake:
        handler, log = attach(fake.url, "alice", TOKEN)
        log.warning("refused")
        handler.flush()
        log.warning("after")
        handler.flush()
        assert fake.msgs() == ["refused", "after"]
    stats = handler.stats
    assert (stats.sent, stats.dropped_rejected, stats.requests, stats.queued) == (1, 1, 2, 0)
    assert stats.last_error == "HTTP 400 scripted: why"
    assert "refused a batch of 1 records (HTTP 400 scripted: why)" in capsys.readouterr().err


def test_a_413_splits_the_batch_until_it_fits(attach):
    def too_large(body: dict[str, Any]) -> int:
        return 413 if len(body["data"]["logs"]) > 2 else 200

    with FakeServer() as fake:
        fake.always = too_large
        handler, log = attach(fake.url, "alice", TOKEN, batch_size=5)
        for i in range(5):
            log.warning("big %d", i)
        wait_for(lambda: handler.stats.sent == 5)
    accepted = [msg for seen in fake.seen if len(seen.msgs) <= 2 for msg in seen.msgs]
    assert accepted == [f"big {i}" for i in range(5)]
    assert [len(seen.msgs) for seen in fake.seen] == [5, 2, 3, 1, 2]
