"""Fixtures: the whole suite runs on both backends, against real databases.

* `database_url` is parametrised over ``sqlite`` (a file in the test's temp dir) and
  ``mysql`` (a uniquely named database on the MariaDB of this machine, or on
  ``LOGGER_TEST_MYSQL_URL``, created once per run and dropped at the end).
* When MariaDB is unreachable the MySQL tests fail under ``CI=true`` and are skipped, with
  the reason, elsewhere.
* The Galera cluster fixtures (`galera_installed`, `galera_cluster`, `galera`) come from the
  plugin `galera_fixtures`.
* Token hashes are made at a small scrypt cost (`TEST_HASH_COST`); `production_hash_cost`
  restores the real one for a test.
* `http_server` is parametrised over the HTTP servers (``--http-server hypercorn`` and
  ``uvicorn``): the reliability tests run a real server process on each.
* `app` is entered with ``app.test_app()`` so before/after-serving (storage open/close) run;
  `client` is its test client; `make_user` creates a fresh user and returns its token.
* `receiver` is a `support.Receiver` (a fake Telegram Bot API and webhook) for the alert
  tests; `attach` puts a logging `Handler` on a fresh logger for the handler's tests.
* The `SOAK` variants (a scenario repeated on another backend or server) run only with
  ``--soak`` (or alone with ``--soak-only``).
* A test that hangs fails: pytest-timeout (``timeout`` in pyproject.toml) fails it with
  SIGALRM and the run goes on; a hang that survives that (a task that ignores cancellation
  keeps the event loop from closing) ends the run after twice the timeout, with every
  thread's stack printed, instead of stopping the suite forever.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pymysql
import pytest
import pytest_timeout
from support import HTTP_SERVERS, Account, Receiver, new_account

from bot_logging_server import create_app, tokens
from bot_logging_server.config import Config, DatabaseURL, build_config
from bot_logging_server.handler import Handler
from bot_logging_server.storage import Storage, get_storage

pytest_plugins = ["support.galera_fixtures"]

# New token hashes are made at a small scrypt cost: the suite creates thousands of users and
# keys, and at the production cost each hash (and each first check of it) takes ~50 ms. A
# hash carries its cost, so checking is the same code; tests/test_tokens.py checks the
# production cost with `production_hash_cost`.
TEST_HASH_COST = 2**8
tokens.set_hash_cost(TEST_HASH_COST)

MYSQL_SERVER_URL = os.environ.get("LOGGER_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
BACKENDS = ["sqlite", "mysql"]
_BACKSTOP = pytest.StashKey[threading.Timer]()


#: Variants that run only with ``--soak``: the same scenario runs in every run on one backend
#: or server (the variant left out of this list); these repeat it on the others. Each is a
#: real server process under load, a storm, or a wait for a timeout (5-25 s each).
SOAK = frozenset(
    {
        "test_workers.py::test_workers_start_on_a_fresh_database_serve_and_stop_cleanly["
        + variant
        + "]"
        for variant in (
            "sqlite-hypercorn-group",
            "sqlite-uvicorn-parent",
            "mysql-hypercorn-group",
            "mysql-uvicorn-group",
            "sqlite-hypercorn-parent",
            "mysql-uvicorn-parent",
            "sqlite-uvicorn-group",
        )
    }
    | {
        "test_stats_ws_server.py::test_sigterm_stores_every_acknowledged_frame_and_closes_open_"
        f"sockets_with_1001[{variant}]"
        for variant in (
            "sqlite-hypercorn-one-process",
            "sqlite-hypercorn-two-workers",
            "sqlite-uvicorn-one-process",
            "mysql-hypercorn-one-process",
            "mysql-uvicorn-one-process",
            "mysql-uvicorn-two-workers",
            "sqlite-uvicorn-two-workers",
        )
    }
    | {
        f"test_admission.py::test_a_large_body_gets_the_answers_it_would_get_if_small[{variant}]"
        for variant in (  # refused before storage: the same answers on both backends
            "sqlite-not json-400-body: not valid JSON",
            "sqlite-array-400-data: must be a JSON object",
            "sqlite-bad field-400-data.logs[1].level: not a level name or number",
            "sqlite-too many records-413-data.logs: more than 10000 records",
            "sqlite-wrong token-403-None",
        )
    }
    | {
        "test_shutdown.py::test_sigterm_under_load_finishes_accepted_requests_commits_and_"
        "exits_0[sqlite-hypercorn]",
        "test_shutdown.py::test_sigterm_under_load_finishes_accepted_requests_commits_and_"
        "exits_0[sqlite-uvicorn]",
        "test_shutdown.py::test_sigterm_under_load_finishes_accepted_requests_commits_and_"
        "exits_0[mysql-hypercorn]",
        "test_shutdown.py::test_kill_9_mid_load_leaves_no_partial_batch[sqlite-hypercorn]",
        "test_shutdown.py::test_kill_9_mid_load_leaves_no_partial_batch[mysql-uvicorn]",
        "test_alert_delivery.py::test_a_storm_of_10000_records_is_one_message_per_rule_per_"
        "window[sqlite]",
        "test_alert_retries_and_restarts.py::test_a_pending_alert_is_sent_by_the_next_server_"
        "after_a_restart[mysql]",
        "test_alert_retries_and_restarts.py::test_two_servers_on_one_database_send_each_alert_"
        "once[sqlite]",
        "test_alert_retries_and_restarts.py::test_two_workers_send_each_alert_once[sqlite]",
        "test_streams.py::test_an_export_longer_than_the_read_timeout_arrives_whole[sqlite]",
        "test_streams.py::test_a_client_that_stops_reading_gets_a_visibly_cut_export[uvicorn]",
        "test_streams.py::test_a_tail_outlives_the_read_timeout_with_keep_alive_comments[uvicorn]",
        "test_outage.py::test_mysql_outages_under_load_answer_503_recover_and_lose_nothing_"
        "acknowledged[uvicorn-mysql]",
        "test_outage.py::test_timeouts_never_leak_pooled_connections[uvicorn-mysql]",
        "test_fair_sharing.py::test_ingest_p99_stays_under_100_ms_while_60_heavy_readers_run"
        "[sqlite]",
        "test_tracker.py::test_the_demo_records_clicks_scroll_and_visibility_and_the_beacon_"
        "delivers_the_rest[mysql]",
        "test_viewer_views.py::test_every_filter_lives_in_the_url_and_back_and_forward_restore_"
        "it[mysql]",
        "test_worker_processes.py::test_worker_environments_hold_no_secret[environment-uvicorn]",
        "test_worker_processes.py::test_worker_environments_hold_no_secret[flag-hypercorn]",
        "test_abuse.py::test_a_client_looping_slow_to_parse_bodies_does_not_stall_the_others",
        "test_alert_retries_and_restarts.py::test_two_servers_on_one_database_send_each_alert_"
        "once[mysql]",
        "test_shutdown.py::test_kill_9_mid_load_leaves_no_partial_batch[sqlite-uvicorn]",
        "test_process.py::test_app_py_on_mysql_with_the_originals_four_flags",
    }
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--soak``: also run the `SOAK` variants; ``--soak-only``: run only them."""
    parser.addoption("--soak", action="store_true", help="also run the soak variants (SOAK)")
    parser.addoption("--soak-only", action="store_true", help="run only the soak variants")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the `SOAK` variants out unless ``--soak`` (or only them with ``--soak-only``)."""
    if config.getoption("--soak"):
        return
    only = config.getoption("--soak-only")
    keep, left = [], []
    for item in items:
        soak = item.nodeid.removeprefix("tests/") in SOAK
        (keep if soak == only else left).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = keep


def _end_the_run(item: pytest.Item, settings: Any) -> None:
    """Say which test still hangs, then let pytest-timeout print every stack and exit 1."""
    capture = item.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture()
    item.config.get_terminal_writer().line(
        f"\n{item.nodeid} still hangs {2 * settings.timeout:g} s after it started "
        "(a task that ignores cancellation?): ending the run"
    )
    pytest_timeout.timeout_timer(item, settings)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> None:
    """Before pytest-timeout arms its timer: arm a backstop at twice the timeout.

    pytest-timeout's SIGALRM fails the test once; if the test still does not end (its
    teardown hangs too), the backstop prints every stack and ends the run (exit code 1).
    Returns None, so pytest-timeout's own timer is set as usual.
    """
    backstop = threading.Timer(2 * settings.timeout, _end_the_run, (item, settings))
    backstop.daemon = True
    backstop.start()
    item.stash[_BACKSTOP] = backstop


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Any:
    """Disarm the backstop once the test is over, its teardown included.

    (Not in ``pytest_timeout_cancel_timer``: pytest-timeout calls that as soon as the test
    fails, before the teardown that may hang.)
    """
    try:
        return (yield)
    finally:
        backstop = item.stash.get(_BACKSTOP, None)
        if backstop is not None:
            backstop.cancel()


def _mysql_connect(url: DatabaseURL, **kwargs: Any) -> pymysql.connections.Connection:
    return pymysql.connect(
        host=url.host,
        port=url.port,
        user=url.user,
        password=url.password,
        connect_timeout=3,
        **kwargs,
    )


@pytest.fixture(scope="session")
def mysql_server() -> DatabaseURL:
    """The MariaDB server the MySQL tests use; fail (CI) or skip (elsewhere) if unreachable."""
    url = DatabaseURL.parse(MYSQL_SERVER_URL)
    try:
        _mysql_connect(url).close()
    except pymysql.err.MySQLError as exc:
        reason = (
            f"MariaDB/MySQL unreachable at {url.masked()} ({exc}); start it with "
            "`start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd` "
            "or set LOGGER_TEST_MYSQL_URL"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@pytest.fixture(scope="session")
def mysql_database(mysql_server: DatabaseURL) -> Iterator[str]:
    """A database of this run only (``blst_<random>``), dropped at the end; yields its URL."""
    name = f"blst_{uuid.uuid4().hex[:12]}"
    conn = _mysql_connect(mysql_server)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        password = f":{mysql_server.password}" if mysql_server.password else ""
        yield (
            f"mysql://{mysql_server.user}{password}@{mysql_server.host}:{mysql_server.port}/{name}"
        )
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The database URL of this test: ``sqlite`` or ``mysql`` (both, by parametrisation)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'logs.db'}"
    return request.getfixturevalue("mysql_database")


@pytest.fixture
def production_hash_cost() -> Iterator[None]:
    """New token hashes at the production scrypt cost during this test."""
    tokens.set_hash_cost(2**14)
    try:
        yield
    finally:
        tokens.set_hash_cost(TEST_HASH_COST)


@pytest.fixture
def backend(database_url: str) -> str:
    """``"sqlite"`` or ``"mysql"``: which backend this test runs on."""
    return urlsplit(database_url).scheme


@pytest.fixture
def make_config(database_url: str) -> Callable[..., Config]:
    """Build a `Config` for this test's database; keyword arguments override settings."""

    def make(**overrides: Any) -> Config:
        return build_config({"database_url": database_url, **overrides}, environ={})

    return make


