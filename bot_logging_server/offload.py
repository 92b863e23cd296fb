"""CPU-heavy work away from the event loop: a helper process per server process.

Parsing a large JSON body blocks whatever thread runs it, and a thread does not help: the
JSON parsers (orjson, the standard library's) hold CPython's interpreter lock while they
build objects, so the event loop stalls as long with the parse in a thread as on the loop
itself (measured on 14 MiB of ``[{},{},...]``: 0.46 s on the loop, the loop stalled 0.38 s
with orjson in a thread, 0.57 s with the standard library's fallback for ``NaN``). A
separate process has its own lock. `Offload.run` sends the work there; only what the work
returns (the validated rows, or why they are refused) comes back.

The helper process starts at the first use (so that short-lived apps, tests among them,
never start one), ignores SIGINT and SIGTERM (the server's shutdown closes it after the
requests in progress have finished) and exits when its server process is gone. If it
dies, the work in progress is answered 503 and the next use starts a new one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ParamSpec, TypeVar

from quart import Quart, current_app

from bot_logging_server.errors import ServiceUnavailable

__all__ = ["OFFLOAD_BYTES", "Offload", "get_offload", "init_app"]

#: Bodies larger than this are parsed in the helper process; smaller ones (a few ms at
#: most, even of the costliest shapes) on the event loop.
OFFLOAD_BYTES = 256 * 1024

_EXTENSION = "bot_logging_server.offload"
_P = ParamSpec("_P")
_T = TypeVar("_T")


class Offload:
    """One helper process (started on first use) that runs functions for the event loop."""

    def __init__(self) -> None:
        """No process yet."""
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    async def run(self, func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``func(*args, **kwargs)`` in the helper process; its exceptions are raised here.

        `func` and its arguments and result must pickle (a module-level function). Raises
        `ServiceUnavailable` when the helper process died meanwhile.
        """
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_helper_started,
                initargs=(os.getpid(),),
            )
        pool = self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, _call, func, args, kwargs)
        except BrokenProcessPool:
            if self._pool is pool:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise ServiceUnavailable("the body could not be read, retry") from None

    def close(self) -> None:
        """Stop the helper process (work still queued is dropped)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _call(func: Callable[..., _T], args: tuple, kwargs: dict[str, Any]) -> _T:
    return func(*args, **kwargs)


def _helper_started(parent: int) -> None:
    """In the helper process: leave signals to the server, and end with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def init_app(app: Quart) -> None:
    """Give `app` an `Offload`, closed after serving."""
    offload = Offload()
    app.extensions[_EXTENSION] = offload

    @app.after_serving
    async def _close_offload() -> None:
        offload.close()


def get_offload() -> Offload:
    """The current app's `Offload`."""
    return current_app.extensions[_EXTENSION]
