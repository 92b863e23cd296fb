"""The garbage collector of a server process, tuned once the server has started.

Profiling under load found a large share of the server's CPU time in Python's garbage
collector: every request allocates hundreds of objects, those of the requests in flight
survive the young collections, and the old generation was then walked again and again, with
the app's own tens of thousands of long-lived objects (modules, routes, schemas) in it.

So a server process (one serving alone, or each worker), once started, collects once and
freezes what it holds (`gc.freeze`: those objects are never walked again), and collects its
youngest generation every `GC_THRESHOLD` allocations instead of CPython's 700: most of a
request's objects are freed by reference counting as soon as it is answered, whatever the
threshold. Only served processes do this (never the tests' in-process apps).
"""

from __future__ import annotations

import gc

from quart import Quart

__all__ = ["GC_THRESHOLD", "tune_gc", "tune_gc_once_started"]

#: Allocations between two collections of the youngest generation (CPython's default: 700).
GC_THRESHOLD = 10_000


def tune_gc() -> None:
    """Collect, freeze every object alive now, and raise the young generation's threshold."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def tune_gc_once_started(app: Quart) -> None:
    """Call `tune_gc` when `app` has started (its storage open, its modules imported)."""

    @app.before_serving
    async def _tune_gc() -> None:
        tune_gc()
