"""Prometheus metrics: ``--metrics-port`` serves ``/metrics`` on a listener of its own.

After real traffic the scraped numbers equal what was sent: requests by route and status,
records and batch sizes, latency counts, group-commit sizes. With ``--workers 2`` the parent's
listener sums both workers, and the private multiprocess directory is gone after exit.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import (
    ServerProcess,
    add_user,
    batch_body,
    client_body,
    client_headers,
    free_port,
    http,
    post_logs,
)

from bot_logging_server.metrics import MULTIPROC_ENV, count_alert_delivery


def scrape_text(port: int, path: str = "/metrics") -> str:
    """GET the metrics listener (blocking; run it in a thread)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        return answer.read().decode()


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of every sample the listener serves."""
    text = await asyncio.to_thread(scrape_text, port)
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    """One sample's value; 0 when the listener does not have it (never counted)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_scraped_numbers_equal_the_traffic_sent(make_app, make_user):
    port = free_port()
    async with make_app(metrics_port=port) as app:
        client = app.test_client()
        account = await make_user()
        # Every spelling of the receiver's path is one route.
        for size, path in ((1, "//send_logs"), (5, "/send_logs/"), (10, "/send_logs")):
            response = await post_logs(client, account, client_body(account.name, size), path)
            assert response.status_code == 200
        refused = await post_logs(client, account, token="0" * 32)
        assert refused.status_code == 403
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200
        samples = await scrape(port)

    send = {"route": "/send_logs", "method": "POST"}
    assert value(samples, "bot_logging_http_requests_total", **send, status="200") == 3
    assert value(samples, "bot_logging_http_requests_total", **send, status="403") == 1
    requests = "bot_logging_http_requests_total"
    assert value(samples, requests, route="unmatched", method="GET", status="404") == 1
    assert value(samples, requests, route="/healthz", method="GET", status="200") == 1
    assert value(samples, "bot_logging_http_request_duration_seconds_count", **send) == 4
    assert value(samples, "bot_logging_http_request_duration_seconds_sum", **send) > 0
    assert value(samples, "bot_logging_records_ingested_total") == 16
    assert value(samples, "bot_logging_batch_records_count") == 3
    assert value(samples, "bot_logging_batch_records_sum") == 16
    assert value(samples, "bot_logging_batch_records_bucket", le="5.0") == 2  # 1 and 5
    # One request at a time: each batch is its own transaction.
    assert value(samples, "bot_logging_group_commit_rows_sum") == 16
    assert value(samples, "bot_logging_group_commit_batches_count") == 3
    assert ("bot_logging_db_connections_in_use", ()) in samples


async def test_concurrent_batches_show_as_larger_group_commits(make_app, make_user):
    port = free_port()
    async with make_app(metrics_port=port) as app:
        client = app.test_client()
        account = await make_user()
        answers = await asyncio.gather(
            *(post_logs(client, account, client_body(account.name, 2)) for _ in range(30))
        )
        assert {a.status_code for a in answers} == {200}
        samples = await scrape(port)
    transactions = value(samples, "bot_logging_group_commit_batches_count")
    assert value(samples, "bot_logging_group_commit_batches_sum") == 30
    assert value(samples, "bot_logging_group_commit_rows_sum") == 60
    assert 1 <= transactions < 30  # batches that arrived together shared a transaction


async def test_alert_deliveries_are_counted_by_channel_and_outcome(make_app):
    port = free_port()
    async with make_app(metrics_port=port) as app:
        count_alert_delivery("telegram", "sent", app.app)
        count_alert_delivery("telegram", "sent", app.app)
        count_alert_delivery("webhook", "failed", app.app)
        samples = await scrape(port)
    name = "bot_logging_alert_deliveries_total"
    assert value(samples, name, channel="telegram", outcome="sent") == 2
    assert value(samples, name, channel="webhook", outcome="failed") == 1


