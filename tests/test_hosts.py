"""Several database hosts: the host-list parser and the choice of a healthy, synced node.

Health is checked against real servers: the MariaDB of this machine (no wsrep), ports where
nothing or a silent server listens, and the session Galera cluster, whose nodes are made
unhealthy for real (desynced, isolated from the group, killed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from support import free_port
from support.galera import GaleraCluster

from bot_logging_server.config import ConfigError, DatabaseURL
from bot_logging_server.storage import StorageUnavailable
from bot_logging_server.storage.hosts import (
    HostPort,
    check_node,
    check_nodes,
    parse_hosts,
    pick_node,
)

# The first test on the cluster also starts it (mariadb-install-db up to 60 s, start 90 s).
pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("db1:3306,db2:3307,db3:3308", [("db1", 3306), ("db2", 3307), ("db3", 3308)]),
        ("db1", [("db1", 3306)]),
        (" db1:1 , db2 ", [("db1", 1), ("db2", 3306)]),
        ("127.0.0.1:4000,10.0.0.2", [("127.0.0.1", 4000), ("10.0.0.2", 3306)]),
        ("[::1]:3307,[fe80::1]", [("::1", 3307), ("fe80::1", 3306)]),
        ("db-1.example.org:65535", [("db-1.example.org", 65535)]),
    ],
    ids=["three", "default-port", "spaces", "ipv4", "ipv6", "dns-name"],
)
def test_a_host_list_parses_into_addresses_in_order(text, expected):
    assert parse_hosts(text) == tuple(HostPort(h, p) for h, p in expected)


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("", "''"),
        ("db1,,db2", "''"),
        ("db1:", "'db1:'"),
        ("db1:port", "'db1:port'"),
        ("db1:0", "'db1:0'"),
        ("db1:65536", "'db1:65536'"),
        ("db1:3306:1", "'db1:3306:1'"),
        ("db/1", "'db/1'"),
        ("[::1]:x", "'[::1]:x'"),
        ("db1:3306,db1:3306", "'db1:3306' is listed twice"),
        ("db1,db1:3306", "'db1:3306' is listed twice"),
    ],
    ids=[
        "empty",
        "empty-entry",
        "no-port-after-colon",
        "port-not-a-number",
        "port-zero",
        "port-too-big",
        "two-colons",
        "bad-character",
        "ipv6-bad-port",
        "duplicate",
        "duplicate-by-default-port",
    ],
)
def test_a_bad_host_list_is_a_config_error_naming_the_entry(text, entry):
    with pytest.raises(ConfigError, match="database hosts") as raised:
        parse_hosts(text)
    assert entry in str(raised.value)


def test_an_address_prints_as_host_port_with_ipv6_in_brackets():
    assert [str(a) for a in parse_hosts("db1:3307,[::1]")] == ["db1:3307", "[::1]:3306"]


# -- single servers -------------------------------------------------------------------------


async def test_a_plain_mariadb_without_wsrep_is_healthy(mysql_server: DatabaseURL):
    address = HostPort(mysql_server.host, mysql_server.port)
    health = await check_node(address, user=mysql_server.user, password=mysql_server.password)
    assert (health.healthy, health.cluster, health.detail) == (True, False, "no wsrep")


async def test_a_port_where_nothing_listens_is_unhealthy_at_once():
    began = time.monotonic()
    health = await check_node(HostPort("127.0.0.1", free_port()), user="root", timeout=2)
    assert not health.healthy
    assert health.detail == "cannot connect (MySQL error 2003)"
    assert time.monotonic() - began < 1


async def test_a_wrong_password_is_unhealthy_without_repeating_the_password(mysql_server):
    address = HostPort(mysql_server.host, mysql_server.port)
    health = await check_node(address, user=mysql_server.user, password="n0t-the-pw")
    assert not health.healthy
    assert health.detail == "MySQL error 1045"


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A port that accepts connections and never says anything (a hung server)."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_server_that_never_answers_is_unhealthy_within_the_timeout():
    async with silent_server() as port:
        began = time.monotonic()
        health = await check_node(HostPort("127.0.0.1", port), user="root", timeout=0.5)
        elapsed = time.monotonic() - began
    assert (health.healthy, health.detail) == (False, "no answer within 0.5 s")
    assert 0.5 <= elapsed < 1.5


async def test_no_healthy_host_is_storage_unavailable_naming_each_host_and_why():
    async with silent_server() as silent:
        refused = free_port()
        addresses = [HostPort("127.0.0.1", refused), HostPort("127.0.0.1", silent)]
        began = time.monotonic()
        with pytest.raises(StorageUnavailable) as raised:
            await pick_node(addresses, user="root", timeout=0.5)
        elapsed = time.monotonic() - began
    assert str(raised.value) == (
        f"no healthy database node: 127.0.0.1:{refused} cannot connect (MySQL error 2003); "
        f"127.0.0.1:{silent} no answer within 0.5 s"
    )
    assert elapsed < 1.5


async def test_the_first_healthy_host_is_picked_without_waiting_for_a_silent_later_one(
    mysql_server,
):
    healthy = HostPort(mysql_server.host, mysql_server.port)
    async with silent_server() as silent:
        began = time.monotonic()
        picked = await pick_node(
            [HostPort("127.0.0.1", free_port()), healthy, HostPort("127.0.0.1", silent)],
            user=mysql_server.user,
            password=mysql_server.password,
            timeout=3,
        )
        elapsed = time.monotonic() - began
    assert picked == healthy
    assert elapsed < 1


# -- a Galera cluster ---------------------------------------------------------------------


def node_address(galera: GaleraCluster, index: int) -> HostPort:
    node = galera.node(index)
    return HostPort(node.host, node.port)


def set_global(galera: GaleraCluster, index: int, setting: str) -> None:
    conn = galera.connect(index)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SET GLOBAL {setting}")
    finally:
        conn.close()


async def test_every_synced_node_is_healthy_and_the_first_listed_is_picked(galera):
    addresses = [node_address(galera, i) for i in (3, 1, 2)]
    health = await check_nodes(addresses, user=galera.user)
    assert [(h.healthy, h.cluster, h.detail) for h in health] == [(True, True, "synced")] * 3
    assert await pick_node(addresses, user=galera.user) == addresses[0]


async def test_a_desynced_node_is_passed_over(galera):
    addresses = [node_address(galera, i) for i in (1, 2, 3)]
    set_global(galera, 1, "wsrep_desync = ON")
    try:
        health = await check_node(addresses[0], user=galera.user)
        picked = await pick_node(addresses, user=galera.user)
    finally:
        set_global(galera, 1, "wsrep_desync = OFF")
    assert (health.healthy, health.detail) == (False, "wsrep_local_state=2 (donor/desynced)")
    assert picked == addresses[1]


async def test_a_node_cut_off_from_the_primary_component_is_passed_over(galera):
    addresses = [node_address(galera, i) for i in (1, 2, 3)]
    set_global(galera, 1, "wsrep_provider_options = 'gmcast.isolate=1'")
    try:
        deadline = time.monotonic() + 15
        while (health := await check_node(addresses[0], user=galera.user)).healthy:
            assert time.monotonic() < deadline, "node 1 never left the primary component"
            await asyncio.sleep(0.1)
        picked = await pick_node(addresses, user=galera.user)
    finally:
        set_global(galera, 1, "wsrep_provider_options = 'gmcast.isolate=0'")
    assert health.detail == "wsrep_ready=OFF"
    assert picked == addresses[1]
    # Back in the group, it serves again.
    await asyncio.to_thread(galera.wait_cluster_size, 3, 60)
    assert (await check_node(addresses[0], user=galera.user)).healthy


async def test_a_killed_node_is_passed_over_at_once(galera):
    addresses = [node_address(galera, i) for i in (1, 2, 3)]
    galera.kill(1)
    began = time.monotonic()
    picked = await pick_node(addresses, user=galera.user, timeout=2)
    assert picked == addresses[1]
    assert time.monotonic() - began < 1
