"""SQLite's disk faults, made for real: a full disk, a read-only file system, a frozen disk.

Each fault is a 503 with ``Retry-After`` (the client keeps its batch and retries), named in
the server's log once per fault per interval (not once per request, and without a
traceback), and ``/healthz`` answers 503 naming it while it lasts; the server recovers by
itself once the fault is gone.

The faults are real file systems, mounted for the test (root only; skipped elsewhere): a
tiny tmpfs that fills up, an ext4 image whose kernel error handling remounts it read-only,
and an ext4 image frozen with ``fsfreeze`` (every write blocks until it is thawed, as on a
hung disk or a storage network that stopped answering).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import assert_added, assert_error, client_body, client_record, post_logs

from bot_logging_server import create_app
from bot_logging_server.accounts import create_user
from bot_logging_server.config import build_config
from bot_logging_server.lograte import INTERVAL_SECONDS, RateLimitedLog
from bot_logging_server.storage import get_storage

pytestmark = pytest.mark.slow


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)


def _mount_or_skip(*command: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a file system for the fault needs root")
    try:
        _run(*command)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a file system for the fault here: {exc}")


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: a disk that fills up."""
    where = tmp_path / "tmpfs"
    where.mkdir()
    _mount_or_skip("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where))
    try:
        yield where
    finally:
        _run("umount", "-l", str(where))


@pytest.fixture
def ext4_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB ext4 image on a loop device, ``errors=remount-ro``; always thawed and
    unmounted at the end."""
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed")
    image, where = tmp_path / "disk.img", tmp_path / "ext4"
    where.mkdir()
    with open(image, "wb") as f:
        f.truncate(16 * 1024 * 1024)
    _run("mkfs.ext4", "-q", "-F", str(image))
    _mount_or_skip("mount", "-o", "loop,errors=remount-ro", str(image), str(where))
    try:
        yield where
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("fsfreeze", "-u", str(where))  # a failed test must never leave it frozen
        _run("umount", str(where))


@contextlib.asynccontextmanager
async def _app_on(path: Path, **settings: Any) -> AsyncIterator[tuple[Any, Any, Any]]:
    """A started app on the SQLite file `path`, a client and a user (with its token)."""
    config = build_config({"database_url": f"sqlite:///{path}", **settings}, environ={})
    app = create_app(config)
    async with app.test_app() as test_app:
        new = await create_user(get_storage(app), f"u_{uuid.uuid4().hex[:8]}")
        account = type("A", (), {"name": new.user.username, "token": new.token, "id": new.user.id})
        yield test_app, test_app.test_client(), account


def _big_batch(account: Any, records: int = 4) -> dict[str, Any]:
    return client_body(account.name, [client_record(i, msg="x" * 50_000) for i in range(records)])


def _fault_lines(caplog: pytest.LogCaptureFixture, words: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if words in r.getMessage()]


async def _healthy_within(client: Any, seconds: float) -> None:
    """``/healthz`` answers 200 within `seconds` (an answer is reused for a second)."""
    deadline = time.monotonic() + seconds
    while (await client.get("/healthz")).status_code != 200:
        assert time.monotonic() < deadline, f"/healthz not 200 within {seconds} s"
        await asyncio.sleep(0.2)


async def _expect_503(response: Any) -> None:
    await assert_error(response, 503, "ServiceUnavailable")
    assert response.headers["Retry-After"] == "1"


async def test_a_full_disk_is_503_named_once_in_the_log_and_in_healthz(tiny_tmpfs, caplog):
    caplog.set_level(logging.WARNING)
    async with _app_on(tiny_tmpfs / "logs.db") as (_, client, account):
        await assert_added(await post_logs(client, account, client_body(account.name, 2)), 2)
        # Fill the file system but for 64 KiB: a 200 KB batch no longer fits.
        filler = tiny_tmpfs / "filler"
        free = os.statvfs(tiny_tmpfs).f_bavail * os.statvfs(tiny_tmpfs).f_frsize
        filler.write_bytes(b"\0" * max(0, free - 64 * 1024))
        for _ in range(20):
            await _expect_503(await post_logs(client, account, _big_batch(account)))
        health = await client.get("/healthz")
        await _expect_503(health)
        assert "disk full" in (await health.get_json())["detail"]
        # One line for twenty failures (and the health check), naming the fault.
        lines = _fault_lines(caplog, "disk full")
        assert len(lines) == 1, [r.getMessage() for r in lines]
        assert "SQLITE_FULL" in lines[0].getMessage()
        assert not any(r.exc_info for r in caplog.records)
        assert not _fault_lines(caplog, "OperationalError")
        # Space again: the next batch is stored, and the health check is 200 again.
        filler.unlink()
        await assert_added(await post_logs(client, account, _big_batch(account)), 4)
        await _healthy_within(client, 3)
        storage = get_storage(client.app)
        assert await storage.count_logs(account.id) == 6


def _trigger_ext4_error(where: Path) -> None:
    """The kernel's own reaction to a metadata error: the file system goes read-only."""
    source = subprocess.run(
        ["findmnt", "-n", "-o", "SOURCE", str(where)], capture_output=True, text=True, check=True
    ).stdout.strip()
    trigger = Path("/sys/fs/ext4") / Path(source).name / "trigger_fs_error"
    if not trigger.exists():
        pytest.skip("this kernel cannot trigger an ext4 error (no trigger_fs_error)")
    trigger.write_text("test\n")


async def test_a_read_only_file_system_is_503_and_named(ext4_disk, caplog):
    caplog.set_level(logging.WARNING)
    async with _app_on(ext4_disk / "logs.db") as (_, client, account):
        await assert_added(await post_logs(client, account, client_body(account.name, 2)), 2)
        _trigger_ext4_error(ext4_disk)
        for _ in range(10):
            await _expect_503(await post_logs(client, account, _big_batch(account)))
        health = await client.get("/healthz")
        await _expect_503(health)
        detail = (await health.get_json())["detail"]
        assert "read-only file system" in detail, detail
        lines = _fault_lines(caplog, "read-only file system")
        assert len(lines) == 1, [r.getMessage() for r in caplog.records]
        assert not any(r.exc_info for r in caplog.records)
        # Reading still works: the read API answers what was stored.
        storage = get_storage(client.app)
        assert await storage.count_logs(account.id) == 2


async def test_a_frozen_disk_is_503_within_the_deadline_and_recovers(ext4_disk, caplog):
    caplog.set_level(logging.WARNING)
    async with _app_on(ext4_disk / "logs.db", db_timeout=1) as (_, client, account):
        await assert_added(await post_logs(client, account, client_body(account.name, 2)), 2)
        _run("fsfreeze", "-f", str(ext4_disk))
        try:
            for _ in range(3):
                started = time.monotonic()
                response = await asyncio.wait_for(
                    post_logs(client, account, client_body(account.name, 3)), 10
                )
                await _expect_503(response)
                # The token check and the write each have a 1 s deadline.
                assert time.monotonic() - started < 2.5
            # Many at once: each answered within its deadline too.
            started = time.monotonic()
            burst = [post_logs(client, account, client_body(account.name, 3)) for _ in range(10)]
            for response in await asyncio.wait_for(asyncio.gather(*burst), 10):
                await _expect_503(response)
            assert time.monotonic() - started < 2.5
            started = time.monotonic()
            health = await asyncio.wait_for(client.get("/healthz"), 10)
            await _expect_503(health)
            assert time.monotonic() - started < 2.5
            assert "deadline" in (await health.get_json())["detail"]
        finally:
            _run("fsfreeze", "-u", str(ext4_disk))
        # Thawed: the stuck statements finish, and ingest works again within seconds.
        deadline = time.monotonic() + 10
        while (await post_logs(client, account, client_body(account.name, 1))).status_code != 200:
            assert time.monotonic() < deadline, "no 200 within 10 s of the thaw"
            await asyncio.sleep(0.2)
        await _healthy_within(client, 3)
        # Named, once per kind of wait that ran out per log interval (writer, reader and their
        # lanes), not once for each of the 14 requests.
        lines = _fault_lines(caplog, "deadline")
        kinds: dict[str, list[float]] = {}
        for record in lines:
            kinds.setdefault(record.getMessage().split(" (")[0], []).append(record.created)
        # The requests' kinds (the alert service's background ticks log their own, below).
        answered = {kind for kind in kinds if kind.startswith("database unavailable")}
        assert 1 <= len(answered) <= 4, [r.getMessage() for r in caplog.records]
        for kind, times in kinds.items():
            gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
            assert all(gap >= INTERVAL_SECONDS - 0.5 for gap in gaps), (kind, gaps)
        assert not any(r.exc_info for r in caplog.records)


def test_rate_limited_log_writes_one_line_per_key_per_interval(caplog):
    caplog.set_level(logging.INFO)
    faults = RateLimitedLog(logging.getLogger("blst.test"), interval=0.2)
    written = [faults.log(logging.WARNING, "full", "fault: %s", "disk full") for _ in range(50)]
    assert written.count(True) == 1
    assert faults.log(logging.WARNING, "read-only", "fault: %s", "read-only")  # another fault
    time.sleep(0.25)
    assert faults.log(logging.WARNING, "full", "fault: %s", "disk full")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "fault: disk full"
    assert messages[1] == "fault: read-only"
    assert messages[2].startswith("fault: disk full (49 more like it in the last ")
