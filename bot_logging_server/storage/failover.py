"""Staying on a healthy database node, and moving off one that is not.

With several hosts configured (the nodes of a Galera cluster, in order of preference), a
process talks to one node at a time: the first healthy one of the list
(`storage.hosts.pick_healthy`). Every server with the same list therefore writes through the
same node while it is healthy, so their transactions rarely meet at certification, and a
named lock (``GET_LOCK``, which is local to one node) still serialises them most of the time.

`NodeSelector` remembers that node and decides when to leave it:

* `NodeSelector.suspect` is called by the backend when a statement failed in a way that says
  the node itself is in trouble (connection refused or lost, server shutting down, no answer
  in time, wsrep not ready: the node left the primary component). It starts one re-check in
  the background, unless one is running or ran within `RECHECK_SECONDS`: the node is asked
  again, and when it is unhealthy the whole list is, and the first healthy node is chosen.
* A monitor checks every ``check_interval`` seconds: it moves off a node that became unhealthy
  while nothing failed (a donor desynced for a state transfer, a node cut off while idle),
  and back to a node listed earlier once that one is healthy again, so that servers meet on
  the same node again after a failover.

Every check is bounded by ``check_timeout``; no request ever waits for one. ``on_move`` is
called, synchronously, with the new node's `NodeHealth` when the node changes: the backend
points its pool there, and drops connections to the old node as they come back. With a
single host nothing is checked and nothing moves: the server behaves as with one database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from bot_logging_server.config.hosts import HostPort
from bot_logging_server.storage.base import StorageUnavailable
from bot_logging_server.storage.hosts import NodeHealth, check_node, check_nodes, pick_healthy

__all__ = ["CHECK_INTERVAL", "RECHECK_SECONDS", "NodeSelector"]

log = logging.getLogger(__name__)

#: Seconds between the monitor's checks.
CHECK_INTERVAL = 5.0
#: A suspicion within this many seconds of the last re-check starts none: a burst of failed
#: requests costs one re-check, not one each.
RECHECK_SECONDS = 0.5


class NodeSelector:
    """The database node this process uses, among `addresses`; see the module docstring.

    Args:
        addresses: the configured hosts, preferred first.
        user, password: the account the health checks connect with.
        on_move: called with the new node's health when the node changes.
        check_timeout: the bound of one node's health check, seconds.
        check_interval: seconds between the monitor's checks (0: no monitor).
    """

    def __init__(
        self,
        addresses: Sequence[HostPort],
        *,
        user: str,
        password: str = "",
        on_move: Callable[[NodeHealth], None] | None = None,
        check_timeout: float = 2.0,
        check_interval: float = CHECK_INTERVAL,
    ) -> None:
        """Remember the list; nothing connects before `choose`."""
        if not addresses:
            raise ValueError("at least one address")
        self.addresses = tuple(addresses)
        self._user = user
        self._password = password
        self._on_move = on_move
        self._check_timeout = check_timeout
        self._check_interval = check_interval
        #: The node in use, and whether it is a Galera node.
        self.current = NodeHealth(self.addresses[0], True, "not checked")
        #: How many times the node changed since `choose`.
        self.moves = 0
        self._recheck: asyncio.Task[None] | None = None
        self._last_recheck = float("-inf")
        self._monitor: asyncio.Task[None] | None = None

    @property
    def several(self) -> bool:
        """Whether there is more than one host to choose from."""
        return len(self.addresses) > 1

    async def choose(self) -> NodeHealth:
        """Pick the first healthy node (at start-up); raise `StorageUnavailable` when none is.

        With a single host, that host, unchecked (connecting to it will tell).
        """
        if self.several:
            self.current = await self._pick()
            log.info("database node %s (%s)", self.current.address, self.current.detail)
        return self.current

    def start_monitor(self) -> None:
        """Start the periodic check (several hosts and a positive interval only)."""
        if self.several and self._check_interval > 0 and self._monitor is None:
            self._monitor = asyncio.ensure_future(self._watch())

    def suspect(self) -> None:
        """The current node may be in trouble: re-check it soon, in the background."""
        if not self.several or (self._recheck is not None and not self._recheck.done()):
            return
        if time.monotonic() - self._last_recheck < RECHECK_SECONDS:
            return
        self._last_recheck = time.monotonic()
        self._recheck = asyncio.ensure_future(self._guarded(self.recheck()))

    async def recheck(self) -> None:
        """Ask the current node; when it is unhealthy, move to the first healthy node."""
        address = self.current.address
        health = await check_node(
            address, user=self._user, password=self._password, timeout=self._check_timeout
        )
        if health.healthy:
            return
        log.warning("database node %s is unhealthy: %s", address, health.detail)
        self._move(await self._pick())

    async def check_preferred(self) -> None:
        """The monitor's check: move back to an earlier listed node that is healthy again,
        or off the current node when it is unhealthy."""
        position = self.addresses.index(self.current.address)
        healths = await check_nodes(
            self.addresses[: position + 1],
            user=self._user,
            password=self._password,
            timeout=self._check_timeout,
        )
        first = next((h for h in healths if h.healthy), None)
        if first is None:
            log.warning(
                "database node %s is unhealthy: %s", healths[-1].address, healths[-1].detail
            )
            first = await self._pick()
        self._move(first)

    async def close(self) -> None:
        """Stop the monitor and any re-check."""
        tasks = [t for t in (self._monitor, self._recheck) if t is not None]
        self._monitor = self._recheck = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- internals -----------------------------------------------------------------------

    async def _pick(self) -> NodeHealth:
        return await pick_healthy(
            self.addresses, user=self._user, password=self._password, timeout=self._check_timeout
        )

    def _move(self, health: NodeHealth) -> None:
        if health.address == self.current.address:
            self.current = health
            return
        log.warning("database: moving from node %s to %s", self.current.address, health.address)
        self.current = health
        self.moves += 1
        if self._on_move is not None:
            self._on_move(health)

    @staticmethod
    async def _guarded(check: Awaitable[None]) -> None:
        """Run one check; one that finds no healthy node leaves things as they are."""
        try:
            await check
        except StorageUnavailable as exc:
            log.warning("database: %s", exc)
        except Exception:
            log.exception("database: the node check failed")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._check_interval)
            # A re-check in flight already does the work.
            if self._recheck is None or self._recheck.done():
                await self._guarded(self.check_preferred())
