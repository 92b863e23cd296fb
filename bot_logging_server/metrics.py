"""Prometheus metrics: what the server counts, and the listener that serves ``GET /metrics``.

Off unless ``--metrics-port PORT`` is given. Then the server counts, per process:

* ``bot_logging_http_requests_total{route, method, status}``: answered requests, by route
  template (``/send_logs`` for every spelling of it; ``unmatched`` for a 404/405);
* ``bot_logging_http_request_duration_seconds{route, method}``: a latency histogram, from the
  request's arrival to the last byte of the answer;
* ``bot_logging_records_ingested_total`` and ``bot_logging_batch_records`` (records per
  accepted batch): what ``/send_logs`` stored (answered 200);
* ``bot_logging_group_commit_batches`` and ``bot_logging_group_commit_rows``: batches and rows
  per group-commit transaction;
* ``bot_logging_db_connections_in_use``: pooled MySQL connections checked out (SQLite: 1
  while the writer holds its transaction), sampled every second, summed over workers;
* ``bot_logging_alert_deliveries_total{channel, outcome}``: alert messages sent or failed
  (`count_alert_delivery`).

They are served in Prometheus text format on a listener of their own
(``--metrics-host``, 127.0.0.1 by default; ``--metrics-port``), which answers only
``/metrics``, never on the public port. One process: the app's registry, served by a thread
of the same process while the app serves. ``--workers N``: each worker writes its numbers to
files in a private directory (prometheus-client's multiprocess mode, through
``PROMETHEUS_MULTIPROC_DIR``), which the parent creates before it starts the workers and
removes when it exits; the parent's listener sums every worker's numbers
(`start_worker_exporter`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder
from quart import Quart, current_app

from bot_logging_server.config import Config
from bot_logging_server.storage import get_storage

__all__ = [
    "MULTIPROC_ENV",
    "Exporter",
    "Metrics",
    "count_alert_delivery",
    "get_metrics",
    "init_app",
    "start_worker_exporter",
]

log = logging.getLogger(__name__)

#: prometheus-client reads its multiprocess directory from this variable when imported.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_EXTENSION = "bot_logging_server.metrics"
#: Seconds between two samples of the connections in use.
_SAMPLE_SECONDS = 1.0
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000)
_GROUP_BUCKETS = (1, 2, 3, 5, 10, 20, 50, 100)
_ROW_BUCKETS = (1, 10, 50, 100, 500, 1000, 2000, 5000, 10_000, 50_000)


@dataclass(frozen=True)
class Metrics:
    """The metric objects of one process (see the module's docstring for each)."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    records: Counter
    batch_records: Histogram
    group_batches: Histogram
    group_rows: Histogram
    connections_in_use: Gauge
    alert_deliveries: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        """Every metric, registered in `registry` (a new one by default)."""
        registry = registry if registry is not None else CollectorRegistry()
        on = {"registry": registry}
        return cls(
            registry=registry,
            requests=Counter(
                "bot_logging_http_requests",
                "HTTP requests answered, by route template, method and status.",
                ["route", "method", "status"],
                **on,
            ),
            latency=Histogram(
                "bot_logging_http_request_duration_seconds",
                "Seconds from a request's arrival to the end of its answer.",
                ["route", "method"],
                **on,
            ),
            records=Counter(
                "bot_logging_records_ingested", "Log records stored by /send_logs.", **on
            ),
            batch_records=Histogram(
                "bot_logging_batch_records",
                "Records per batch stored by /send_logs.",
                buckets=_BATCH_BUCKETS,
                **on,
            ),
            group_batches=Histogram(
                "bot_logging_group_commit_batches",
                "Batches written per group-commit transaction.",
                buckets=_GROUP_BUCKETS,
                **on,
            ),
            group_rows=Histogram(
                "bot_logging_group_commit_rows",
                "Rows written per group-commit transaction.",
                buckets=_ROW_BUCKETS,
                **on,
            ),
            connections_in_use=Gauge(
                "bot_logging_db_connections_in_use",
                "Database connections in use (MySQL pool; SQLite: the writer), all workers.",
                multiprocess_mode="livesum",
                **on,
            ),
            alert_deliveries=Counter(
                "bot_logging_alert_deliveries",
                "Alert messages delivered or failed, by channel and outcome.",
                ["channel", "outcome"],
                **on,
            ),
        )

    def observe_request(
        self, route: str, method: str, status: int, seconds: float, records: int | None
    ) -> None:
        """Count one answered request; `records` is what a 200 from /send_logs stored."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)
        if records is not None and status == 200:
            self.records.inc(records)
            self.batch_records.observe(records)

    def observe_group_commit(self, batches: int, rows: int) -> None:
        """Count one committed group-commit transaction (a `GroupCommit` hook)."""
        self.group_batches.observe(batches)
        self.group_rows.observe(rows)


def get_metrics(app: Quart | None = None) -> Metrics | None:
    """The metrics of `app` (default: the current app); None when metrics are off."""
    return (app or current_app).extensions.get(_EXTENSION)


def count_alert_delivery(channel: str, outcome: str, app: Quart | None = None) -> None:
    """Count one alert delivery on `channel` (``telegram``, ``webhook``...) with its
    `outcome` (``sent``, ``failed``...); nothing when metrics are off."""
    metrics = get_metrics(app)
    if metrics is not None:
        metrics.alert_deliveries.labels(channel, outcome).inc()


def init_app(app: Quart, config: Config) -> None:
    """Count `app`'s work when ``--metrics-port`` is set; serve it when the app is alone.

    With one process the listener runs beside the app (started before serving, stopped
    after); with ``--workers N`` the parent's listener (`start_worker_exporter`) serves the
    sum, and each worker only writes its numbers.
    """
    if not config.metrics_port:
        return
    metrics = Metrics.create()
    app.extensions[_EXTENSION] = metrics
    get_storage(app).observe_group_commits(metrics.observe_group_commit)
    exporter: Exporter | None = None
    sampler: asyncio.Task[None] | None = None

    @app.before_serving
    async def _start_metrics() -> None:
        nonlocal exporter, sampler
        sampler = asyncio.get_running_loop().create_task(_sample(app, metrics))
        if config.workers == 1:
            exporter = Exporter(metrics.registry, config.metrics_host, config.metrics_port)

    @app.after_serving
    async def _stop_metrics() -> None:
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        if exporter is not None:
            await asyncio.to_thread(exporter.close)
        if os.environ.get(MULTIPROC_ENV):
            # This worker's live gauge no longer counts in the sum.
            multiprocess.mark_process_dead(os.getpid())


async def _sample(app: Quart, metrics: Metrics) -> None:
    """Every `_SAMPLE_SECONDS`, set the gauge of connections in use."""
    db = get_storage(app).db
    while True:
        metrics.connections_in_use.set(db.connections_in_use())
        await asyncio.sleep(_SAMPLE_SECONDS)


class _MetricsHandler(BaseHTTPRequestHandler):
    """``GET /metrics``: the registry in the format the scraper accepts; anything else 404."""

    server: _MetricsServer

    def do_GET(self) -> None:
        """Answer /metrics, or 404."""
        if urlsplit(self.path).path != "/metrics":
            self._answer(404, b"not found: metrics are at /metrics\n", "text/plain")
            return
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(self.server.registry)
        except Exception:
            log.exception("metrics: collecting failed")
            self._answer(500, b"collecting the metrics failed\n", "text/plain")
            return
        self._answer(200, body, content_type)

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged (one every few seconds would drown the server's log)."""


class _MetricsServer(ThreadingHTTPServer):
    daemon_threads = True
    registry: CollectorRegistry


class Exporter:
    """A listener serving `registry` at ``http://host:port/metrics`` from a daemon thread."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        """Bind `host`:`port` and start serving; `OSError` when the port cannot be bound."""
        server_class = _MetricsServer
        if ":" in host:
            server_class = type("_MetricsServer6", (_MetricsServer,), {})
            server_class.address_family = socket.AF_INET6
        self._server = server_class((host, port), _MetricsHandler)
        self._server.registry = registry
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-listener", daemon=True
        )
        self._thread.start()
        self.port = self._server.server_address[1]

    def close(self) -> None:
        """Stop serving and close the socket (blocks up to half a second)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_worker_exporter(config: Config) -> Exporter | None:
    """For ``--workers N`` with ``--metrics-port``: the parent's listener, summing workers.

    Call in the parent before the workers start: it creates a private directory, names it in
    ``PROMETHEUS_MULTIPROC_DIR`` (inherited by the workers, whose prometheus-client then
    writes there), and serves the sum of every worker's files. The listener is closed and
    the directory removed when the parent exits. None when not needed.
    """
    if config.workers == 1 or not config.metrics_port:
        return None
    directory = tempfile.mkdtemp(prefix="bot-logging-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    try:
        exporter = Exporter(registry, config.metrics_host, config.metrics_port)
    except OSError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        log.error(
            "start-up failed: metrics listener %s:%d: %s",
            config.metrics_host,
            config.metrics_port,
            exc.strerror or exc,
        )
        raise SystemExit(1) from None

    def cleanup() -> None:
        exporter.close()
        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(cleanup)
    return exporter
