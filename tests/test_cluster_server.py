"""Real servers on a real 3-node Galera cluster: a node killed under load, ids that interleave.

Each server is ``python3 app.py`` with every node in its database URL (`ServerProcess`);
senders post real-client batches, each with a unique ``p_name`` marker, and what was
acknowledged is counted per marker on a node that survived, with causal reads.

* ``kill -9`` of the node the server writes through, under load: batches in flight may get
  503, every 200 is in the cluster exactly once, 200s come back within 5 s, and the node
  rejoins (state transfer) while the load goes on.
* Three servers, each writing through its own node, so ids interleave
  (``auto_increment_increment`` 3) and id order is not commit order: the live tail of every
  server and the keyset pages of every server hold every record exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from support import Account, ServerProcess, add_user, batch_body, client_headers, http
from support.galera import GaleraCluster

pytestmark = pytest.mark.slow

#: After the node in use is killed, a 200 must come back within this many seconds.
FAILOVER_BOUND = 5.0


def url_text(galera: GaleraCluster, name: str, order: tuple[int, ...]) -> str:
    """``mysql://root@node:port,.../name`` listing the nodes in `order` (1-based)."""
    hosts = ",".join(f"{galera.node(i).host}:{galera.node(i).port}" for i in order)
    return f"mysql://{galera.user}@{hosts}/{name}"


@pytest.fixture
def db_name(galera: GaleraCluster) -> Iterator[str]:
    """A database name of this test (created by the servers), dropped at the end."""
    name = f"gs_{uuid.uuid4().hex[:12]}"
    yield name
    for node in galera.nodes:
        if node.running:
            conn = galera.connect(node.index)
            try:
                with conn.cursor() as cur:
                    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            finally:
                conn.close()
            return


def stored_rows(galera: GaleraCluster, index: int, name: str, user_id: int) -> list[tuple]:
    """``(id, p_name)`` of every row of `user_id`, read on node `index` after every commit."""
    conn = galera.connect(index, database=name)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION wsrep_sync_wait = 1")
            cur.execute(
                "SELECT id, p_name FROM user_logs WHERE user_id = %s ORDER BY id", (user_id,)
            )
            return list(cur.fetchall())
    finally:
        conn.close()


