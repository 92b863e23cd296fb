"""A real 3-node MariaDB Galera cluster: membership, replication, failover, rejoin, ids.

The session cluster of `support.galera` (three ``mariadbd`` on loopback, failure detection shortened
to a 2 s suspect timeout). Every test starts with the three nodes Synced and works in its own
database. Reads that must see a write made on another node set ``wsrep_sync_wait=1`` (causal
reads): Galera certifies a commit on every node before it returns, but applies it on the
others asynchronously.
"""

from __future__ import annotations

import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import pymysql
import pytest
from support import ROOT
from support.galera import GaleraCluster

# The first test also starts the cluster (mariadb-install-db up to 60 s, start up to 90 s).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

#: How long a surviving node may stop committing after a peer is killed.
FAILOVER_BOUND = 5.0


@pytest.fixture
def db(galera: GaleraCluster) -> Iterator[str]:
    """A database of this test on the cluster with one table ``t`` (auto-increment ids)."""
    name = f"gt_{uuid.uuid4().hex[:12]}"
    conn = galera.connect(1)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
            cur.execute(
                f"CREATE TABLE `{name}`.t (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, "
                "node TINYINT NOT NULL, n INT NOT NULL) ENGINE=InnoDB"
            )
    finally:
        conn.close()
    yield name
    for node in galera.nodes:
        if node.running:
            conn = galera.connect(node.index)
            try:
                with conn.cursor() as cur:
                    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            finally:
                conn.close()
            break


def causal(galera: GaleraCluster, index: int, db: str) -> pymysql.connections.Connection:
    """A connection to node `index` whose reads wait until it applied every earlier commit."""
    conn = galera.connect(index, database=db)
    with conn.cursor() as cur:
        cur.execute("SET SESSION wsrep_sync_wait = 1")
    return conn


def query(conn: pymysql.connections.Connection, sql: str, *args: object) -> list[tuple]:
    """Run one statement and return every row."""
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


@dataclass
class Writer:
    """A thread that inserts rows ``(node, n)`` through node `index` until stopped.

    `commits` holds the monotonic time each acknowledged commit returned; `errors` every
    failed statement. Statement timeouts are bounded by the connection (15 s).
    """

    galera: GaleraCluster
    index: int
    db: str
    commits: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.conn = self.galera.connect(self.index, database=self.db)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.conn.cursor() as cur:
            while not self.stop.is_set():
                try:
                    cur.execute(
                        "INSERT INTO t (node, n) VALUES (%s, %s)", (self.index, len(self.commits))
                    )
                except pymysql.err.MySQLError as exc:
                    self.errors.append(repr(exc))
                    time.sleep(0.05)
                else:
                    self.commits.append(time.monotonic())
                time.sleep(0.01)

    def start(self) -> Writer:
        """Start writing."""
        self.thread.start()
        return self

    def finish(self) -> None:
        """Stop writing and close the connection (bounded by the statement timeout)."""
        self.stop.set()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), f"writer on node {self.index} hung"
        self.conn.close()

    def longest_stall(self, since: float, until: float) -> float:
        """The longest time within [since, until] in which no commit returned."""
        marks = [since, *(t for t in self.commits if since < t < until), until]
        return max(b - a for a, b in pairwise(marks))


def test_three_nodes_form_one_primary_component_and_each_is_synced(galera):
    ports = {node.port for node in galera.nodes}
    for index in (1, 2, 3):
        status = galera.status(index)
        assert status.synced, status
        assert status.cluster_size == 3
        conn = galera.connect(index)
        try:
            ((_, incoming),) = query(conn, "SHOW GLOBAL STATUS LIKE 'wsrep_incoming_addresses'")
        finally:
            conn.close()
        assert {int(address.rsplit(":", 1)[1]) for address in incoming.split(",")} == ports


def test_a_row_written_on_node_1_is_read_on_node_3(galera, db):
    writer = galera.connect(1, database=db)
    reader = causal(galera, 3, db)
    try:
        with writer.cursor() as cur:
            cur.execute("INSERT INTO t (node, n) VALUES (1, 4242)")
            written = cur.lastrowid
        assert query(reader, "SELECT id, node, n FROM t") == [(written, 1, 4242)]
    finally:
        writer.close()
        reader.close()


def test_auto_increment_ids_interleave_across_nodes_without_collisions(galera, db):
    conns = {index: galera.connect(index, database=db) for index in (1, 2, 3)}
    try:
        settings = {
            index: query(conn, "SELECT @@auto_increment_increment, @@auto_increment_offset")[0]
            for index, conn in conns.items()
        }
        # wsrep_auto_increment_control: the step is the cluster size, each node its own offset.
        assert {step for step, _ in settings.values()} == {3}
        assert sorted(offset for _, offset in settings.values()) == [1, 2, 3]
        ids: list[tuple[int, int]] = []
        for round_no in range(4):
            for index, conn in conns.items():
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO t (node, n) VALUES (%s, %s)", (index, round_no))
                    ids.append((cur.lastrowid, index))
        for row_id, index in ids:
            step, offset = settings[index]
            assert row_id % step == offset % step, (row_id, index, settings)
        # Written one after another through different nodes: ids grow and never collide.
        values = [row_id for row_id, _ in ids]
        assert values == sorted(set(values))
        # Two rows in a row through one node: its ids are a step apart, not consecutive.
        with conns[1].cursor() as cur:
            cur.executemany("INSERT INTO t (node, n) VALUES (1, %s)", [(10,), (11,)])
            cur.execute("SELECT id FROM t WHERE node = 1 AND n >= 10 ORDER BY id")
            (first,), (second,) = cur.fetchall()
        assert second - first == 3
        ids += [(first, 1), (second, 1)]
        reader = causal(galera, 2, db)
        try:
            assert query(reader, "SELECT id, node FROM t ORDER BY id") == sorted(ids)
        finally:
            reader.close()
    finally:
        for conn in conns.values():
            conn.close()


