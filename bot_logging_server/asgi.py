"""The ASGI entry point of worker processes (``--workers N``).

hypercorn (or uvicorn) starts each worker by importing
``bot_logging_server.asgi:app_from_environment()``; the parent has put its flags in the
``BOT_LOGGING_SERVER_FLAGS`` environment variable (`bot_logging_server.server.CONFIG_ENV`),
so every worker builds exactly the parent's configuration.
"""

from __future__ import annotations

from quart import Quart

from bot_logging_server.server import worker_app

__all__ = ["app_from_environment"]


def app_from_environment() -> Quart:
    """Build the app from the flags the parent process left in ``BOT_LOGGING_SERVER_FLAGS``."""
    return worker_app()
