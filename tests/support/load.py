"""Clients under load against a server process, and the check of what they left behind.

`Load` runs a few clients that post batches as fast as they are answered, each batch with its
own ``p_name`` (`batch_body`), so that `Load.check_database` can compare every answer with
the rows `support.database.rows_per_batch` finds: each 200 stored exactly once, no batch in
part.
"""

from __future__ import annotations

import asyncio

import orjson

from support.client import Account, client_headers
from support.process import Reply, http


def batch_body(user: str, p_name: str, records: int, msg: str = "m") -> bytes:
    """A real-client batch of `records` records whose ``p_name`` identifies it."""
    now = "2026-01-01T00:00:00"
    logs = [
        {"level": 40, "msg": f"{msg} {i}", "event_at": now, "p_description": "load"}
        for i in range(records)
    ]
    data = {"user": user, "pid": 1, "p_name": p_name, "post_time": now, "logs": logs}
    return orjson.dumps({"data": data})


class Load:
    """`workers` clients posting batches of `records` records as fast as they are answered.

    Every batch has a unique ``p_name``, so the database can be checked batch by batch.
    `results` maps each ``p_name`` to the HTTP status, or the name of the exception when no
    answer came (connection refused, reset, timeout). A non-200 batch is not retried: a new
    batch goes out instead, after `pause` seconds.
    """

    def __init__(
        self,
        port: int,
        user: Account,
        workers: int = 4,
        records: int = 5,
        prefix: str = "b",
        pause: float = 0.05,
    ) -> None:
        self.port, self.user, self.workers, self.records = port, user, workers, records
        self.prefix, self.pause = prefix, pause
        self.results: dict[str, int | str] = {}
        self.bad_replies: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> Load:
        """Start the clients."""
        self._tasks = [asyncio.ensure_future(self._client(w)) for w in range(self.workers)]
        return self

    async def stop(self) -> None:
        """Let every client finish its current request, then stop."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _client(self, worker: int) -> None:
        seq = 0
        headers = client_headers(self.user.token)
        while not self._stop.is_set():
            p_name = f"{self.prefix}{worker}-{seq}"
            seq += 1
            body = batch_body(self.user.name, p_name, self.records)
            try:
                reply = await http(self.port, "POST", "//send_logs", body, headers, timeout=30)
            except (TimeoutError, OSError) as exc:
                self.results[p_name] = type(exc).__name__
                await asyncio.sleep(self.pause)
                continue
            self.results[p_name] = reply.status
            self._check(p_name, reply)
            if reply.status != 200:
                await asyncio.sleep(self.pause)

    def _check(self, p_name: str, reply: Reply) -> None:
        try:
            body = reply.json()
        except orjson.JSONDecodeError:
            self.bad_replies.append(f"{p_name}: {reply.status} not JSON: {reply.body[:80]!r}")
            return
        if body.get("code") != reply.status:
            self.bad_replies.append(f"{p_name}: {reply.status} body {body}")
        if reply.status == 503 and reply.headers.get("retry-after") is None:
            self.bad_replies.append(f"{p_name}: 503 without Retry-After")

    def statuses(self) -> dict[int | str, int]:
        """How many batches ended with each status or exception name."""
        counts: dict[int | str, int] = {}
        for status in self.results.values():
            counts[status] = counts.get(status, 0) + 1
        return counts

    def acked(self) -> set[str]:
        """The ``p_name`` of every batch answered 200."""
        return {p for p, status in self.results.items() if status == 200}

    def check_database(self, stored: dict[str, int]) -> dict[str, int]:
        """Assert every 200 batch is stored exactly once and no batch is partial.

        `stored` is `rows_per_batch`. Returns figures: batches sent and acknowledged, records
        acknowledged and counted, and unacknowledged batches found whole in the database
        (their commit succeeded but the answer was lost or late, e.g. a connection cut
        between COMMIT and its OK).
        """
        acked = self.acked()
        wrong = {p: stored.get(p, 0) for p in acked if stored.get(p, 0) != self.records}
        assert not wrong, f"acknowledged batches not stored exactly once: {wrong}"
        partial = {p: n for p, n in stored.items() if n not in (0, self.records)}
        assert not partial, f"partial or duplicated batches: {partial}"
        unknown = set(stored) - set(self.results)
        assert not unknown, f"rows of batches never sent: {unknown}"
        acked_records = len(acked) * self.records
        counted = sum(stored[p] for p in acked)
        return {
            "batches_sent": len(self.results),
            "batches_acked": len(acked),
            "records_acked": acked_records,
            "records_counted_for_acked": counted,
            "records_in_table": sum(stored.values()),
            "unacked_batches_stored_whole": len(set(stored) - acked),
        }
