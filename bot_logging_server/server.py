"""Serving the app: hypercorn or uvicorn, uvloop or asyncio, one process or several.

`serve` runs the server for a `Config` until SIGINT/SIGTERM (uvicorn: through
`bot_logging_server.uvicorn_http.serve_uvicorn`). Start-up is checked before anything is
served, so that a server that cannot run says why in one line and exits 1 at once (a
supervisor then restarts it): the port is bound, then the storage is opened, migrated,
checked writable and closed again (`check_storage`); only then is ``listening on ...``
printed and the app served (it opens its own storage).

With ``--workers N`` (``auto``: one per CPU core) each worker process rebuilds the parent's
configuration in `worker_app` (called by ``bot_logging_server.asgi``) from settings that
travel inside the server's own config object, handed to the worker through a pipe: no
secret (API key, database password) is ever put in a worker's environment.

`serving_app` adds what only a served app needs: `HTTPGuard` (request heads, stalled
readers; `bot_logging_server.http_guard`) and an event-loop exception handler that keeps
connections cancelled at shutdown out of the error log. A server process also tunes the
garbage collector once started (`bot_logging_server.gc_tuning`). Nothing runs at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sqlite3
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, NoReturn

import hypercorn.asyncio
import hypercorn.config
import hypercorn.run
from hypercorn.utils import LifespanFailureError
from quart import Quart

from bot_logging_server import create_app, logformat, metrics
from bot_logging_server.blueprints.stats_ws import MAX_FRAME_BYTES, close_sockets, drain_sockets
from bot_logging_server.config import SETTINGS, Config, ConfigError, build_config
from bot_logging_server.connections import cap_connections, install_hypercorn_cap
from bot_logging_server.gc_tuning import tune_gc_once_started
from bot_logging_server.http_guard import HTTPGuard, install_hypercorn_guard
from bot_logging_server.storage import StorageError, make_storage
from bot_logging_server.tail import stop_streams

__all__ = [
    "EXIT_GRACE_SECONDS",
    "GRACEFUL_SECONDS",
    "CarriesSettings",
    "StartupError",
    "announce",
    "check_storage",
    "configure_logging",
    "exit_process",
    "failure_reason",
    "listen_all",
    "serve",
    "serving_app",
    "settings_for_workers",
    "shutdown_trigger",
    "wants_uvloop",
    "worker_app",
]

#: Seconds a stopping server gives the requests it accepted to finish.
GRACEFUL_SECONDS = 10
#: Seconds a failed process waits for its leftover threads before it exits regardless.
EXIT_GRACE_SECONDS = 0.5

log = logging.getLogger("bot_logging_server")


class StartupError(Exception):
    """The server cannot start; the message is the one line that says why."""


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


def failure_reason(exc: BaseException) -> str:
    """One line naming why `exc` happened: our message, plus the driver's own words.

    Storage errors carry a short message of ours (``database error (MySQL error 1045)``);
    the driver exception they were raised from says what actually went wrong (``Access
    denied for user 'x'@'localhost'``, ``file is not a database``). Drivers never put a
    password in these messages.
    """
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        args = getattr(cause, "args", ())
        detail = args[1] if len(args) == 2 and isinstance(args[1], str) else str(cause)
        if detail and detail not in text:
            text = f"{text}: {detail}"
            break
        cause = cause.__cause__ or cause.__context__
    return " ".join(text.split())


def exit_process(code: int, threads_before: set[threading.Thread] | None = None) -> NoReturn:
    """End the process with `code`, even if a driver left a thread running.

    A database driver's worker thread that is not a daemon (aiosqlite's is not) keeps the
    interpreter alive after a failed start-up; one stuck on a frozen disk never ends. Threads
    started since `threads_before` get `EXIT_GRACE_SECONDS` to finish; if any is still
    alive, the process exits at once (after flushing its output).
    """
    before = threads_before if threads_before is not None else {threading.main_thread()}
    left = [t for t in threading.enumerate() if t not in before and not t.daemon and t.is_alive()]
    deadline = EXIT_GRACE_SECONDS
    for thread in left:
        thread.join(deadline)
    if any(t.is_alive() for t in left):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    raise SystemExit(code)


def check_storage(config: Config) -> None:
    """Open the configured storage (creating and migrating it), check it is writable, close.

    Raises `StartupError` with one line naming the storage (never its password) and the
    cause: access denied, server unreachable, not a database, read-only file...
    """

    async def check() -> None:
        storage = make_storage(config)
        await storage.open()
        try:
            if config.database.scheme == "sqlite":
                await asyncio.to_thread(_sqlite_writable, config.database.path, config.db_timeout)
        finally:
            await storage.close()

    try:
        asyncio.run(check())
    except (StorageError, sqlite3.Error, OSError) as exc:
        raise StartupError(
            f"start-up failed: storage {config.database.masked()}: {failure_reason(exc)}"
        ) from None


def _sqlite_writable(path: str, timeout: float) -> None:
    """Raise `sqlite3.OperationalError` ("readonly database") unless the file takes a write.

    SQLite opens a file it cannot write read-only without complaint, and every write would
    then fail. The probe rewrites the header's ``user_version`` to its own value and rolls
    back: nothing changes.
    """
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"PRAGMA user_version = {int(version):d}")
        finally:
            conn.execute("ROLLBACK")
    finally:
        conn.close()


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
    """`create_app` for a served process: `HTTPGuard` in front, the loop's exception handler.

    The handler is installed from the app's start-up hook because with workers, or with
    uvicorn, the server creates the event loop itself.
    """
    app = create_app(config)
    app.asgi_app = HTTPGuard(  # type: ignore[method-assign]
        app.asgi_app, max_body_bytes=config.max_body_bytes, send_timeout=config.read_timeout
    )

    @app.before_serving
    async def _quiet_shutdown_cancellations() -> None:
        asyncio.get_running_loop().set_exception_handler(_loop_exception_handler)

    return app


def shutdown_trigger(
    app: Quart, received_before: list[int] | None = None
) -> Callable[[], Awaitable[None]]:
    """A hypercorn ``shutdown_trigger``: wait for SIGINT/SIGTERM, then end the live tails and
    close the WebSockets (each answers and stores what it received, then closes with 1001).

    hypercorn waits (up to its graceful timeout) for open responses before it stops; a live
    tail or a socket never finishes by itself, so without this every shutdown would wait
    that long.
    hypercorn starts the trigger only once it serves; a signal that came earlier (listed in
    `received_before` by `_signals_remembered`) stops the server as soon as it starts.
    """

    async def trigger() -> None:
        loop = asyncio.get_running_loop()
        received = asyncio.Event()
        for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
            if hasattr(signal, name):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(getattr(signal, name), received.set)
        if received_before:
            received.set()
        await received.wait()
        stop_streams(app)
        close_sockets(app)

    return trigger


@contextlib.contextmanager
def _signals_remembered() -> Iterator[list[int]]:
    """Until the server handles SIGINT/SIGTERM itself, note them instead of dying of them.

    "listening on" is printed as soon as the port listens and the storage is open; a
    supervisor may stop the server from then on, before hypercorn has its own handlers.
    """
    received: list[int] = []

    def note(signum: int, _frame: object) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- Settings for worker processes ------------------------------------------------------------

#: What the parent handed to this worker process (set when the server's config arrives).
_INHERITED: dict[str, dict[str, Any]] | None = None


class CarriesSettings:
    """Mixin for a server's config object that carries our settings to worker processes.

    multiprocessing pickles the server's config object to each worker through a pipe; on
    arrival (`__setstate__`) the settings are kept for `worker_app`. Bound sockets are not
    part of the state (they reach the workers their own way).
    """

    worker_settings: dict[str, dict[str, Any]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("bound_sockets", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        global _INHERITED
        _INHERITED = state.get("worker_settings")
        self.__dict__.update(state)


class _HypercornConfig(CarriesSettings, hypercorn.config.Config):
    """hypercorn's config with the listening socket bound beforehand (`bound_sockets`)."""

    bound_sockets: hypercorn.config.Sockets | None = None

    def create_sockets(self) -> hypercorn.config.Sockets:
        """The sockets bound before start-up, else hypercorn's own."""
        return self.bound_sockets if self.bound_sockets is not None else super().create_sockets()


