"""The MySQL backend on a real 3-node Galera cluster: node choice, failover, conflicts, schema.

In process, against the session cluster of `galera_fixtures` (every node Synced before each
test; a killed node is restarted by the next test's fixture). Each test works in databases of
its own. What is checked:

* the pool connects to the first healthy node of the list, with causal reads;
* it moves off a node that is killed, cut off from the primary component or desynced, and
  back to the preferred node once that one is healthy again; connections to the old node
  are never used after a move;
* deadlocks and certification conflicts are `Conflict`; group commit writes the whole group
  again (bounded), so every member's rows are stored exactly once, or none of them;
* servers starting at once through different nodes all migrate the same fresh database.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from support import free_port
from support.galera import GaleraCluster

from bot_logging_server.config import DatabaseURL, HostPort
from bot_logging_server.storage import StorageUnavailable
from bot_logging_server.storage.base import Conflict
from bot_logging_server.storage.group_commit import GroupCommit
from bot_logging_server.storage.migrations import for_backend
from bot_logging_server.storage.mysql import MySQLDatabase

pytestmark = pytest.mark.slow

#: The most a move off a dead or cut-off node may take, seconds.
MOVE_BOUND = 5.0


def cluster_url(galera: GaleraCluster, name: str, order: tuple[int, ...]) -> DatabaseURL:
    """A URL listing the cluster's nodes in `order` (1-based), for database `name`."""
    hosts = tuple(HostPort(galera.node(i).host, galera.node(i).port) for i in order)
    return DatabaseURL(scheme="mysql", user=galera.user, name=name, hosts=hosts)


def drop_database(galera: GaleraCluster, name: str) -> None:
    """Drop `name` through the first running node."""
    for node in galera.nodes:
        if node.running:
            conn = galera.connect(node.index)
            try:
                with conn.cursor() as cur:
                    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            finally:
                conn.close()
            return


@pytest.fixture
def db_names(galera: GaleraCluster) -> Iterator[Callable[[], str]]:
    """``db_names()``: a fresh database name (``gc_<random>``); each is dropped at the end."""
    names: list[str] = []

    def new() -> str:
        names.append(f"gc_{uuid.uuid4().hex[:12]}")
        return names[-1]

    yield new
    for name in names:
        drop_database(galera, name)


async def opened(url: DatabaseURL, **kwargs: object) -> MySQLDatabase:
    db = MySQLDatabase(url, **{"pool_size": 4, "timeout": 8.0, **kwargs})  # type: ignore[arg-type]
    await db.open()
    return db


async def node_port(db: MySQLDatabase) -> int:
    """The port of the node a pooled connection of `db` talks to."""
    return int((await db.fetch("SELECT @@port"))[0][0])


def set_global(galera: GaleraCluster, index: int, setting: str) -> None:
    conn = galera.connect(index)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SET GLOBAL {setting}")
    finally:
        conn.close()


async def until(condition, timeout: float, what: str) -> float:
    """Await `condition()` (a coroutine function returning a bool) until true; the seconds."""
    began = time.monotonic()
    while not await condition():
        assert time.monotonic() - began < timeout, f"{what} not within {timeout} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - began


# -- choosing a node --------------------------------------------------------------------------


async def test_the_pool_uses_the_first_listed_healthy_node_with_causal_reads(galera, db_names):
    db = await opened(cluster_url(galera, db_names(), (2, 3, 1)))
    try:
        assert await db.fetch("SELECT @@port, @@wsrep_sync_wait") == [(galera.node(2).port, 1)]
        assert db.nodes.current.cluster
    finally:
        await db.close()