async def test_the_listener_serves_only_metrics_and_the_public_port_has_none(make_app):
    port = free_port()
    async with make_app(metrics_port=port) as app:
        with pytest.raises(urllib.error.HTTPError) as raised:
            await asyncio.to_thread(scrape_text, port, "/healthz")
        raised.value.close()
        assert raised.value.code == 404
        assert (await app.test_client().get("/metrics")).status_code == 404


async def test_metrics_are_off_by_default(app):
    from bot_logging_server.metrics import get_metrics

    assert get_metrics(app.app) is None
    count_alert_delivery("telegram", "sent", app.app)  # a no-op, not an error
    assert (await app.test_client().get("/metrics")).status_code == 404


async def test_the_listener_closes_when_the_app_stops(make_app):
    port = free_port()
    async with make_app(metrics_port=port):
        await asyncio.to_thread(scrape_text, port)
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(scrape_text, port)


def _multiproc_dir(group: int) -> Path:
    """The multiprocess directory the workers of process group `group` were started with."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == group:
            continue
        try:
            if os.getpgid(int(entry.name)) != group:
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            name, _, found = item.decode().partition("=")
            if name == MULTIPROC_ENV:
                return Path(found)
    raise AssertionError(f"no worker has {MULTIPROC_ENV} in its environment")


def _request_writers(directory: Path) -> set[str]:
    """The pids of the processes that have counted something in `directory`."""
    return {p.stem.rsplit("_", 1)[1] for p in directory.glob("counter_*.db")}


@pytest.mark.slow
async def test_with_two_workers_the_counts_of_both_are_summed(fresh_database_url, tmp_path):
    metrics_port = free_port()
    with ServerProcess(
        fresh_database_url, tmp_path, "--workers", "2", "--metrics-port", str(metrics_port)
    ) as server:
        await server.wait_ready(timeout=60)
        user = await add_user(fresh_database_url)
        sizes: list[int] = []
        directory = _multiproc_dir(server.proc.pid)

        async def send(i: int, size: int) -> int:
            body = batch_body(user.name, f"b{i}", size)
            reply = await http(server.port, "POST", "//send_logs", body, client_headers(user.token))
            return reply.status

        statuses = []
        # 8 at a time, at least 40, until both workers have taken some (which one accepts a
        # connection is the kernel's choice; a quick worker may take a whole round).
        while len(sizes) < 40 or len(_request_writers(directory)) < 2:
            assert len(sizes) < 2000, "one worker took every request"
            round_sizes = [1 + i % 7 for i in range(len(sizes), len(sizes) + 8)]
            statuses += await asyncio.gather(
                *(send(len(sizes) + j, size) for j, size in enumerate(round_sizes))
            )
            sizes += round_sizes
        assert set(statuses) == {200}
        send_ok = {"route": "/send_logs", "method": "POST", "status": "200"}
        # A request is counted once its answer's last byte is sent, which may be just after
        # the client has read it: wait (bounded) until every worker has counted its share.
        deadline = time.monotonic() + 10
        samples = await scrape(metrics_port)
        while value(samples, "bot_logging_http_requests_total", **send_ok) < len(sizes):
            assert time.monotonic() < deadline, samples
            await asyncio.sleep(0.1)
            samples = await scrape(metrics_port)
        writers = _request_writers(directory)
        server.proc.send_signal(signal.SIGTERM)
        code = await server.wait_exit(timeout=45)
        output = server.output()
    assert code == 0, output[-3000:]
    # Both workers counted (wait_ready's /healthz, and the batches spread over both).
    assert len(writers) == 2, (writers, output[-2000:])
    assert value(samples, "bot_logging_http_requests_total", **send_ok) == len(sizes)
    assert value(samples, "bot_logging_records_ingested_total") == sum(sizes)
    assert value(samples, "bot_logging_batch_records_count") == len(sizes)
    assert value(samples, "bot_logging_group_commit_rows_sum") == sum(sizes)
    # One gauge, the sum over the live workers (not one per process).
    assert ("bot_logging_db_connections_in_use", ()) in samples
    assert not directory.exists(), "the private multiprocess directory was left behind"
    assert not os.environ.get(MULTIPROC_ENV)
