"""The ASGI entry point of worker processes (``--workers N``).

hypercorn (or uvicorn) starts each worker by importing
``bot_logging_server.asgi:app_from_environment()``. The parent's configuration reaches the
worker inside the server's own config object, which multiprocessing hands over through a
pipe (`bot_logging_server.server.worker_app`), so every worker builds exactly the parent's
configuration and no secret is put in its environment. Imported by a server started some
other way, the app is configured from the ``LOGGER_*`` environment variables alone.
"""

from __future__ import annotations

from quart import Quart

from bot_logging_server.server import worker_app

__all__ = ["app_from_environment"]


def app_from_environment() -> Quart:
    """Build the app from the parent's configuration (else the ``LOGGER_*`` environment)."""
    return worker_app()
