"""A standard-library `logging.Handler` that ships records to a bot-logging-server.

``logging.getLogger().addHandler(Handler("http://127.0.0.1:5000", "alice", token))``; then
``log.warning("sku %s", "A-17")`` is stored as ``sku A-17``. It speaks the wire format of
``POST /send_logs`` (``docs/API.md``): one request per batch, ``{"data": {"user", "pid",
"p_name", "post_time", "logs": [{"level", "msg", "event_at", "p_description"}]}}`` with the
user's token in ``X-User-Token``. Compared with the LoggerBotLogging client
(``bot_logging.RemoteLogger``) it loses nothing it does not have to:

* ``msg`` is the record as the handler's formatter renders it (default ``%(message)s``): the
  arguments are applied and a traceback (``log.exception``) or stack (``stack_info``) follows
  the message; ``level`` is ``levelno``, ``p_description`` the logger's name, ``event_at``
  the record's own time (UTC, microseconds).
* `emit` only formats and queues; a daemon thread sends a batch when `batch_size` records are
  waiting or the oldest has waited `flush_interval` seconds. At most `max_queue` records are
  held (queued or being sent); past that new records are dropped and counted.
* Each batch carries an ``Idempotency-Key`` (a uuid4), the same on every retry of it. 503,
  429 and other transient answers (5xx, 403, 408) and network errors are retried with
  exponential back-off and jitter, honouring ``Retry-After`` (capped at `max_backoff`). A 413
  splits the batch in two. A 400 (or another answer no retry can fix) drops the batch, counts
  it and keeps the thread alive.
* At exit ``logging.shutdown()`` calls `flush` and `close`: the queued records are sent, but
  each waits at most `close_timeout` seconds (`flush` returns as soon as a delivery fails;
  requests `close` starts are cut to its deadline), so a process whose server is down still
  exits promptly.
* Nothing here raises into the application or blocks it: `emit`, `flush` and `close` swallow
  every error; problems go to `stats` and, like ``logging``'s own errors, one line to stderr
  (when ``logging.raiseExceptions`` is true).

The wire format and the HTTP request itself are in `bot_logging_server.handler_wire`.

Standard library only (``urllib``): this module and `bot_logging_server.handler_wire` import
nothing outside it, so the two files can be used without the server's dependencies.
`dictConfig` works too: ``{"class": "bot_logging_server.handler.Handler", "url": ..., "user":
..., "token": ...}``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
import threading
import time
import urllib.request
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from bot_logging_server.handler_wire import (
    PERMANENT_STATUSES,
    batch_body,
    post_batch,
    process_name,
    wire_record,
)

__all__ = ["Handler", "HandlerStats"]


@dataclass(frozen=True)
class HandlerStats:
    """What a `Handler` has done so far (a snapshot; see `Handler.stats`).

    Every record `emit` was given ends in exactly one of: ``queued`` (waiting or being sent),
    ``sent`` (the server answered 2xx), ``dropped_full`` (the queue held `max_queue` records),
    ``dropped_rejected`` (the server refused its batch for good, e.g. 400),
    ``dropped_unsent`` (not delivered by `close`'s deadline, or logged after `close`).
    ``requests`` counts HTTP attempts, ``retries`` the attempts that were repeats;
    ``last_error`` describes the last failure (status and the server's detail, or the
    network error), never the token.
    """

    queued: int
    sent: int
    requests: int
    retries: int
    dropped_full: int
    dropped_rejected: int
    dropped_unsent: int
    last_error: str | None

    @property
    def dropped(self) -> int:
        """Every record dropped, for whatever reason."""
        return self.dropped_full + self.dropped_rejected + self.dropped_unsent


class Handler(logging.Handler):
    """Send log records to a bot-logging-server's ``/send_logs`` in batches, in the background.

    Arguments: `url` is the server's base URL (``http://host:5000``; a URL ending in
    ``/send_logs`` is used as it is), `user` and `token` the account (`token` defaults to the
    ``LOGGER_TOKEN`` environment variable, as the LoggerBotLogging client). Keywords:
    `batch_size` records per request, at most (100); `flush_interval` seconds a record may
    wait for its batch to fill (5); `max_queue` records held at most (10,000); `timeout` per
    request (10 s); `close_timeout` the most `flush` and `close` wait (5 s); `max_backoff` the
    longest pause between retries (60 s); `p_name` the process name sent (default: this
    process's, as psutil names it). Raises ValueError for a bad setting.
    """

    def __init__(
        self,
        url: str,
        user: str,
        token: str | None = None,
        *,
        level: int | str = logging.NOTSET,
        batch_size: int = 100,
        flush_interval: float = 5.0,
        max_queue: int = 10_000,
        timeout: float = 10.0,
        close_timeout: float = 5.0,
        max_backoff: float = 60.0,
        p_name: str | None = None,
    ) -> None:
        """Check the settings; nothing connects and no thread starts until the first record."""
        super().__init__(level)
        token = token if token is not None else os.environ.get("LOGGER_TOKEN", "")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        if not isinstance(user, str) or not user:
            raise ValueError("user must be a non-empty string")
        if not token:
            raise ValueError("token is empty (pass token= or set LOGGER_TOKEN)")
        if batch_size < 1 or max_queue < 1:
            raise ValueError(f"batch_size and max_queue must be >= 1: {batch_size}, {max_queue}")
        if min(flush_interval, timeout, max_backoff) <= 0 or close_timeout < 0:
            raise ValueError("flush_interval, timeout and max_backoff must be > 0")
        base = url.rstrip("/")
        self.url = base if base.endswith("/send_logs") else base + "/send_logs"
        self.user = user
        self._token = token
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.timeout = timeout
        self.close_timeout = close_timeout
        self.max_backoff = max_backoff
        self.p_name = p_name or process_name()
        self._opener = urllib.request.build_opener()
        self._reset()

    def _reset(self) -> None:
        """Fresh queue, counters and no thread (at start, and in a forked child)."""
        self._pid = os.getpid()
        self._cond = threading.Condition(threading.RLock())
        self._pending: deque[tuple[float, dict[str, Any]]] = deque()
        self._thread: threading.Thread | None = None
        self._accepted = 0  # records taken into the queue
        self._done = 0  # of those, sent or dropped
        self._flush_to = 0  # a flush asks for everything up to this count now
        self._closing = False
        self._deadline = 0.0
        self._failing = False
        self._full = False
        self._abandoned = False
        self._counts = dict.fromkeys(
            ("sent", "requests", "retries", "dropped_full", "dropped_rejected", "dropped_unsent"),
            0,
        )
        self._last_error: str | None = None

    def _same_process(self) -> None:
        # After a fork the sender thread is gone and the queue is the parent's (the parent
        # sends it): start over, so the child neither hangs nor sends duplicates.
        if self._pid != os.getpid():
            self._reset()

    @property
    def stats(self) -> HandlerStats:
        """A snapshot of what happened to the records so far (`HandlerStats`)."""
        with self._cond:
            return HandlerStats(
                queued=self._accepted - self._done,
                last_error=self._last_error,
                **self._counts,
            )

    # -- the application's side: format, queue, return --------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        """Format `record` now (its arguments, traceback) and queue it; never block or raise."""
        try:
            if threading.current_thread() is self._thread:
                return  # the sender's own records (from urllib, say) would feed a loop
            entry = self._entry(record)
            self._same_process()
            with self._cond:
                if self._closing:
                    self._counts["dropped_unsent"] += 1
                    return
                overflow = self._accepted - self._done >= self.max_queue
                if overflow:
                    self._counts["dropped_full"] += 1
                    first_drop, self._full = not self._full, True
                else:
                    self._full = False
                    self._pending.append((time.monotonic(), entry))
                    self._accepted += 1
                    if self._thread is None:
                        thread = threading.Thread(
                            target=self._run, name="bot-logging-handler", daemon=True
                        )
                        thread.start()  # may fail at interpreter shutdown; the next emit retries
                        self._thread = thread
                    if len(self._pending) >= self.batch_size:
                        self._cond.notify_all()
            if overflow and first_drop:  # reported outside the lock: stderr may be slow
                self._report(f"queue full ({self.max_queue} records held), dropping records")
        except Exception:
            self.handleError(record)

    def _entry(self, record: logging.LogRecord) -> dict[str, Any]:
        """The wire record: ``{"level", "msg", "event_at", "p_description"}``."""
        try:
            msg = self.format(record)
        except Exception as exc:
            # A bad format string ("%d" with a str) must not lose the record: send it raw.
            msg = f"{record.msg!s} (arguments {record.args!r}; formatting failed: {exc!r})"
        return wire_record(record, msg)

    def flush(self) -> None:
        """Send what is queued now; wait until it is delivered or dropped, at most `close_timeout`.

        Returns early when a delivery is failing (the sender keeps retrying in the background),
        so a process whose server is down is not held up twice at exit (flush, then close).
        """
        try:
            self._same_process()
            with self._cond:
                if self._thread is None:
                    return
                target = self._accepted
                self._flush_to = max(self._flush_to, target)
                self._cond.notify_all()
                end = time.monotonic() + self.close_timeout
                while self._done < target and not self._failing and self._thread.is_alive():
                    left = end - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
        except Exception:
            pass  # never raise into the application (logging.shutdown calls this at exit)

    def close(self) -> None:
        """Deliver what is queued within `close_timeout` seconds, then stop the sender thread.

        Records still undelivered at the deadline count as ``dropped_unsent``; so do records
        logged after `close`. Safe to call twice.
        """
        try:
            self._same_process()
            with self._cond:
                if not self._closing:
                    self._closing = True
                    self._deadline = time.monotonic() + self.close_timeout
                self._cond.notify_all()
                thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                # The sender ends by the deadline itself (every wait and request is cut to it);
                # the grace covers a request finishing. A DNS lookup ignores timeouts: then we
                # leave the daemon thread behind rather than hang the exit.
                thread.join(max(0.0, self._deadline - time.monotonic()) + 1.0)
            with self._cond:
                left = 0 if self._abandoned else self._accepted - self._done
                if left:
                    # The sender is stuck in a request: what it holds is lost, say so now.
                    self._settle(left, "dropped_unsent")
                    self._pending.clear()
                    self._abandoned = True
            if left:
                self._report(f"{left} records not delivered before close's deadline; dropped")
        except Exception:
            pass
        finally:
            super().close()

    # -- the sender thread ------------------------------------------------------------------

    def _run(self) -> None:
        """Take batches off the queue and deliver them until `close` (the daemon thread)."""
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._deliver(batch)
            except Exception as exc:  # a bug here must not kill the thread (and every later log)
                self._settle(len(batch), "dropped_rejected", f"{type(exc).__name__}: {exc}")

    def _next_batch(self) -> list[dict[str, Any]] | None:
        """Wait for a full batch, the oldest record's interval, a flush or close; None: stop."""
        with self._cond:
            while True:
                if self._closing and time.monotonic() >= self._deadline:
                    left = len(self._pending)
                    self._pending.clear()
                    if left:
                        self._settle(left, "dropped_unsent")
                    break
                if self._pending:
                    due = self._pending[0][0] + self.flush_interval
                    now = time.monotonic()
                    if (
                        len(self._pending) >= self.batch_size
                        or self._closing
                        or self._flush_to > self._done
                        or now >= due
                    ):
                        take = min(self.batch_size, len(self._pending))
                        return [self._pending.popleft()[1] for _ in range(take)]
                    self._cond.wait(due - now)
                elif self._closing:
                    return None
                else:
                    self._cond.wait()
        if left:
            self._report(f"{left} records not delivered before close's deadline; dropped")
        return None

    def _deliver(self, records: list[dict[str, Any]]) -> None:
        """POST one batch until it is accepted, refused for good, or the close deadline passes."""
        key = str(uuid.uuid4())  # the same on every retry: the server stores the batch once
        body = batch_body(self.user, self.p_name, records)
        attempt = 0
        while True:
            timeout = self._request_timeout()
            if timeout is None:
                self._settle(len(records), "dropped_unsent", self._last_error)
                return
            status, retry_after, error = post_batch(
                self._opener, self.url, self._token, body, key, timeout
            )
            with self._cond:
                self._counts["requests"] += 1
                self._counts["retries"] += attempt > 0
            if status is not None and 200 <= status < 300:
                self._recovered()
                self._settle(len(records), "sent")
                return
            if status == 413 and len(records) > 1:
                half = len(records) // 2
                self._deliver(records[:half])
                self._deliver(records[half:])
                return
            if status in PERMANENT_STATUSES:
                self._recovered()
                self._settle(len(records), "dropped_rejected", error)
                self._report(f"server refused a batch of {len(records)} records ({error}); dropped")
                return
            self._failed(error)
            attempt += 1
            if retry_after is not None:
                delay = min(retry_after, self.max_backoff)
            else:
                delay = min(self.max_backoff, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            if not self._pause(delay):
                self._settle(len(records), "dropped_unsent", error)
                return

    # -- bookkeeping ------------------------------------------------------------------------

    def _request_timeout(self) -> float | None:
        """`timeout`, cut to what is left before close's deadline; None once it has passed."""
        with self._cond:
            if not self._closing:
                return self.timeout
            left = self._deadline - time.monotonic()
            return min(self.timeout, left) if left > 0.05 else None

    def _pause(self, delay: float) -> bool:
        """Sleep `delay` seconds before a retry; False when that would pass close's deadline."""
        end = time.monotonic() + delay
        with self._cond:
            while True:
                if self._closing and end > self._deadline:
                    return False
                left = end - time.monotonic()
                if left <= 0:
                    return True
                self._cond.wait(left)  # woken by close, to check the deadline

    def _settle(self, count: int, outcome: str, error: str | None = None) -> None:
        with self._cond:
            if self._abandoned:
                return  # close counted these already
            self._counts[outcome] += count
            self._done += count
            if error:
                self._last_error = error
            self._cond.notify_all()

    def _failed(self, error: str) -> None:
        with self._cond:
            self._last_error = error
            started, self._failing = not self._failing, True
            self._cond.notify_all()  # a flush waiting for this batch stops waiting
        if started:
            self._report(f"delivery failed ({error}); retrying")

    def _recovered(self) -> None:
        with self._cond:
            was_failing, self._failing = self._failing, False
        if was_failing:
            self._report("delivering again")

    def _report(self, text: str) -> None:
        """One line to stderr, as ``logging`` reports its own errors (never the token).

        Never called with the lock held: a slow stderr must not hold up `emit`.
        """
        if logging.raiseExceptions and sys.stderr is not None:
            with contextlib.suppress(Exception):
                sys.stderr.write(f"bot_logging_server.handler: {text}\n")
