"""Alerts: per-user rules on the records stored, sent to Telegram or to a signed webhook.

A rule (``python3 app.py alerts add``, ``POST /api/alerts``) names a minimum level, and
optionally a process, a logger and a text (`bot_logging_server.alerts.rules`). Records that
match are not sent one by one: a rule's first match opens a **window** of ``--alert-window``
seconds (60); every match until it closes is counted in it, the first few kept; once it
closes, one message goes out with the count and those first records. A storm of 10,000
matching records is one message per rule per window.

Nothing of this runs on the ingest path. The request commits its batch and answers; the
matching runs afterwards, in memory; writing the matches and sending happen in a background
task of each process (`bot_logging_server.alerts.service`). The state lives in the database
(``alert_rules``, ``alert_windows``: matches, pending messages, attempts, errors), so a
restarted server sends what the previous one left, and with ``--workers N`` (or several
servers on one database) each window is claimed by exactly one process before it is sent
(`bot_logging_server.storage.alerts` says how, without locks). Channels and signatures:
`bot_logging_server.alerts.channels`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
from quart import Quart, current_app

from bot_logging_server._version import __version__
from bot_logging_server.alerts.channels import TIMEOUT_SECONDS, Sender
from bot_logging_server.alerts.service import STOP_SECONDS, AlertService
from bot_logging_server.config import Config
from bot_logging_server.storage import get_storage

__all__ = ["AlertService", "get_alerts", "init_app"]

_EXTENSION = "bot_logging_server.alerts"
#: Seconds a stopping server waits for the service beyond the deliveries' own stop time.
_STOP_MARGIN = 2.0


def init_app(app: Quart, config: Config) -> None:
    """Give `app` its `AlertService`: matching after every commit, and while the app serves,
    the background task that writes matches and sends alerts."""
    storage = get_storage(app)
    service = AlertService(storage, config, app)
    app.extensions[_EXTENSION] = service
    storage.observe_stored_logs(service.observe)
    # httpx logs every request's URL at INFO, and the Bot API's URL holds the bot token.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)

    @app.while_serving
    async def _alerts_in_background() -> AsyncIterator[None]:
        client = httpx.AsyncClient(
            timeout=TIMEOUT_SECONDS,
            follow_redirects=False,
            headers={"User-Agent": f"bot-logging-server/{__version__}"},
        )
        sender = Sender(client, config.telegram_api_url, config.telegram_token)
        task = asyncio.get_running_loop().create_task(service.run(sender))
        yield
        service.stopping.set()
        try:
            await asyncio.wait_for(task, STOP_SECONDS + _STOP_MARGIN)
        except (TimeoutError, asyncio.CancelledError):
            pass
        finally:
            await client.aclose()


def get_alerts(app: Quart | None = None) -> AlertService:
    """The `AlertService` of `app` (default: the current app)."""
    return (app or current_app).extensions[_EXTENSION]
