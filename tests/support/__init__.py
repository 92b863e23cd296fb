"""The one support module of the tests: everything shared between test files lives here.

* `support.client`: in-process requests through the app's test client, accounts, and the
  contract's answer shapes (`post_logs`, `assert_error`, ...).
* `support.process`: the real thing as processes: `free_port`, `run_app` (the CLI, to
  completion), `ServerProcess` (serving), raw `http`.
* `support.database`: `add_user` for a server process, `rows_per_batch` read directly.
* `support.load`: `Load`, clients posting batches, and the check of what was stored.
* `support.faults`: `TCPProxy`, a database outage on demand.

Test modules import from here (``from support import post_logs``), never from each other.
"""

from support.client import (
    CLIENT_PATH,
    Account,
    assert_added,
    assert_error,
    client_body,
    client_headers,
    client_record,
    get_logs,
    new_account,
    post_logs,
    read_headers,
)
from support.database import add_user, rows_per_batch
from support.faults import TCPProxy
from support.load import Load, batch_body
from support.process import (
    ROOT,
    Reply,
    ServerProcess,
    free_port,
    half_sent_request,
    http,
    parse_reply,
    run_app,
)

__all__ = [
    "CLIENT_PATH",
    "ROOT",
    "Account",
    "Load",
    "Reply",
    "ServerProcess",
    "TCPProxy",
    "add_user",
    "assert_added",
    "assert_error",
    "batch_body",
    "client_body",
    "client_headers",
    "client_record",
    "free_port",
    "get_logs",
    "half_sent_request",
    "http",
    "new_account",
    "parse_reply",
    "post_logs",
    "read_headers",
    "rows_per_batch",
    "run_app",
]
