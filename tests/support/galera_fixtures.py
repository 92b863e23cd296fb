"""Pytest fixtures for the Galera cluster of `support.galera` (a plugin tests/conftest.py loads).

* `galera_installed` (session): when this machine cannot run a node (no MariaDB server,
  Galera provider, rsync or ``mysql`` user), fails under ``CI=true`` and skips, with the
  reason, elsewhere, as the MySQL tests do.
* `galera_cluster` (session): a 3-node cluster started once per run and always stopped.
* `galera` (per test): the same cluster, with every node restarted if needed and Synced in
  one primary component before the test.
* A report hook appends the tail of every node's error log to a failed test that used the
  cluster.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest

from support.galera import GaleraCluster, missing_prerequisites


@pytest.fixture(scope="session")
def galera_installed() -> None:
    """Fail (``CI=true``) or skip (elsewhere) when this machine cannot run a Galera node."""
    missing = missing_prerequisites()
    if missing:
        reason = f"Galera cluster unavailable: missing {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def galera_cluster(galera_installed: None) -> Iterator[GaleraCluster]:
    """A 3-node Galera cluster for the whole run; fails under ``CI=true`` when not installable."""
    cluster = GaleraCluster(size=3)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def galera(galera_cluster: GaleraCluster) -> GaleraCluster:
    """The session cluster with every node running and Synced before the test."""
    galera_cluster.heal()
    return galera_cluster


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Append the tail of every node's log to the report of a failed test on the cluster."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        cluster = next((v for v in funcargs.values() if isinstance(v, GaleraCluster)), None)
        if cluster is not None:
            report.sections.append(("galera node logs", cluster.logs()))
    return report
