"""The ASGI entry point of worker processes (``--workers N``).

hypercorn starts each worker by importing ``bot_logging_server.asgi:app_from_environment()``;
the parent CLI has put its flags in the ``BOT_LOGGING_SERVER_FLAGS`` environment variable, so
every worker builds exactly the parent's configuration.
"""

from __future__ import annotations

import json
import logging
import os
import signal

from quart import Quart

from bot_logging_server import create_app
from bot_logging_server.cli import CONFIG_ENV
from bot_logging_server.config import build_config

__all__ = ["app_from_environment"]


def app_from_environment() -> Quart:
    """Build the app from the flags the parent process left in ``BOT_LOGGING_SERVER_FLAGS``."""
    # hypercorn's parent turns SIGTERM into a graceful stop of every worker; a worker that
    # received SIGTERM itself (systemd signals the whole group) would die on the spot, losing
    # the requests it is serving. So workers leave SIGTERM to the parent.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    flags = json.loads(os.environ.get(CONFIG_ENV, "{}"))
    config = build_config(flags, os.environ)
    logging.basicConfig(
        level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return create_app(config)