def settings_for_workers(flags: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The flags, and the secret settings' environment variables, taken out of the environment.

    The workers rebuild the configuration from both; the variables are removed from this
    process's environment so that the workers' environment (``/proc/PID/environ``) holds none.
    """
    environ = {s.env: os.environ.pop(s.env) for s in SETTINGS if s.secret and s.env in os.environ}
    return {"flags": dict(flags), "environ": environ}


def worker_app() -> Quart:
    """The app of one worker process, with the configuration its parent handed over."""
    inherited = _INHERITED or {"flags": {}, "environ": {}}
    config = build_config(inherited["flags"], {**os.environ, **inherited["environ"]})
    configure_logging(config.log_level, config.log_format)
    app = serving_app(config)
    tune_gc_once_started(app)
    if config.http_server == "hypercorn":
        # hypercorn's parent turns SIGTERM into a graceful stop of every worker; a worker
        # that received SIGTERM itself (systemd signals the whole group) would die on the
        # spot, losing the requests it is serving. So hypercorn workers leave SIGTERM to the
        # parent. (uvicorn's parent stops its workers with SIGTERM: they must keep it.)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        install_hypercorn_guard(config.max_body_bytes)
        install_hypercorn_cap(config.max_connections)
        _end_streams_when_told(app)
    else:
        from bot_logging_server.uvicorn_http import drain_in_workers, mask_websocket_targets

        mask_websocket_targets()
        cap_connections(config.max_connections)
        drain_in_workers(lambda: _end_streams(app))
    return app


async def _end_streams(app: Quart) -> None:
    """End the live tails and drain the WebSockets (each closes with 1001)."""
    stop_streams(app)
    await drain_sockets(app)


def _end_streams_when_told(app: Quart) -> None:
    """In a hypercorn worker: when the parent tells the worker to stop, end its live tails
    and close its WebSockets with 1001, as one process does on SIGTERM (`shutdown_trigger`).

    The worker's shutdown trigger is hypercorn's wait for the parent's event, made after the
    app is loaded (in this process only): it is wrapped to end the streams once it fires.
    """
    import hypercorn.asyncio.run as worker_run

    wait_for_parent = worker_run.check_multiprocess_shutdown_event

    async def trigger(*args: Any, **kwargs: Any) -> None:
        await wait_for_parent(*args, **kwargs)
        stop_streams(app)
        close_sockets(app)

    worker_run.check_multiprocess_shutdown_event = trigger  # type: ignore[assignment]


# -- Serving ----------------------------------------------------------------------------------


def _listen(config: Config, backlog: int, port: int | None = None) -> socket.socket:
    """Bind and listen on the configured address (`port`, default the configured port);
    `StartupError` names why it cannot."""
    port = config.port if port is None else port
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((config.host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        where = f"[{config.host}]" if family == socket.AF_INET6 else config.host
        reason = (exc.strerror or str(exc)).lower()
        message = f"start-up failed: cannot listen on {where}:{port}: {reason}"
        raise StartupError(message) from None
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def listen_all(config: Config, backlog: int) -> list[socket.socket]:
    """The listening sockets: the configured port, and ``--stats-port`` when set."""
    socks = [_listen(config, backlog)]
    if config.stats_port:
        try:
            socks.append(_listen(config, backlog, config.stats_port))
        except StartupError:
            socks[0].close()
            raise
    return socks


def announce(config: Config, sock: socket.socket) -> None:
    """Print the start-up line (backend, where, the address actually listened on)."""
    port = sock.getsockname()[1]
    line = dataclasses.replace(config, port=port).describe()
    if config.log_format == "json":
        log.info(line)  # every line of a JSON log is JSON
    else:
        print(line, flush=True)


def serve(config: Config, flags: Mapping[str, Any]) -> None:
    """Serve the app (hypercorn, or uvicorn) until SIGINT/SIGTERM; exit 1 if start-up fails.

    `flags` are the command-line flags `config` was built from: worker processes rebuild
    the same configuration from them. Raises `ConfigError` when the event loop or the HTTP
    server asked for is not installed. A start-up failure logs one line and exits 1 within
    about a second (`exit_process`), whatever thread a driver left behind.
    """
    configure_logging(config.log_level, config.log_format)
    # --metrics-port with --workers: the parent serves every worker's numbers, summed.
    metrics.start_worker_exporter(config)
    use_uvloop = wants_uvloop(config.event_loop)
    threads_before = set(threading.enumerate())
    try:
        if config.http_server == "uvicorn":
            try:
                from bot_logging_server.uvicorn_http import serve_uvicorn
            except ImportError:
                raise ConfigError("--http-server uvicorn: uvicorn is not installed") from None
            serve_uvicorn(config, flags, use_uvloop)
        else:
            _serve_hypercorn(config, flags, use_uvloop)
    except StartupError as exc:
        log.error("%s", exc)
        exit_process(1, threads_before)
    log.info("stopped")


def _serve_hypercorn(config: Config, flags: Mapping[str, Any], use_uvloop: bool) -> None:
    hc = _HypercornConfig()
    hc.graceful_timeout = float(GRACEFUL_SECONDS)
    # Slow clients: headers must arrive within keep_alive_timeout of the connection opening
    # (or of the previous answer), and the body within body_timeout (Quart's BODY_TIMEOUT,
    # set in create_app). hypercorn's read_timeout would also close a connection whose
    # client sends nothing while it reads a long response (an export, a live tail): it is
    # off, and HTTPGuard cuts instead a response the client stops reading.
    hc.keep_alive_timeout = config.keep_alive_timeout
    hc.read_timeout = None
    # h11 refuses a head still incomplete past this size; a complete one is measured by
    # head_refusal against the documented limit, however it was written.
    hc.h11_max_incomplete_size = 64 * 1024
    hc.websocket_max_message_size = MAX_FRAME_BYTES  # a larger frame: closed with 1009
    # Route hypercorn's own messages through our logging set-up (no second handler).
    hc.errorlog = logging.getLogger("hypercorn.error")
    # The app is served on every socket: the port, and --stats-port when it is set.
    socks = listen_all(config, hc.backlog)
    sock = socks[0]
    hc.bound_sockets = hypercorn.config.Sockets([], socks, [])
    try:
        check_storage(config)
        if config.workers == 1:
            install_hypercorn_guard(config.max_body_bytes)
            install_hypercorn_cap(config.max_connections)
            app = serving_app(config)
            tune_gc_once_started(app)

            @app.before_serving
            async def _listening() -> None:  # after the storage has opened
                announce(config, sock)

            try:
                with _signals_remembered() as received:
                    # The trigger also ends live tails at once (workers: at the graceful
                    # timeout).
                    trigger = shutdown_trigger(app, received)
                    serving = hypercorn.asyncio.serve(app, hc, shutdown_trigger=trigger)
                    if use_uvloop:
                        import uvloop

                        uvloop.run(serving)
                    else:
                        asyncio.run(serving)
            except LifespanFailureError as exc:
                # The storage went away between the check and the app's own start-up.
                raise StartupError(
                    f"start-up failed: storage {config.database.masked()}: "
                    f"{failure_reason(exc.__cause__ or exc)}"
                ) from None
            return
        hc.worker_class = "uvloop" if use_uvloop else "asyncio"
        hc.workers = config.workers
        hc.worker_settings = settings_for_workers(flags)
        hc.application_path = "bot_logging_server.asgi:app_from_environment()"
        announce(config, sock)
        code = hypercorn.run.run(hc)
        if code != 0:
            raise StartupError(f"a worker process failed (exit code {code}); see above")
    finally:
        for each in socks:
            each.close()