@pytest.fixture
def make_app(make_config: Callable[..., Config]) -> Callable[..., Any]:
    """``async with make_app(**settings) as app:`` a started app (storage open)."""
    import contextlib

    @contextlib.asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[Any]:
        app = create_app(make_config(**overrides))
        async with app.test_app() as test_app:
            yield test_app

    return make


@pytest.fixture
async def app(make_app: Callable[..., Any]) -> AsyncIterator[Any]:
    """The started app with default settings (a Quart ``TestApp``)."""
    async with make_app() as test_app:
        yield test_app


@pytest.fixture
def client(app: Any) -> Any:
    """A test client of `app`."""
    return app.test_client()


@pytest.fixture
def storage(app: Any) -> Storage:
    """The open storage of `app`."""
    return get_storage(app.app)


@pytest.fixture
def make_user(storage: Storage) -> Callable[..., Awaitable[Account]]:
    """``await make_user(password=None)``: a new user with a unique name."""

    async def make(password: str | None = None, name: str | None = None) -> Account:
        return await new_account(storage, password, name)

    return make


@pytest.fixture
async def user(make_user: Callable[..., Awaitable[Account]]) -> Account:
    """One fresh user (random token)."""
    return await make_user()


# -- real processes and faults ------------------------------------------------------------


@pytest.fixture(params=HTTP_SERVERS)
def http_server(request: pytest.FixtureRequest) -> list[str]:
    """The flags ``--http-server NAME`` for a server process, once per supported server."""
    if request.param == "uvicorn":
        pytest.importorskip("uvicorn")
    return ["--http-server", request.param]


