"""One node of the test Galera cluster of `support.galera`: its files, command line and process.

The pieces that concern a single ``mariadbd``, independent of the cluster around it: the
paths and binaries (`MARIADBD`, `INSTALL_DB`, `PROVIDER`) and `missing_prerequisites`; the
shortened failure detection (`FAILURE_DETECTION`); `GaleraNode` (ports, datadir, error log,
process) and `NodeStatus` (what a node says about itself); the seed datadir
(`install_seed`), its ownership (`chown_tree`), the node's command line (`node_command`),
its start (`start_process`), ``--wsrep-recover`` (`recover_position`) and signals to its
process group (`signal_group`). `GaleraError` is raised by all of them and by the cluster.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "mariadb-install-db"
PROVIDER = "/usr/lib/galera/libgalera_smm.so"
#: wsrep_local_state of a node that serves reads and writes.
SYNCED = 4
#: Galera failure detection for tests: a silent peer is suspected after 2 s (default 5 s) and
#: declared dead after 4 s (default 15 s); keepalives every 0.5 s (under a third of the
#: suspect timeout) so a live but idle peer is never suspected.
FAILURE_DETECTION = {
    "evs.keepalive_period": "PT0.5S",
    "evs.inactive_check_period": "PT0.5S",
    "evs.suspect_timeout": "PT2S",
    "evs.inactive_timeout": "PT4S",
    "evs.install_timeout": "PT4S",
}


class GaleraError(RuntimeError):
    """The cluster did not reach the expected state in time; the message has the node logs."""


def accepts(path: Path) -> bool:
    """Whether a Unix socket at `path` accepts connections."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run the cluster (empty when everything is there)."""
    missing = [path for path in (MARIADBD, PROVIDER) if not os.path.exists(path)]
    missing += [tool for tool in (INSTALL_DB, "rsync") if shutil.which(tool) is None]
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("mysql")
        except KeyError:
            missing.append("the user mysql (needed to run mariadbd as root)")
    return missing


@dataclass
class GaleraNode:
    """One node: its ports, files and process. `host`/`port` is where clients connect."""

    index: int
    directory: Path
    port: int
    group_port: int
    ist_port: int
    sst_port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def datadir(self) -> Path:
        """The node's datadir."""
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        """The node's error log (every start appends to it)."""
        return self.directory / "error.log"

    @property
    def running(self) -> bool:
        """Whether the node's process is alive."""
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        """The whole error log of the node ('' before its first start)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@dataclass
class NodeStatus:
    """What a node says about itself (``SHOW GLOBAL STATUS LIKE 'wsrep_%'``)."""

    ready: bool
    local_state: int
    cluster_status: str
    cluster_size: int

    @property
    def synced(self) -> bool:
        """Ready, Synced and in the primary component."""
        return self.ready and self.local_state == SYNCED and self.cluster_status == "Primary"


def install_seed(seed: Path, run_as: str | None) -> None:
    """Create one fresh datadir at `seed` with ``mariadb-install-db`` (owned by `run_as`)."""
    install = [
        INSTALL_DB,
        "--no-defaults",
        f"--datadir={seed}",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        "--innodb-log-file-size=16M",
    ]
    if run_as:
        install.append(f"--user={run_as}")
    done = subprocess.run(install, capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")[-3000:]
        raise GaleraError(f"mariadb-install-db failed ({done.returncode}):\n{output}")


def chown_tree(top: Path, run_as: str | None) -> None:
    """Give `top` and everything under it to user `run_as` (nothing when it is None)."""
    if not run_as:
        return
    entry = pwd.getpwnam(run_as)
    for directory, _dirs, files in os.walk(top):
        os.chown(directory, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(directory, name), entry.pw_uid, entry.pw_gid)


def node_command(
    node: GaleraNode,
    nodes: Sequence[GaleraNode],
    cluster_name: str,
    run_as: str | None,
    bootstrap: bool,
) -> list[str]:
    """The ``mariadbd`` command line of `node` in a cluster of `nodes` named `cluster_name`."""
    peers = ",".join(f"127.0.0.1:{n.group_port}" for n in nodes)
    provider_options = {
        "gmcast.listen_addr": f"tcp://127.0.0.1:{node.group_port}",
        "ist.recv_addr": f"127.0.0.1:{node.ist_port}",
        "gcache.size": "64M",
        **FAILURE_DETECTION,
    }
    command = [
        MARIADBD,
        "--no-defaults",
        f"--datadir={node.datadir}",
        f"--socket={node.directory / 'mysqld.sock'}",
        f"--pid-file={node.directory / 'mysqld.pid'}",
        f"--log-error={node.log_path}",
        "--bind-address=127.0.0.1",
        f"--port={node.port}",
        "--skip-name-resolve",
        "--innodb-buffer-pool-size=64M",
        "--innodb-log-file-size=16M",
        "--max-connections=300",
        "--wsrep-on=ON",
        f"--wsrep-provider={PROVIDER}",
        "--binlog-format=ROW",
        "--default-storage-engine=InnoDB",
        "--innodb-autoinc-lock-mode=2",
        f"--wsrep-cluster-name={cluster_name}",
        f"--wsrep-cluster-address=gcomm://{peers}",
        f"--wsrep-node-name=node{node.index}",
        f"--wsrep-node-address=127.0.0.1:{node.group_port}",
        f"--wsrep-node-incoming-address=127.0.0.1:{node.port}",
        "--wsrep-provider-options=" + ";".join(f"{k}={v}" for k, v in provider_options.items()),
        "--wsrep-sst-method=rsync",
        f"--wsrep-sst-receive-address=127.0.0.1:{node.sst_port}",
    ]
    if run_as:
        command.insert(2, f"--user={run_as}")
    if bootstrap:
        command.append("--wsrep-new-cluster")
    return command


def recover_position(node: GaleraNode, command: list[str], timeout: float) -> str | None:
    """``uuid:seqno`` the node's InnoDB last committed, or None (unknown: SST needed).

    `command` is the node's (non-bootstrap) `node_command`; it is run with
    ``--wsrep-recover`` and its own log, which is then appended to the node's error log.
    """
    log = node.directory / "recover.log"
    log.unlink(missing_ok=True)
    command = [arg for arg in command if "--log-error" not in arg]
    command += [f"--log-error={log}", "--wsrep-recover"]
    try:
        subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise GaleraError(f"node {node.index}: --wsrep-recover took over {timeout} s") from exc
    text = log.read_text(errors="replace") if log.exists() else ""
    with node.log_path.open("a") as out:
        out.write(text)
    found = re.findall(r"WSREP: Recovered position: (\S+:-?\d+)", text)
    if not found or found[-1].endswith(":-1"):
        return None
    return found[-1]


def start_process(node: GaleraNode, command: list[str]) -> subprocess.Popen[bytes]:
    """Start `command` as `node`'s process (``node.process``) and return it."""
    # A session of its own: the process group holds mariadbd and its SST helpers
    # (wsrep_sst_rsync, rsync), so one killpg ends all of them.
    node.process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return node.process


def signal_group(node: GaleraNode, signum: int) -> None:
    """Send `signum` to the process group of `node`'s process (if it has one)."""
    if node.process is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(node.process.pid, signum)