def test_after_kill_9_of_a_node_the_other_two_keep_committing_within_5_s(galera, db):
    writers = [Writer(galera, index, db).start() for index in (1, 3)]
    time.sleep(0.5)
    killed_at = time.monotonic()
    galera.kill(2)
    try:
        deadline = killed_at + FAILOVER_BOUND + 3
        while time.monotonic() < deadline and not all(
            any(t > killed_at + FAILOVER_BOUND for t in w.commits) for w in writers
        ):
            time.sleep(0.1)
    finally:
        for writer in writers:
            writer.finish()
    window_end = killed_at + FAILOVER_BOUND + 1
    for writer in writers:
        stall = writer.longest_stall(killed_at, min(window_end, writer.commits[-1]))
        assert writer.errors == []
        assert stall < FAILOVER_BOUND, f"node {writer.index} stalled {stall:.2f} s"
        assert writer.commits[-1] > killed_at + FAILOVER_BOUND
    for index in (1, 3):
        status = galera.status(index)
        assert status.synced and status.cluster_size == 2, status
    # Every acknowledged commit is in the cluster exactly once.
    conn = causal(galera, 3, db)
    try:
        counts = dict(query(conn, "SELECT node, COUNT(*) FROM t GROUP BY node"))
    finally:
        conn.close()
    assert counts == {writer.index: len(writer.commits) for writer in writers}


@pytest.mark.parametrize(
    ("recover", "transfer"), [(True, "IST"), (False, "SST")], ids=["ist", "sst"]
)
def test_a_killed_node_rejoins_by_state_transfer_with_the_rows_written_meanwhile(
    galera, db, recover, transfer
):
    conn1 = galera.connect(1, database=db)
    try:
        with conn1.cursor() as cur:
            cur.executemany("INSERT INTO t (node, n) VALUES (1, %s)", [(n,) for n in range(10)])
        galera.kill(2)
        with conn1.cursor() as cur:
            cur.executemany("INSERT INTO t (node, n) VALUES (1, %s)", [(n,) for n in range(10, 60)])
    finally:
        conn1.close()
    # Writes continue through node 3 while node 2 catches up.
    writer = Writer(galera, 3, db).start()
    try:
        galera.restart(2, recover=recover)
        time.sleep(0.5)
    finally:
        writer.finish()
    assert writer.errors == []
    assert writer.commits, "no commit through node 3 during the rejoin"
    assert galera.last_state_transfer(2) == transfer
    assert galera.status(2).cluster_size == 3
    rows = {}
    for index in (1, 2, 3):
        conn = causal(galera, index, db)
        try:
            rows[index] = query(conn, "SELECT id, node, n FROM t ORDER BY id")
        finally:
            conn.close()
    assert rows[2] == rows[1] == rows[3]
    assert [n for node, n in ((r[1], r[2]) for r in rows[2]) if node == 1] == list(range(60))
    assert sum(1 for r in rows[2] if r[1] == 3) == len(writer.commits)


# -- the cluster's own promises: nothing is left behind -----------------------------------


def live_pids(base: Path) -> list[int]:
    """Pids of processes whose command line mentions `base` (a cluster's directory)."""
    found = subprocess.run(
        ["pgrep", "-f", str(base)], capture_output=True, text=True, timeout=10, check=False
    )
    return [int(pid) for pid in found.stdout.split()]


def wait_until_gone(base: Path, timeout: float) -> list[int]:
    """Wait until no process mentions `base` and the directory is gone; the pids left."""
    deadline = time.monotonic() + timeout
    while (pids := live_pids(base)) or base.exists():
        if time.monotonic() > deadline:
            return pids or [-1]
        time.sleep(0.1)
    return []


def test_a_stopped_cluster_leaves_no_process_and_no_directory(galera_installed):
    with GaleraCluster(size=1) as cluster:
        base = cluster.base
        assert base is not None
        assert cluster.status(1).synced
        assert live_pids(base)
    assert live_pids(base) == []
    assert not base.exists()


def test_when_the_test_process_is_killed_its_nodes_are_killed_too(galera_installed):
    paths = [str(Path(__file__).parent), str(ROOT)]
    script = (
        f"import sys, time; sys.path[:0] = {paths!r}; from support.galera import GaleraCluster;"
        "c = GaleraCluster(size=1).start(); print(c.base, flush=True); time.sleep(120)"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True
    )
    base = None
    try:
        ready, _, _ = select.select([owner.stdout], [], [], 90)
        assert ready, "the cluster in the child process did not start"
        base = Path(owner.stdout.readline().decode().strip())  # type: ignore[union-attr]
        assert live_pids(base), "no node running"
        owner.kill()
        owner.wait(timeout=10)
        assert wait_until_gone(base, timeout=15) == []
    finally:
        owner.kill()
        owner.wait(timeout=10)
        owner.stdout.close()  # type: ignore[union-attr]
        for pid in live_pids(base) if base else []:
            subprocess.run(["kill", "-9", str(pid)], check=False)
