"""Worker processes: how many, how they stop, and what their environment holds.

* ``--workers auto`` (or ``LOGGER_WORKERS=auto``) starts one worker per CPU core.
* ``--http-server uvicorn --workers 2`` stops on SIGTERM (to the parent, or to the whole
  process group as systemd does) and exits 0.
* Workers get the API key and the database password without them ever being in their
  environment: ``/proc/<worker>/environ`` holds neither, whether the secrets were given as
  flags or as ``LOGGER_*`` variables, and the workers still use them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import orjson
import pytest
from support import ServerProcess, add_user, batch_body, client_headers, http

from bot_logging_server.config import ConfigError, build_config
from bot_logging_server.config.settings import cpu_cores

pytestmark = pytest.mark.slow


def workers_of(parent: int) -> list[int]:
    """The worker processes of `parent` (multiprocessing children, not its resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


async def _wait_for_workers(parent: int, count: int, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(found := workers_of(parent)) != count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return found


@pytest.mark.parametrize("given", [{"workers": "auto"}, {"workers": "AUTO"}])
def test_auto_workers_is_one_per_cpu_core(given):
    assert build_config(given, {}).workers == cpu_cores() == len(os.sched_getaffinity(0))
    assert build_config({}, {"LOGGER_WORKERS": "auto"}).workers == cpu_cores()


def test_a_word_other_than_auto_is_refused_naming_auto():
    with pytest.raises(ConfigError, match="'lots' is not a number or 'auto'"):
        build_config({"workers": "lots"}, {})


async def test_workers_auto_starts_one_worker_per_core(tmp_path):
    url = f"sqlite:///{tmp_path / 'auto.db'}"
    with ServerProcess(url, tmp_path, "--workers", "auto") as server:
        await server.wait_ready(timeout=60)
        assert server.proc is not None
        workers = await _wait_for_workers(server.proc.pid, cpu_cores())
        output = server.output()
    assert len(workers) == cpu_cores(), output[-2000:]
    assert f"with {cpu_cores()} workers" in output


@pytest.mark.parametrize("signal_to", ["parent", "group"])
async def test_uvicorn_workers_stop_on_sigterm_and_exit_0(tmp_path, signal_to):
    pytest.importorskip("uvicorn")
    url = f"sqlite:///{tmp_path / 'uv.db'}"
    with ServerProcess(url, tmp_path, "--http-server", "uvicorn", "--workers", "2") as server:
        await server.wait_ready(timeout=60)
        assert server.proc is not None
        workers = await _wait_for_workers(server.proc.pid, 2)
        assert len(workers) == 2
        user = await add_user(url)
        ok = await http(server.port, "POST", "//send_logs", batch_body(user.name, "w", 3),
                        client_headers(user.token))  # fmt: skip
        assert ok.status == 200
        started = time.monotonic()
        if signal_to == "parent":
            server.proc.send_signal(signal.SIGTERM)
        else:
            server.signal(signal.SIGTERM)
        code = await server.wait_exit(timeout=20)
        took = time.monotonic() - started
        left = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
        output = server.output()
    print(f"\nuvicorn --workers 2, SIGTERM to the {signal_to}: exit {code} after {took:.1f} s")
    assert code == 0, output[-2000:]
    assert not left, f"workers still running: {left}"
    assert took < 15


def _environ(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


@pytest.mark.parametrize("http_server", ["hypercorn", "uvicorn"])
@pytest.mark.parametrize("key_from", ["flag", "environment"])
async def test_worker_environments_hold_no_secret(
    tmp_path,
    mysql_account,
    http_server,
    key_from,
):
    if http_server == "uvicorn":
        pytest.importorskip("uvicorn")
    name, password, database = mysql_account
    api_key = "key-" + os.urandom(8).hex()
    flags = ["--user", name, "--password", password, "--db-name", database, "--workers", "2"]
    flags += ["--http-server", http_server]
    env = {}
    if key_from == "flag":
        flags += ["--api-key", api_key]
    else:
        env["LOGGER_API_KEY"] = api_key
    with ServerProcess("", tmp_path, *flags, env=env) as server:
        await server.wait_ready(timeout=60)
        assert server.proc is not None
        workers = await _wait_for_workers(server.proc.pid, 2)
        assert len(workers) == 2
        environs = {pid: _environ(pid) for pid in workers}
        # The workers do have both secrets: users are created with the key and stored
        # through the password-protected account, on whichever worker answers.
        created = []
        for i in range(6):
            body = orjson.dumps({"user": f"env_{key_from}_{i}", "password": "pw"})
            reply = await http(server.port, "POST", "/create_user", body, {"X-Api-Key": api_key})
            created.append(reply.status)
    assert created == [200] * 6, created
    for pid, environ in environs.items():
        assert password.encode() not in environ, f"worker {pid} has the database password"
        assert api_key.encode() not in environ, f"worker {pid} has the API key"
        assert b"BOT_LOGGING_SERVER_FLAGS" not in environ