@dataclass
class TimedLoad:
    """`workers` senders posting `records`-record batches to `port` until stopped.

    `results` maps each batch's ``p_name`` to its status (or exception name) and the
    monotonic time its answer arrived. A non-200 batch is not retried: a new one goes out.
    """

    port: int
    user: Account
    workers: int = 6
    records: int = 5
    prefix: str = "b"
    results: dict[str, tuple[int | str, float]] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> TimedLoad:
        """Start the senders."""
        self._tasks = [asyncio.ensure_future(self._send(w)) for w in range(self.workers)]
        return self

    async def stop(self) -> None:
        """Let each sender finish its request, then stop."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _send(self, worker: int) -> None:
        headers = client_headers(self.user.token)
        seq = 0
        while not self._stop.is_set():
            p_name = f"{self.prefix}{worker}-{seq}"
            seq += 1
            body = batch_body(self.user.name, p_name, self.records)
            try:
                reply = await http(self.port, "POST", "//send_logs", body, headers, timeout=30)
                status: int | str = reply.status
            except (TimeoutError, OSError) as exc:
                status = type(exc).__name__
            self.results[p_name] = (status, time.monotonic())
            if status != 200:
                await asyncio.sleep(0.05)

    def ok_times(self) -> list[float]:
        """When each 200 arrived, in order."""
        return sorted(t for status, t in self.results.values() if status == 200)

    def statuses(self) -> dict[int | str, int]:
        """How many batches ended with each status."""
        counts: dict[int | str, int] = {}
        for status, _ in self.results.values():
            counts[status] = counts.get(status, 0) + 1
        return counts

    def check_stored(self, rows: list[tuple]) -> dict[str, int]:
        """Assert every 200 batch is stored exactly once and no batch is partial."""
        per_batch: dict[str, int] = {}
        for _, p_name in rows:
            per_batch[p_name] = per_batch.get(p_name, 0) + 1
        acked = {p for p, (status, _) in self.results.items() if status == 200}
        wrong = {p: per_batch.get(p, 0) for p in acked if per_batch.get(p, 0) != self.records}
        assert not wrong, f"acknowledged batches not stored exactly once: {wrong}"
        partial = {p: n for p, n in per_batch.items() if n != self.records}
        assert not partial, f"partial or duplicated batches: {partial}"
        assert set(per_batch) <= set(self.results), "rows of batches never sent"
        return {"acked": len(acked), "stored": len(per_batch)}


class Tail:
    """A live ``GET /api/tail`` over a raw socket: the record ids, in the order they came."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.ids: list[int] = []
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, port: int, user: Account) -> AsyncIterator[Tail]:
        """Connect, wait for the stream's first comment (the starting point is fixed)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            (
                f"GET /api/tail HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"X-User: {user.name}\r\nX-User-Token: {user.token}\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"chunked" in head.lower(), head
        tail = cls(reader, writer)
        try:
            yield tail
        finally:
            tail._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await tail._task
            writer.close()

    async def _read(self) -> None:
        buffer = b""
        while True:
            try:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    return
                buffer += (await self.reader.readexactly(size + 2))[:-2]
            except asyncio.IncompleteReadError:
                return  # the server closed the stream; what came is in `ids`
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                for line in event.split(b"\n"):
                    if line.startswith(b"data: "):
                        self.ids.append(orjson.loads(line[6:])["id"])

    async def wait_for(self, count: int, timeout: float) -> None:
        """Wait until `count` records came (or `timeout` seconds passed)."""
        deadline = time.monotonic() + timeout
        while len(self.ids) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)


async def all_pages(port: int, user: Account, limit: int = 100) -> list[int]:
    """Every record id of `user`, newest first, by following ``next_cursor``."""
    headers = {"X-User": user.name, "X-User-Token": user.token}
    ids: list[int] = []
    cursor = None
    while True:
        query = f"/api/logs?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        reply = await http(port, "GET", query, headers=headers)
        assert reply.status == 200, reply.body
        page = reply.json()
        ids += [record["id"] for record in page["logs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def test_kill_9_of_the_node_in_use_under_load_loses_no_acknowledged_batch(
    galera, db_name, tmp_path: Path
):
    url = url_text(galera, db_name, (1, 2, 3))
    user = await add_user(url)
    with ServerProcess(url, tmp_path) as server:
        await server.wait_ready()
        load = TimedLoad(server.port, user).start()
        try:
            await asyncio.sleep(2)
            assert load.ok_times(), "no 200 before the kill"
            killed_at = time.monotonic()
            await asyncio.to_thread(galera.kill, 1)
            await asyncio.sleep(FAILOVER_BOUND + 1)
            rejoin_began = time.monotonic()
            transfer_seconds = await asyncio.to_thread(galera.restart, 1)
            rejoined_at = time.monotonic()
            await asyncio.sleep(1)
        finally:
            await load.stop()
        output = server.output()
    oks = load.ok_times()
    after_kill = [t for t in oks if t > killed_at]
    assert after_kill, f"no 200 after the kill: {load.statuses()}"
    assert after_kill[0] - killed_at < FAILOVER_BOUND
    gaps = [b - a for a, b in zip([killed_at, *after_kill], after_kill, strict=False)]
    assert max(gaps) < FAILOVER_BOUND, f"longest wait for a 200: {max(gaps):.2f} s"
    during_rejoin = [t for t in oks if rejoin_began < t < rejoined_at]
    assert during_rejoin, f"no 200 during the {transfer_seconds:.1f} s rejoin"
    assert set(load.statuses()) <= {200, 503}, load.statuses()
    assert "Traceback" not in output
    figures = load.check_stored(stored_rows(galera, 3, db_name, user.id))
    assert figures["acked"] == len(oks)


async def test_three_servers_through_three_nodes_tail_and_page_every_record_once(
    galera, db_name, tmp_path: Path
):
    orders = [(1, 2, 3), (2, 3, 1), (3, 1, 2)]
    urls = [url_text(galera, db_name, order) for order in orders]
    user = await add_user(urls[0])
    servers = [ServerProcess(url, tmp_path).start() for url in urls]
    try:
        await asyncio.gather(*(server.wait_ready() for server in servers))
        async with contextlib.AsyncExitStack() as stack:
            tails = [await stack.enter_async_context(Tail.open(s.port, user)) for s in servers]
            loads = [
                TimedLoad(server.port, user, workers=3, prefix=f"s{k}-").start()
                for k, server in enumerate(servers)
            ]
            try:
                await asyncio.sleep(2)
                # Keyset pages walked while every server writes: each walk holds every record
                # stored before it began, and none twice.
                before = {row_id for row_id, _ in stored_rows(galera, 2, db_name, user.id)}
                walks = await asyncio.gather(*(all_pages(s.port, user) for s in servers))
                await asyncio.sleep(1)
            finally:
                await asyncio.gather(*(load.stop() for load in loads))
            rows = stored_rows(galera, 1, db_name, user.id)
            stored = [row_id for row_id, _ in rows]
            for tail in tails:
                await tail.wait_for(len(stored), timeout=6)
            pages = [await all_pages(server.port, user) for server in servers]
    finally:
        for server in servers:
            server.stop()
    for load in loads:
        assert load.statuses() == {200: len(load.results)}
        load.check_stored([row for row in rows if row[1].startswith(load.prefix)])
    # Each server wrote through its own node: its ids share one residue mod 3, and the three
    # residues differ, so ids interleave.
    residues = [{row_id % 3 for row_id, p in rows if p.startswith(f"s{k}-")} for k in range(3)]
    assert all(len(r) == 1 for r in residues) and len(set.union(*residues)) == 3, residues
    for k, tail in enumerate(tails):
        assert len(tail.ids) == len(set(tail.ids)), f"server {k}: a record came twice"
        assert sorted(tail.ids) == stored, f"server {k}: the tail missed records"
    for k, walk in enumerate(walks):
        assert walk == sorted(set(walk), reverse=True), f"server {k}: a page repeated a record"
        assert before <= set(walk), f"server {k}: pages skipped {sorted(before - set(walk))[:5]}"
    for k, page_ids in enumerate(pages):
        assert page_ids == sorted(stored, reverse=True), f"server {k}: pages differ"
