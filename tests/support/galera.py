"""A real MariaDB Galera cluster on loopback for the tests: three ``mariadbd`` processes.

`GaleraCluster` builds the cluster in a fresh directory under ``/tmp``: one
``mariadb-install-db`` datadir copied to every node, node 1 bootstrapped with
``--wsrep-new-cluster``, the others joining by rsync state transfer (SST). Every port is a
free one picked at start (never 3306: the MariaDB of this machine is left alone). Each node
runs as user ``mysql`` when the tests run as root (rsync SST fails as root in a root-owned
directory), as the current user otherwise. Failure detection is shortened for tests
(`FAILURE_DETECTION`), so a killed node leaves the primary component in about two seconds.

`root@127.0.0.1` with an empty password reaches every node over TCP. Every wait is bounded
and raises `GaleraError` with the tail of each node's error log; `stop()` always kills every
process the cluster started (by process group id) and checks that none is left.

If the test process itself dies (``kill -9``, a CI timeout), a small reaper process that
watches it (`galera_reaper`) kills the nodes and removes the directory. The pytest fixtures
are in `support.galera_fixtures`; a single node (its files, command line, process and
status) is `support.galera_node`, whose names are re-exported here.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pymysql

from support.galera_node import (
    FAILURE_DETECTION,
    INSTALL_DB,
    MARIADBD,
    PROVIDER,
    SYNCED,
    GaleraError,
    GaleraNode,
    NodeStatus,
    accepts,
    chown_tree,
    install_seed,
    missing_prerequisites,
    node_command,
    recover_position,
    signal_group,
    start_process,
)
from support.process import free_ports

__all__ = [
    "FAILURE_DETECTION",
    "INSTALL_DB",
    "MARIADBD",
    "PROVIDER",
    "REAPER",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "SYNCED",
    "GaleraCluster",
    "GaleraError",
    "GaleraNode",
    "NodeStatus",
    "missing_prerequisites",
]

START_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
REAPER = Path(__file__).with_name("galera_reaper.py")


class GaleraCluster:
    """A Galera cluster of `size` nodes on 127.0.0.1; nodes are numbered from 1.

    `start()` builds it and returns when every node is Synced; `kill(i)` is ``kill -9``;
    `restart(i)` starts a stopped or killed node again (it rejoins by IST or SST);
    `stop()` ends every process and removes the directory (idempotent). Also a context
    manager that stops on exit.
    """

    def __init__(self, size: int = 3, name: str = "blst_test", user: str = "root") -> None:
        self.size = size
        self.name = name
        self.user = user
        self.base: Path | None = None
        self.nodes: list[GaleraNode] = []
        self.start_seconds = 0.0
        self._reaper: subprocess.Popen[bytes] | None = None
        self._run_as = "mysql" if os.geteuid() == 0 else None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> GaleraCluster:
        """Create, bootstrap and join every node; wait until all are Synced.

        Raises `GaleraError` (with the logs) and stops whatever started when it fails.
        """
        began = time.monotonic()
        try:
            self._prepare()
            deadline = began + timeout
            first, *joiners = self.nodes
            self._spawn(first, bootstrap=True)
            self._create_tcp_user(first, deadline)
            self.wait_synced(first.index, timeout=max(1.0, deadline - time.monotonic()))
            # One joiner at a time: joining together saves ~1.5 s but, with the short
            # failure detection, once made the donor drop out of the primary component.
            for node in joiners:
                self._spawn(node, bootstrap=False)
                self.wait_synced(node.index, timeout=max(1.0, deadline - time.monotonic()))
            self.wait_cluster_size(self.size, timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """End every node (SIGTERM, then SIGKILL after a bound), then remove the directory.

        Raises `GaleraError` when a process that carries the cluster's directory in its
        command line is still alive afterwards (it is killed by pid first).
        """
        for node in self.nodes:
            if node.running:
                self._signal(node, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for node in self.nodes:
            self._reap(node, deadline)
        if self._reaper is not None:
            self._tell_reaper("done")
            with contextlib.suppress(OSError):
                self._reaper.stdin.close()  # type: ignore[union-attr]
            self._reaper.wait(timeout=10)
            self._reaper = None
        leftovers = self._leftover_pids()
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.base is not None and os.environ.get("GALERA_KEEP") != "1":
            shutil.rmtree(self.base, ignore_errors=True)
        if leftovers:
            raise GaleraError(f"processes left behind by the cluster (killed): {leftovers}")

    def __enter__(self) -> GaleraCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults --------------------------------------------------------------------------

    def kill(self, index: int) -> None:
        """``kill -9`` node `index` (and its state-transfer helpers); return once it is gone."""
        node = self.node(index)
        self._signal(node, signal.SIGKILL)
        self._reap(node, time.monotonic() + 10)

    def restart(self, index: int, timeout: float = START_TIMEOUT, recover: bool = True) -> float:
        """Start node `index` again and wait until it is Synced; return the seconds it took.

        With `recover` (what the service scripts do) the node's last committed position is
        first read from its storage engine (``--wsrep-recover``) and passed as
        ``--wsrep-start-position``, so a node killed with ``kill -9`` can catch up by IST
        (only the missed write sets, from a peer's gcache); without it, or when no position
        is found, the node gets a full rsync SST.
        """
        node = self.node(index)
        if node.running:
            raise GaleraError(f"node {index} is still running")
        began = time.monotonic()
        position = self._recover_position(node, timeout) if recover else None
        self._spawn(node, bootstrap=False, start_position=position)
        self.wait_synced(index, timeout=max(1.0, began + timeout - time.monotonic()))
        return time.monotonic() - began

    # -- access and waits ----------------------------------------------------------------

    def node(self, index: int) -> GaleraNode:
        """Node `index` (1-based)."""
        if not 1 <= index <= len(self.nodes):
            raise IndexError(f"no node {index} in a cluster of {len(self.nodes)}")
        return self.nodes[index - 1]

    def addresses(self) -> list[tuple[str, int]]:
        """Every node's client ``(host, port)``, in node order."""
        return [(node.host, node.port) for node in self.nodes]

    def connect(self, index: int, database: str | None = None, **kwargs: Any) -> Any:
        """A pymysql connection to node `index` (autocommit, every timeout bounded)."""
        node = self.node(index)
        options: dict[str, Any] = {
            "connect_timeout": 3,
            "read_timeout": 15,
            "write_timeout": 15,
            "autocommit": True,
        }
        options.update(kwargs)
        return pymysql.connect(
            host=node.host, port=node.port, user=self.user, database=database, **options
        )

    def status(self, index: int) -> NodeStatus:
        """The wsrep status of node `index` (raises pymysql errors when it does not answer)."""
        conn = self.connect(index, read_timeout=5, write_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep\\_%%'")
                values = dict(cur.fetchall())
        finally:
            conn.close()
        return NodeStatus(
            ready=values.get("wsrep_ready") == "ON",
            local_state=int(values.get("wsrep_local_state") or 0),
            cluster_status=values.get("wsrep_cluster_status", ""),
            cluster_size=int(values.get("wsrep_cluster_size") or 0),
        )

    def wait_synced(self, index: int, timeout: float = 60.0) -> NodeStatus:
        """Wait until node `index` is ready, Synced and Primary; `GaleraError` after `timeout`."""
        node = self.node(index)
        deadline = time.monotonic() + timeout
        last: object = "no answer yet"
        while time.monotonic() < deadline:
            if not node.running:
                raise GaleraError(f"node {index} exited while starting\n{self.logs()}")
            try:
                status = self.status(index)
            except pymysql.err.MySQLError as exc:
                last = exc
            else:
                if status.synced:
                    return status
                last = status
            time.sleep(0.1)
        raise GaleraError(f"node {index} not Synced after {timeout:.0f} s ({last})\n{self.logs()}")

    def wait_cluster_size(self, size: int, timeout: float = 30.0) -> None:
        """Wait until every running node is Synced in a primary component of `size` nodes."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                statuses = [self.status(node.index) for node in self.nodes if node.running]
            except pymysql.err.MySQLError as exc:
                last = exc
            else:
                if all(s.synced and s.cluster_size == size for s in statuses):
                    return
                last = statuses
            time.sleep(0.1)
        raise GaleraError(f"cluster size not {size} after {timeout:.0f} s ({last})\n{self.logs()}")

    def heal(self, timeout: float = START_TIMEOUT) -> None:
        """Restart every node that is down and wait until all are Synced in one component."""
        for node in self.nodes:
            if not node.running:
                self.restart(node.index, timeout=timeout)
        self.wait_cluster_size(self.size, timeout=timeout)

    def logs(self, lines: int = 40) -> str:
        """The last `lines` lines of every node's error log, one section per node."""
        parts = []
        for node in self.nodes:
            tail = "\n".join(node.log().splitlines()[-lines:])
            state = "running" if node.running else "down"
            parts.append(f"--- node {node.index} ({state}, port {node.port}) ---\n{tail}")
        return "\n".join(parts)

    def last_state_transfer(self, index: int) -> str | None:
        """How node `index` last received state: ``"IST"``, ``"SST"`` or None (bootstrapped).

        Read from the joiner side of the rsync script's log lines.
        """
        found = re.findall(r"rsync (IST|SST) completed on joiner", self.node(index).log())
        return found[-1] if found else None

    # -- internals -----------------------------------------------------------------------

    def _prepare(self) -> None:
        """Make the directory, pick the ports, install one datadir and copy it to each node."""
        self.base = Path(tempfile.mkdtemp(prefix="blst-galera-", dir="/tmp"))
        self._reaper = subprocess.Popen(
            [sys.executable, str(REAPER), str(self.base)],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )
        ports = free_ports(4 * self.size)
        for i in range(self.size):
            directory = self.base / f"node{i + 1}"
            directory.mkdir()
            self.nodes.append(GaleraNode(i + 1, directory, *ports[4 * i : 4 * i + 4]))
        seed = self.base / "seed"
        chown_tree(self.base, self._run_as)
        install_seed(seed, self._run_as)
        for node in self.nodes:
            shutil.copytree(seed, node.datadir, symlinks=True)
        shutil.rmtree(seed)
        chown_tree(self.base, self._run_as)

    def _create_tcp_user(self, node: GaleraNode, deadline: float) -> None:
        """Create `self.user`@127.0.0.1 (no password) through the bootstrap node's socket.

        Replicated to the joiners by their state transfer.
        """
        last: object = "no answer yet"
        while time.monotonic() < deadline:
            if not node.running:
                raise GaleraError(f"node {node.index} exited while starting\n{self.logs()}")
            if not accepts(node.directory / "mysqld.sock"):
                # Probed first: pymysql leaks its socket when a Unix-socket connect fails.
                time.sleep(0.1)
                continue
            try:
                conn = pymysql.connect(
                    unix_socket=str(node.directory / "mysqld.sock"),
                    user="root",
                    connect_timeout=3,
                    read_timeout=15,
                    autocommit=True,
                )
                try:
                    with conn.cursor() as cur:
                        cur.execute(f"CREATE USER IF NOT EXISTS `{self.user}`@'127.0.0.1'")
                        cur.execute(
                            f"GRANT ALL PRIVILEGES ON *.* TO `{self.user}`@'127.0.0.1' "
                            "WITH GRANT OPTION"
                        )
                finally:
                    conn.close()
            except pymysql.err.MySQLError as exc:
                # Refused until the socket exists, 1047 until wsrep is ready.
                last = exc
                time.sleep(0.1)
            else:
                return
        raise GaleraError(f"node {node.index} socket never answered ({last})\n{self.logs()}")

    def _command(self, node: GaleraNode, bootstrap: bool) -> list[str]:
        return node_command(node, self.nodes, self.name, self._run_as, bootstrap)

    def _recover_position(self, node: GaleraNode, timeout: float) -> str | None:
        """``uuid:seqno`` the node's InnoDB last committed, or None (unknown: SST needed)."""
        return recover_position(node, self._command(node, bootstrap=False), timeout)

    def _spawn(self, node: GaleraNode, bootstrap: bool, start_position: str | None = None) -> None:
        command = self._command(node, bootstrap)
        if start_position:
            command.append(f"--wsrep-start-position={start_position}")
        process = start_process(node, command)
        self._tell_reaper(str(process.pid))

    @staticmethod
    def _signal(node: GaleraNode, signum: int) -> None:
        signal_group(node, signum)

    def _reap(self, node: GaleraNode, deadline: float) -> None:
        """Wait for the node's process until `deadline`, SIGKILL it after; always reaped."""
        if node.process is None:
            return
        try:
            node.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._signal(node, signal.SIGKILL)
            node.process.wait(timeout=10)
        # Helpers of the group that outlived mariadbd (an rsync of an interrupted SST).
        self._signal(node, signal.SIGKILL)
        self._tell_reaper(f"-{node.process.pid}")
        node.process = None

    def _tell_reaper(self, word: str) -> None:
        if self._reaper is None or self._reaper.stdin is None:
            return
        with contextlib.suppress(OSError):
            self._reaper.stdin.write(f"{word}\n".encode())
            self._reaper.stdin.flush()

    def _leftover_pids(self) -> list[int]:
        """Pids of live processes whose command line mentions the cluster's directory."""
        if self.base is None:
            return []
        found = subprocess.run(
            ["pgrep", "-f", str(self.base)], capture_output=True, text=True, timeout=10, check=False
        )
        return [int(pid) for pid in found.stdout.split()]