async def test_a_host_that_refuses_is_passed_over_and_a_plain_server_gets_no_wsrep_setting(
    mysql_server,
):
    plain = HostPort(mysql_server.host, mysql_server.port)
    url = DatabaseURL(
        scheme="mysql",
        user=mysql_server.user,
        password=mysql_server.password,
        name=f"blst_{uuid.uuid4().hex[:12]}",
        hosts=(HostPort("127.0.0.1", free_port()), plain),
    )
    db = await opened(url)
    try:
        assert await node_port(db) == plain.port
        # A MySQL without wsrep has no such variable; a MariaDB built with it says 0.
        setting = await db.fetch("SHOW SESSION VARIABLES LIKE 'wsrep\\_sync\\_wait'")
        assert [tuple(row) for row in setting] in ([], [("wsrep_sync_wait", "0")])
    finally:
        await db.fetch(f"DROP DATABASE `{url.name}`")
        await db.close()


async def test_no_healthy_host_at_start_is_storage_unavailable_naming_each():
    ports = [free_port(), free_port()]
    url = DatabaseURL(
        scheme="mysql", user="root", name="x", hosts=tuple(HostPort("127.0.0.1", p) for p in ports)
    )
    with pytest.raises(StorageUnavailable, match="no healthy database node") as raised:
        await opened(url)
    assert all(f"127.0.0.1:{p} cannot connect" in str(raised.value) for p in ports)


# -- moving off a node ------------------------------------------------------------------------


async def test_after_the_node_in_use_is_killed_the_next_one_serves_within_5_s(galera, db_names):
    db = await opened(cluster_url(galera, db_names(), (1, 2, 3)), check_interval=0)
    try:
        assert await node_port(db) == galera.node(1).port
        galera.kill(1)
        failures: list[str] = []

        async def served_by_node_2() -> bool:
            try:
                return await node_port(db) == galera.node(2).port
            except StorageUnavailable as exc:  # in flight at the kill: 503, never a 500
                failures.append(str(exc))
                return False

        await until(served_by_node_2, MOVE_BOUND, "served by node 2")
        assert db.nodes.moves == 1
        assert failures, "nothing failed: the node was not in use"
        # Every pooled connection now goes to node 2.
        ports = await asyncio.gather(*(node_port(db) for _ in range(12)))
        assert set(ports) == {galera.node(2).port}
    finally:
        await db.close()


async def test_a_node_cut_off_from_the_primary_component_is_left_and_preferred_again_later(
    galera, db_names
):
    db = await opened(cluster_url(galera, db_names(), (1, 2, 3)), check_interval=0.3)
    set_global(galera, 1, "wsrep_provider_options = 'gmcast.isolate=1'")
    isolated = True
    try:
        errors: list[str] = []

        async def moved() -> bool:
            try:
                await db.fetch("SELECT COUNT(*) FROM users")
            except StorageUnavailable as exc:  # WSREP not ready: 503, never a 500
                errors.append(str(exc))
            return db.nodes.current.address.port == galera.node(2).port

        await until(moved, 10, "moved to node 2")
        assert await node_port(db) == galera.node(2).port
        set_global(galera, 1, "wsrep_provider_options = 'gmcast.isolate=0'")
        isolated = False

        async def back() -> bool:
            return db.nodes.current.address.port == galera.node(1).port

        await until(back, 30, "back on node 1")
        assert await node_port(db) == galera.node(1).port
        assert db.nodes.moves == 2
    finally:
        if isolated:
            set_global(galera, 1, "wsrep_provider_options = 'gmcast.isolate=0'")
        await db.close()


async def test_a_desynced_node_is_left_without_any_failed_request_and_old_connections_are_dropped(
    galera, db_names
):
    db = await opened(cluster_url(galera, db_names(), (1, 2, 3)), check_interval=0.2)
    try:
        # Fill the pool with connections to node 1.
        assert set(await asyncio.gather(*(node_port(db) for _ in range(8)))) == {
            galera.node(1).port
        }
        set_global(galera, 1, "wsrep_desync = ON")
        try:

            async def left() -> bool:
                return db.nodes.current.address.port == galera.node(2).port

            await until(left, 3, "moved off the desynced node")
            ports = await asyncio.gather(*(node_port(db) for _ in range(8)))
            assert set(ports) == {galera.node(2).port}
        finally:
            set_global(galera, 1, "wsrep_desync = OFF")

        async def back() -> bool:
            return db.nodes.current.address.port == galera.node(1).port

        await until(back, 5, "back on node 1")
        assert set(await asyncio.gather(*(node_port(db) for _ in range(8)))) == {
            galera.node(1).port
        }
    finally:
        await db.close()


