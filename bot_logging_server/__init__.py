"""bot-logging-server: a self-hosted, async collector for log batches.

Applications (first of all the LoggerBotLogging client, ``bot_logging.RemoteLogger``) POST
batches of log records to ``/send_logs`` with a per-user token; the server authenticates the
pair (user, ``X-User-Token``), validates every field, and stores the whole batch in one
transaction, on MySQL/MariaDB (aiomysql) or on an embedded SQLite file (aiosqlite, the default).

Where things are:

* `bot_logging_server.cli`: the command line (``python3 app.py``): serve, ``users ...`` and
  ``keys ...`` (ingest keys);
* `bot_logging_server.server`: serving (hypercorn or uvicorn, workers, signals);
* `bot_logging_server.config`: the `Config` built from flags, environment and defaults, by
  one table of settings (`bot_logging_server.config.settings`);
* `bot_logging_server.blueprints`: the HTTP endpoints, one module per capability;
* `bot_logging_server.schemas`: the request schemas (marshmallow), one module per concern;
* `bot_logging_server.auth` and `bot_logging_server.tokens`: who is asking;
* `bot_logging_server.storage`: the storage interface and its MySQL and SQLite backends;
* `bot_logging_server.errors`: the contract's JSON error shape, rendered in one place;
* `bot_logging_server.events`: usage events: the common model and the one path every event
  interface writes through (`record_events`), sessions started and stopped; `cors` opens the
  event endpoints to web pages of other origins.
* `bot_logging_server.alerts`: per-user alert rules, sent to Telegram or a signed webhook,
  one message per rule per window, off the ingest path;
* `bot_logging_server.records`, `bot_logging_server.tail`, `bot_logging_server.openapi`: the
  read side (records on the wire, the live tail, the OpenAPI document); the web viewer's files
  are in ``static/``, served at ``/``.

`create_app(config)` builds the Quart app; nothing connects or reads files at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot_logging_server._version import __version__

if TYPE_CHECKING:
    from quart import Quart

    from bot_logging_server.config import Config

__all__ = ["__version__", "create_app"]


def create_app(config: Config) -> Quart:
    """Build the app for `config`: storage (opened before serving), errors, blueprints.

    The returned app is an ASGI application; serve it with hypercorn (the CLI does), or enter
    ``app.test_app()`` in tests so that start-up and shutdown run.
    """
    # Imported here, not at the top, so that `bot_logging_server.handler` (a logging handler
    # for applications) imports with the standard library alone.
    from quart import Quart

    from bot_logging_server import (
        admission,
        alerts,
        auth,
        lanes,
        metrics,
        observe,
        offload,
        ratelimit,
        readlimit,
        retention,
        storage,
        tail,
    )
    from bot_logging_server.blueprints import register_blueprints
    from bot_logging_server.config import APP_CONFIG_KEY
    from bot_logging_server.errors import register_error_handlers
    from bot_logging_server.lanes.events import EVENT_LANES
    from bot_logging_server.lanes.send_logs import SendLogsLane

    app = Quart(__name__, static_folder=None)
    app.config[APP_CONFIG_KEY] = config
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.config["BODY_TIMEOUT"] = config.body_timeout
    # The real client requests //send_logs: keep double slashes as they are (no redirect).
    app.url_map.merge_slashes = False
    # Quart would answer OPTIONS itself with an empty HTML response; no route answers HTML,
    # so an OPTIONS a route does not declare is a JSON 405.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    store = storage.make_storage(config)
    storage.init_app(app, store)
    auth.init_app(
        app,
        auth.Authenticator(
            store,
            config.auth_cache_seconds,
            config.auth_failures_per_source,
            config.auth_failures_per_user,
        ),
    )
    ratelimit.init_app(app, config)
    readlimit.init_app(app, config)
    tail.init_app(app)
    offload.init_app(app)
    register_error_handlers(app)
    register_blueprints(app, config)
    # The usual write requests, served below Quart; installed first, so inside the rest.
    writes = [SendLogsLane(config), *(lane(config.max_body_bytes) for lane in EVENT_LANES)]
    lanes.install(app, writes, config.body_timeout)
    admission.init_app(app, config)  # caps requests and body bytes before the user is known
    metrics.init_app(app, config)  # --metrics-port
    observe.init_app(app, config)  # times every request (the admission's 503s too)
    retention.init_app(app, config)  # the background purge
    alerts.init_app(app, config)  # matching after commit; writing and sending in background
    return app