@pytest.fixture(params=BACKENDS)
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A database nobody has used yet (MySQL: not even created), on both backends.

    For a server process to create, fill and be checked; the MySQL one is dropped at the end.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    server = request.getfixturevalue("mysql_server")
    name = f"blst_{uuid.uuid4().hex[:12]}"
    password = f":{server.password}" if server.password else ""
    try:
        yield f"mysql://{server.user}{password}@{server.host}:{server.port}/{name}"
    finally:
        conn = _mysql_connect(server)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            conn.close()


@pytest.fixture
def mysql_account(mysql_server: DatabaseURL) -> Iterator[tuple[str, str, str]]:
    """A MariaDB account of this test only, with a password and a database of its own.

    Yields ``(user, password, database)``; the account (from any host) may do anything in
    that database and nothing else. Both are dropped at the end.
    """
    user, password = f"blst_u{uuid.uuid4().hex[:8]}", "dbpw-" + uuid.uuid4().hex
    database = f"blst_{uuid.uuid4().hex[:12]}"
    hosts = ("localhost", "127.0.0.1", "%")
    conn = _mysql_connect(mysql_server)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
            for host in hosts:
                # hex characters only: safe inline (a '%' host rules out driver parameters)
                cur.execute(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'")
                cur.execute(f"GRANT ALL ON `{database}`.* TO '{user}'@'{host}'")
        yield user, password, database
    finally:
        with conn.cursor() as cur:
            for host in hosts:
                cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()


@pytest.fixture
async def mysql_proxy(mysql_server: DatabaseURL) -> AsyncIterator[Any]:
    """A `support.TCPProxy` in front of the MariaDB server, which the test can cut and restore."""
    from support import TCPProxy

    proxy = await TCPProxy(mysql_server.host, mysql_server.port).start()
    try:
        yield proxy
    finally:
        await proxy.close()


# -- alerts and the logging handler -------------------------------------------------------


@pytest.fixture
def receiver():
    """A fake Telegram Bot API and webhook receiver answering 200."""
    with Receiver() as fake:
        yield fake


@pytest.fixture
def attach() -> Iterator[Callable[..., tuple[Handler, logging.Logger]]]:
    """``handler, log = attach(url, user, token, **settings)`` on a fresh logger; closed after."""
    made: list[tuple[Handler, logging.Logger]] = []

    def make(url: str, user: str, token: str, **settings: Any) -> tuple[Handler, logging.Logger]:
        handler = Handler(url, user, token, **settings)
        log = logging.getLogger(f"handler_test.{uuid.uuid4().hex[:8]}")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)
        made.append((handler, log))
        return handler, log

    yield make
    for handler, log in made:
        log.removeHandler(handler)
        handler.close()