# -- conflicts --------------------------------------------------------------------------------


async def test_a_real_deadlock_is_a_conflict_and_the_other_transaction_commits(galera, db_names):
    db = await opened(cluster_url(galera, db_names(), (1,)))
    try:
        async with db.transaction() as tx:
            await tx.execute("CREATE TABLE pair (id INT PRIMARY KEY, n INT NOT NULL)")
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO pair VALUES (1, 0), (2, 0)")
        first_locked = [asyncio.Event(), asyncio.Event()]

        async def lock_both(first: int, second: int) -> None:
            async with db.transaction() as tx:
                await tx.execute("UPDATE pair SET n = n + 1 WHERE id = ?", (first,))
                first_locked[first - 1].set()
                await asyncio.wait_for(first_locked[second - 1].wait(), 5)
                await tx.execute("UPDATE pair SET n = n + 1 WHERE id = ?", (second,))

        results = await asyncio.gather(lock_both(1, 2), lock_both(2, 1), return_exceptions=True)
        assert sorted(type(r).__name__ for r in results) == ["Conflict", "NoneType"]
        assert await db.fetch("SELECT n FROM pair ORDER BY id") == [(1,), (1,)]
    finally:
        await db.close()


async def hot_row_writers(
    galera: GaleraCluster, name: str, retries: int, batches: int = 40
) -> tuple[list[BaseException | None], dict[str, int], int, int]:
    """Two servers, through nodes 1 and 2, group-commit batches that all update one row.

    Each group's transaction inserts its members' tags into ``items`` and adds their number
    to ``hot.n``: transactions through different nodes meet at certification. Returns each
    submit's outcome, the stored tags with their counts, ``hot.n``, and the retries made.
    """
    dbs = [
        await opened(cluster_url(galera, name, (1,))),
        await opened(cluster_url(galera, name, (2,))),
    ]
    try:
        async with dbs[0].transaction() as tx:
            await tx.execute("CREATE TABLE hot (id INT PRIMARY KEY, n BIGINT NOT NULL)")
            await tx.execute(
                "CREATE TABLE items (id BIGINT AUTO_INCREMENT PRIMARY KEY, tag VARCHAR(32))"
            )
        async with dbs[0].transaction() as tx:
            await tx.execute("INSERT INTO hot VALUES (1, 0)")
        # A causal read through node 2: it has applied the tables (DDL reaches the other
        # nodes a moment after the one it ran on) before its writer inserts into them.
        assert await dbs[1].fetch("SELECT n FROM hot") == [(0,)]

        def writer(db: MySQLDatabase):
            async def write(tags: list[str]) -> None:
                async with db.transaction() as tx:
                    values = ", ".join(["(?)"] * len(tags))
                    await tx.execute(f"INSERT INTO items (tag) VALUES {values}", tags)
                    await tx.execute("UPDATE hot SET n = n + ? WHERE id = 1", (len(tags),))

            return write

        groups = [GroupCommit(writer(db), writers=2, conflict_retries=retries) for db in dbs]

        async def submit(side: int, k: int) -> None:
            await asyncio.sleep(0.005 * k)  # a steady stream, not one burst
            await groups[side].submit([f"s{side}-{k}-{i}" for i in range(3)])

        outcomes = await asyncio.gather(
            *(submit(side, k) for k in range(batches) for side in (0, 1)), return_exceptions=True
        )
        conn = galera.connect(2, database=name)
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION wsrep_sync_wait = 1")
                cur.execute("SELECT tag, COUNT(*) FROM items GROUP BY tag")
                tags = {tag: int(count) for tag, count in cur.fetchall()}
                cur.execute("SELECT n FROM hot")
                ((hot,),) = cur.fetchall()
        finally:
            conn.close()
        return outcomes, tags, int(hot), sum(g.stats.conflict_retries for g in groups)
    finally:
        for db in dbs:
            await db.close()


