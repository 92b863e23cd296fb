"""Kill a test Galera cluster's nodes if the test process that owns them dies.

Run by `galera.GaleraCluster` as ``python galera_reaper.py CLUSTER_DIR`` with a pipe on
stdin. It reads one process group id per line (``-ID`` withdraws one) until the line
``done``. At end of input without ``done`` (the owner died: ``kill -9``, a CI timeout), it
sends SIGKILL to every group still listed and removes ``CLUSTER_DIR``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys


def main(directory: str) -> None:
    """Follow the owner's list of process groups; clean up if it ends without ``done``."""
    groups: set[int] = set()
    for line in sys.stdin:
        word = line.strip()
        if word == "done":
            return
        if word.startswith("-"):
            groups.discard(int(word[1:]))
        elif word:
            groups.add(int(word))
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1])
