"""Serving the app: hypercorn or uvicorn, uvloop or asyncio, one process or several.

`serve` runs the server for a `Config` until SIGINT/SIGTERM and exits 1 when start-up fails
(so that a supervisor restarts it). With ``--workers N`` the workers are separate processes:
they rebuild the parent's configuration from the flags the parent leaves in `CONFIG_ENV`, in
`worker_app` (called by ``bot_logging_server.asgi``). `serving_app` adds to the app what only
a served app needs: an event-loop exception handler that keeps connections cancelled at
shutdown out of the error log. Nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import hypercorn.asyncio
import hypercorn.config
import hypercorn.run
from hypercorn.utils import LifespanFailureError
from quart import Quart

from bot_logging_server import create_app, logformat, metrics
from bot_logging_server.config import Config, ConfigError, build_config
from bot_logging_server.storage import StorageError
from bot_logging_server.tail import stop_streams

__all__ = [
    "CONFIG_ENV",
    "GRACEFUL_SECONDS",
    "configure_logging",
    "serve",
    "serving_app",
    "shutdown_trigger",
    "wants_uvloop",
    "worker_app",
]

#: The environment variable through which worker processes receive the parent's flags.
CONFIG_ENV = "BOT_LOGGING_SERVER_FLAGS"
#: Seconds a stopping server gives the requests it accepted to finish.
GRACEFUL_SECONDS = 10

log = logging.getLogger("bot_logging_server")


def configure_logging(level: str, log_format: str = "text") -> None:
    """Send the server's (and hypercorn's) messages to stderr at `level`, one line each:
    text, or JSON objects (`bot_logging_server.logformat`)."""
    logformat.configure(level, log_format)


def wants_uvloop(choice: str) -> bool:
    """Whether to run on uvloop: ``uvloop`` demands it, ``auto`` takes it when installed.

    Raises `ConfigError` when ``uvloop`` is asked for and is not installed.
    """
    if choice == "asyncio":
        return False
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if choice == "uvloop":
            raise ConfigError("--event-loop uvloop: uvloop is not installed") from None
        return False
    return True


def _loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """asyncio's handler for errors no task awaited, minus connections cancelled at shutdown.

    When the server stops it cancels the connections still open; asyncio's stream callback
    then reports the cancellation as an "Exception in callback" with a traceback, although
    nothing failed. Everything else is reported as asyncio would.
    """
    if isinstance(context.get("exception"), asyncio.CancelledError):
        log.debug("connection cancelled at shutdown: %s", context.get("message"))
        return
    loop.default_exception_handler(context)


def serving_app(config: Config) -> Quart:
    """`create_app` for a served process: the loop's exception handler set when serving starts.

    The handler is installed from the app's start-up hook because with workers, or with
    uvicorn, the server creates the event loop itself.
    """
    app = create_app(config)

    @app.before_serving
    async def _quiet_shutdown_cancellations() -> None:
        asyncio.get_running_loop().set_exception_handler(_loop_exception_handler)

    return app


def shutdown_trigger(app: Quart) -> Callable[[], Awaitable[None]]:
    """A hypercorn ``shutdown_trigger``: wait for SIGINT/SIGTERM, then end the live tails.

    hypercorn waits (up to its graceful timeout) for open responses before it stops; a live
    tail never finishes by itself, so without this every shutdown would wait that long.
    """

    async def trigger() -> None:
        loop = asyncio.get_running_loop()
        received = asyncio.Event()
        for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
            if hasattr(signal, name):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(getattr(signal, name), received.set)
        await received.wait()
        stop_streams(app)

    return trigger


def worker_app() -> Quart:
    """The app of one worker process, from the flags the parent left in `CONFIG_ENV`."""
    # hypercorn's parent turns SIGTERM into a graceful stop of every worker; a worker that
    # received SIGTERM itself (systemd signals the whole group) would die on the spot, losing
    # the requests it is serving. So workers leave SIGTERM to the parent.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    flags = json.loads(os.environ.get(CONFIG_ENV, "{}"))
    config = build_config(flags, os.environ)
    configure_logging(config.log_level, config.log_format)
    return serving_app(config)


def serve(config: Config, flags: Mapping[str, Any]) -> None:
    """Serve the app (hypercorn, or uvicorn) until SIGINT/SIGTERM; exit 1 if start-up fails.

    `flags` are the command-line flags `config` was built from: worker processes rebuild
    the same configuration from them. Raises `ConfigError` when the event loop or the HTTP
    server asked for is not installed.
    """
    configure_logging(config.log_level, config.log_format)
    if config.log_format == "json":
        log.info(config.describe())  # every line of a JSON log is JSON
    else:
        print(config.describe(), flush=True)
    # --metrics-port with --workers: the parent serves every worker's numbers, summed.
    metrics.start_worker_exporter(config)
    use_uvloop = wants_uvloop(config.event_loop)
    if config.http_server == "uvicorn":
        _serve_uvicorn(config, flags, use_uvloop)
        return
    hc = hypercorn.config.Config()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hc.bind = [f"{host}:{config.port}"]
    hc.graceful_timeout = float(GRACEFUL_SECONDS)
    # Slow clients: headers must arrive within keep_alive_timeout of the connection opening
    # (or of the previous answer), no read may wait longer than read_timeout, and the body
    # must be complete within body_timeout (Quart's BODY_TIMEOUT, set in create_app).
    hc.keep_alive_timeout = config.keep_alive_timeout
    hc.read_timeout = config.read_timeout
    # Route hypercorn's own messages through our logging set-up (no second handler).
    hc.errorlog = logging.getLogger("hypercorn.error")
    try:
        if config.workers == 1:
            app = serving_app(config)
            # The trigger also ends live tails at once (workers: at the graceful timeout).
            serving = hypercorn.asyncio.serve(app, hc, shutdown_trigger=shutdown_trigger(app))
            if use_uvloop:
                import uvloop

                uvloop.run(serving)
            else:
                asyncio.run(serving)
        else:
            hc.worker_class = "uvloop" if use_uvloop else "asyncio"
            # Workers are separate processes: hand them the same flags to rebuild the config.
            os.environ[CONFIG_ENV] = json.dumps(dict(flags))
            hc.workers = config.workers
            hc.application_path = "bot_logging_server.asgi:app_from_environment()"
            sys.exit(hypercorn.run.run(hc))
    except LifespanFailureError as exc:
        # The database is not waited for: exit 1 at once, so that a supervisor (systemd,
        # docker) restarts the server, and say where it tried (never the password).
        log.error(
            "start-up failed (storage %s): %s", config.database.masked(), exc.__cause__ or exc
        )
        raise SystemExit(1) from None
    except StorageError as exc:
        log.error("start-up failed (storage %s): %s", config.database.masked(), exc)
        raise SystemExit(1) from None
    log.info("stopped")


def _serve_uvicorn(config: Config, flags: Mapping[str, Any], use_uvloop: bool) -> None:
    """Serve the same app with uvicorn (httptools when installed); exit 1 if start-up fails."""
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("--http-server uvicorn: uvicorn is not installed") from None
    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:
        http = "h11"
    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "loop": "uvloop" if use_uvloop else "asyncio",
        "http": http,
        "lifespan": "on",
        "access_log": False,
        # Keep our logging set-up (uvicorn's default config would replace it).
        "log_config": None,
        "log_level": config.log_level.lower(),
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
        "timeout_keep_alive": max(1, round(config.keep_alive_timeout)),
    }
    try:
        if config.workers == 1:
            uvicorn.run(serving_app(config), **options)
        else:
            # Workers are separate processes: hand them the same flags to rebuild the config.
            os.environ[CONFIG_ENV] = json.dumps(dict(flags))
            uvicorn.run(
                "bot_logging_server.asgi:app_from_environment",
                factory=True,
                workers=config.workers,
                **options,
            )
    except SystemExit as exc:
        if exc.code not in (0, None):
            # uvicorn exits 3 when the app's start-up (storage open) failed; it logged why.
            log.error("start-up failed (see the messages above)")
            raise SystemExit(1) from None
        raise
