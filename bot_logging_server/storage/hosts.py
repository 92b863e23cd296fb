"""Several database hosts: find the nodes that can serve right now.

A MariaDB Galera cluster takes reads and writes on every node, but a node serves correctly
only while it is in the primary component and *Synced*: a node that is joining, donating a
state transfer (desynced) or cut off from the majority answers connections yet either
refuses statements or serves stale data. `check_node` asks one node, within a bound, and
`pick_node` returns the first healthy node of the configured list, so that every server
with the same list writes through the same node while it is healthy (writes through one
node never conflict at certification) and moves to the next one when it is not.

A plain MariaDB or MySQL server (no wsrep) counts as healthy whenever it answers. The list
itself is configuration (`bot_logging_server.config.hosts`, re-exported here); staying on a
node and moving off it is `storage.failover`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import aiomysql
import pymysql

# The host list is configuration; re-exported here, where the nodes are checked.
from bot_logging_server.config.hosts import DEFAULT_PORT, HostPort, parse_hosts
from bot_logging_server.storage.base import StorageUnavailable

__all__ = [
    "DEFAULT_PORT",
    "HostPort",
    "NodeHealth",
    "check_node",
    "check_nodes",
    "parse_hosts",
    "pick_healthy",
    "pick_node",
]

#: ``wsrep_local_state`` values (Galera's node states); only Synced serves.
WSREP_STATES = {1: "joining", 2: "donor/desynced", 3: "joined", 4: "synced"}
SYNCED = 4

#: Connection refused, unknown host, lost during the handshake.
_CANNOT_CONNECT = {2002, 2003, 2005, 2013}
_HEALTH_QUERIES = (
    "SHOW GLOBAL VARIABLES LIKE 'wsrep\\_on'",
    "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state')",
)


@dataclass(frozen=True)
class NodeHealth:
    """What one node said, or why it said nothing.

    Attributes:
        address: the node asked.
        healthy: whether it can serve reads and writes now.
        detail: why, for logs and errors: ``synced``, ``no wsrep``, ``wsrep_ready=OFF``,
            ``wsrep_local_state=2 (donor/desynced)``, ``cannot connect (MySQL error 2003)``,
            ``MySQL error 1045``, ``no answer within 2 s``.
        cluster: whether the node runs wsrep (is a Galera node).
    """

    address: HostPort
    healthy: bool
    detail: str
    cluster: bool = False


async def check_node(
    address: HostPort, *, user: str, password: str = "", timeout: float = 2.0
) -> NodeHealth:
    """Connect to `address` and read its wsrep state; never takes longer than `timeout`.

    Healthy: a server without wsrep (``wsrep_on`` OFF or absent) that answers, or a Galera
    node with ``wsrep_ready`` ON (it is in the primary component) and ``wsrep_local_state``
    4 (Synced). Never raises for the node's sake: an unreachable, refusing or silent node
    is unhealthy, with the reason (never a password) in `detail`.
    """
    conn: aiomysql.Connection | None = None
    try:
        async with asyncio.timeout(timeout):
            conn = await aiomysql.connect(
                host=address.host,
                port=address.port,
                user=user,
                password=password,
                connect_timeout=timeout,
                autocommit=True,
            )
            async with conn.cursor() as cur:
                await cur.execute(_HEALTH_QUERIES[0])
                wsrep_on = dict(await cur.fetchall()).get("wsrep_on", "OFF")
                if wsrep_on.upper() != "ON":
                    await conn.ensure_closed()
                    return NodeHealth(address, True, "no wsrep")
                await cur.execute(_HEALTH_QUERIES[1])
                status = dict(await cur.fetchall())
            # A polite goodbye: a dropped connection is logged by the server as aborted.
            await conn.ensure_closed()
    except TimeoutError:
        return NodeHealth(address, False, f"no answer within {timeout:g} s")
    except (pymysql.err.MySQLError, OSError) as exc:
        return NodeHealth(address, False, _failure(exc))
    finally:
        if conn is not None:
            conn.close()
    return _judge(address, status)


def _failure(exc: BaseException) -> str:
    """Why a connection failed, without the driver's message (it may name the user)."""
    code = exc.args[0] if isinstance(exc, pymysql.err.MySQLError) and exc.args else None
    if not isinstance(code, int):
        return f"cannot connect ({type(exc).__name__})"
    if code in _CANNOT_CONNECT:
        return f"cannot connect (MySQL error {code})"
    return f"MySQL error {code}"


def _judge(address: HostPort, status: dict[str, str]) -> NodeHealth:
    """A Galera node's health from its ``wsrep_*`` status values."""
    if status.get("wsrep_ready", "OFF").upper() != "ON":
        return NodeHealth(address, False, "wsrep_ready=OFF", cluster=True)
    text = status.get("wsrep_local_state", "")
    state = int(text) if text.isdigit() else 0
    if state != SYNCED:
        name = WSREP_STATES.get(state, "unknown")
        return NodeHealth(address, False, f"wsrep_local_state={state} ({name})", cluster=True)
    return NodeHealth(address, True, "synced", cluster=True)


async def check_nodes(
    addresses: Sequence[HostPort], *, user: str, password: str = "", timeout: float = 2.0
) -> list[NodeHealth]:
    """`check_node` on every address at once; results in the order of `addresses`."""
    return list(
        await asyncio.gather(
            *(check_node(a, user=user, password=password, timeout=timeout) for a in addresses)
        )
    )


async def pick_node(
    addresses: Sequence[HostPort], *, user: str, password: str = "", timeout: float = 2.0
) -> HostPort:
    """The first healthy node of `addresses`, in their order; asks all of them at once.

    Returns as soon as every node listed before a healthy one is known to be unhealthy
    (the checks still running are cancelled), so at most about `timeout`. Raises
    `StorageUnavailable`, naming every node and why it was passed over, when none is healthy.
    """
    found = await pick_healthy(addresses, user=user, password=password, timeout=timeout)
    return found.address


async def pick_healthy(
    addresses: Sequence[HostPort], *, user: str, password: str = "", timeout: float = 2.0
) -> NodeHealth:
    """`pick_node`, returning the chosen node's `NodeHealth` (whether it is a Galera node)."""
    if not addresses:
        raise StorageUnavailable("no database host configured")
    tasks = [
        asyncio.ensure_future(check_node(a, user=user, password=password, timeout=timeout))
        for a in addresses
    ]
    try:
        passed_over = []
        for task in tasks:
            node = await task
            if node.healthy:
                return node
            passed_over.append(f"{node.address} {node.detail}")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    raise StorageUnavailable(f"no healthy database node: {'; '.join(passed_over)}")