async def test_certification_conflicts_are_retried_and_every_batch_is_stored_once(galera, db_names):
    outcomes, tags, hot, retries = await hot_row_writers(galera, db_names(), retries=4)
    assert [o for o in outcomes if o is not None] == []
    assert retries > 0, "no conflict happened: the test proves nothing"
    expected = {f"s{side}-{k}-{i}" for side in (0, 1) for k in range(40) for i in range(3)}
    assert tags == dict.fromkeys(expected, 1)
    assert hot == len(expected)


async def test_without_retries_a_conflicting_group_fails_whole_and_stores_nothing(galera, db_names):
    outcomes, tags, hot, _ = await hot_row_writers(galera, db_names(), retries=0)
    failed = [o for o in outcomes if o is not None]
    assert failed and all(isinstance(o, Conflict) for o in failed)
    # All or nothing: the counter matches the stored rows, and no batch is partial.
    assert hot == sum(tags.values())
    assert set(tags.values()) == {1}
    batches: dict[str, int] = {}
    for tag in tags:
        batch = tag.rsplit("-", 1)[0]
        batches[batch] = batches.get(batch, 0) + 1
    assert set(batches.values()) == {3}
    assert len(batches) == 80 - len(failed)


async def test_events_of_one_session_written_through_two_nodes_open_it_once(galera, db_names):
    """Two servers' event groups upsert the same session row: they meet at certification."""
    from bot_logging_server import events as ev
    from bot_logging_server.events import Event
    from bot_logging_server.storage import Storage

    name = db_names()
    stores = [Storage(await opened(cluster_url(galera, name, (i,)))) for i in (1, 2)]
    try:
        owner = await stores[0].create_user("eve", "x" * 64, None)

        async def post(side: int, k: int) -> object:
            await asyncio.sleep(0.004 * k)
            event = Event("eye", f"s{side}-{k}", session="busy", category="c")
            # A group still in conflict after its retries is a 503 (nothing of it stored):
            # the client sends it again, as a real one does.
            for _ in range(5):
                try:
                    return await ev.record_events(owner, [event], storage=stores[side])
                except Conflict:
                    await asyncio.sleep(0.1)
            return await ev.record_events(owner, [event], storage=stores[side])

        results = await asyncio.gather(*(post(side, k) for k in range(40) for side in (0, 1)))
        retries = sum(s._event_group.stats.conflict_retries for s in stores)
        session = await stores[1].find_session("eye", "busy", owner.id)
        count = await stores[1].count_events(owner.id)
    finally:
        for store in stores:
            await store.close()
    assert retries > 0, "no conflict happened: the test proves nothing"
    assert sum(1 for r in results if r.new_sessions == {"busy"}) == 1
    assert (count, session.event_count) == (80, 80)


# -- schema -----------------------------------------------------------------------------------


async def test_servers_starting_at_once_through_different_nodes_all_migrate(galera, db_names):
    orders = [(1, 2, 3), (2, 3, 1), (3, 1, 2)]
    for _ in range(3):
        name = db_names()
        dbs = [MySQLDatabase(cluster_url(galera, name, order), pool_size=2) for order in orders]
        results = await asyncio.gather(*(db.open() for db in dbs), return_exceptions=True)
        try:
            assert results == [None, None, None]
            ports = {await node_port(db) for db in dbs}
            assert len(ports) == 3  # each through its own node
        finally:
            for db in dbs:
                await db.close()
        conn = galera.connect(3, database=name)
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION wsrep_sync_wait = 1")
                cur.execute("SELECT version FROM schema_version ORDER BY version")
                versions = [v for (v,) in cur.fetchall()]
                cur.execute("SHOW INDEX FROM user_logs")
                indexes = {row[2] for row in cur.fetchall()}
        finally:
            conn.close()
        assert versions == [m.version for m in for_backend("mysql")]
        assert "ix_user_logs_user_event_id" in indexes
        assert "ix_user_logs_user_event_level" not in indexes  # dropped by a later step
        assert "ix_user_logs_user_event_at" not in indexes
