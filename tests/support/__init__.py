"""The one support module of the tests: everything shared between test files lives here.

* `support.client`: in-process requests through the app's test client, accounts, and the
  contract's answer shapes (`post_logs`, `assert_error`, ...).
* `support.process`: the real thing as processes: `free_port`, `run_app` (the CLI, to
  completion), `AppProcess` and `ServerProcess` (in the background), raw `http`, and
  `HTTP_SERVERS` (every ``--http-server``).
* `support.database`: `add_user` for a server process; `rows_per_batch`, `events_per_name`
  read directly; `execute_sql` changes the database behind the server's back.
* `support.load`: `Load`, clients posting batches, and the check of what was stored.
* `support.events`: ingest keys and stored events of the event wire interfaces.
* `support.events_api`: requests to the native usage-events API (`post_events`, `read_json`,
  `assert_events_added`).
* `support.read_api`: `SEED`, the records the read API's filter and stats tests read, and
  `send_seed`.
* `support.api_fixtures`: the plugin of the `key` and `seeded` fixtures of those tests
  (``pytest_plugins = ["support.api_fixtures"]``).
* `support.faults`: `TCPProxy`, a database outage on demand (`ThreadedProxy` without a loop).
* `support.receiver`: `Receiver`, a fake Telegram Bot API or webhook receiving alerts.
* `support.alerts`: helpers of the alert tests (`tel_user`, `add_alert`, `post`, ...).
* `support.handler`: helpers of the logging handler's tests (`FakeServer`, `run_and_exit`,
  `wait_for`).
* `support.browser`: helpers of the viewer tests in Chromium; their fixtures are the plugin
  ``support.browser_fixtures`` (``pytest_plugins = ["support.browser_fixtures"]``).
* `support.tracker`: helpers of the usage tracker's browser tests (`EventUser`, `wait_until`,
  `centre`); their fixtures are in ``support.browser_fixtures`` too.
* `support.galera`: a real 3-node Galera cluster (`GaleraCluster`); one node's files, command
  line and process are `support.galera_node` (re-exported by `support.galera`); its fixtures
  are the plugin ``support.galera_fixtures`` (``galera_reaper.py`` is a script it runs).

Test modules import from here (``from support import post_logs``), never from each other.
"""

from support.alerts import (
    BOT_TOKEN,
    TEL_ID,
    add_alert,
    alert_settings,
    list_alerts,
    post,
    quiet_for,
    record,
    tel_user,
)
from support.client import (
    CLIENT_PATH,
    Account,
    assert_added,
    assert_error,
    client_body,
    client_headers,
    client_record,
    counting_quart,
    get_logs,
    log_rows,
    new_account,
    post_logs,
    read_headers,
    recent_logs,
)
from support.database import (
    add_user,
    events_per_name,
    execute_sql,
    rows_per_batch,
    write_locked,
)
from support.events import count_rows, key_name, new_key, no_leak, stored_events
from support.events_api import EVENTS_ADDED, assert_events_added, post_events, read_json
from support.faults import TCPProxy, ThreadedProxy
from support.handler import TOKEN, FakeServer, Seen, run_and_exit, wait_for
from support.load import Load, batch_body
from support.process import (
    HTTP_SERVERS,
    ROOT,
    AppProcess,
    Reply,
    ServerProcess,
    free_port,
    free_ports,
    half_sent_request,
    http,
    logger_rows,
    parse_reply,
    run_app,
)
from support.read_api import SEED, send_seed
from support.receiver import Received, Receiver

__all__ = [
    "BOT_TOKEN",
    "CLIENT_PATH",
    "EVENTS_ADDED",
    "HTTP_SERVERS",
    "ROOT",
    "SEED",
    "TEL_ID",
    "TOKEN",
    "Account",
    "AppProcess",
    "FakeServer",
    "Load",
    "Received",
    "Receiver",
    "Reply",
    "Seen",
    "ServerProcess",
    "TCPProxy",
    "ThreadedProxy",
    "add_alert",
    "add_user",
    "alert_settings",
    "assert_added",
    "assert_error",
    "assert_events_added",
    "batch_body",
    "client_body",
    "client_headers",
    "client_record",
    "count_rows",
    "counting_quart",
    "events_per_name",
    "execute_sql",
    "free_port",
    "free_ports",
    "get_logs",
    "half_sent_request",
    "http",
    "key_name",
    "list_alerts",
    "log_rows",
    "logger_rows",
    "new_account",
    "new_key",
    "no_leak",
    "parse_reply",
    "post",
    "post_events",
    "post_logs",
    "quiet_for",
    "read_headers",
    "read_json",
    "recent_logs",
    "record",
    "rows_per_batch",
    "run_and_exit",
    "run_app",
    "send_seed",
    "stored_events",
    "tel_user",
    "wait_for",
    "write_locked",
]
