"""The alerts of one server process: match after each commit, write the matches, send.

Three steps, none of them on the ingest path:

1. **Match** (`AlertService.observe`, the storage's stored-logs hook): after a batch is
   committed, each of its user's rules (kept in memory, re-read every `RULES_SECONDS`) is
   tested against the batch; a match adds to this process's count for the rule and keeps
   the first few records. No database work, no await.
2. **Write** (every tick): the counts gathered since the last tick go to the rules' windows
   in the database, in one transaction (`Storage.add_alert_matches`).
3. **Send** (every tick): the windows due are claimed, one process each
   (`Storage.claim_alert_window`), and delivered in the background, a few at a time. A
   failed attempt is tried again after ``--alert-retry`` seconds, doubled at each attempt
   (at most `MAX_BACKOFF_SECONDS`, or longer when the receiver asks), `MAX_ATTEMPTS` times
   in all; the rule keeps the last outcome and error for ``GET /api/alerts``.

A tick is a quarter of the window (at most a second). A window is due a grace after it
closes, two ticks and a half second, for matches other processes still hold. Stopping, the
service writes what it holds and gives its deliveries `STOP_SECONDS`; one still running is
given back (as not attempted) for the next process to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from quart import Quart

from bot_logging_server.alerts.channels import TIMEOUT_SECONDS, DeliveryFailed, Sender
from bot_logging_server.alerts.rules import MAX_LINES, CompiledRule, line_of
from bot_logging_server.config import Config
from bot_logging_server.lograte import RateLimitedLog
from bot_logging_server.metrics import count_alert_delivery
from bot_logging_server.storage import (
    AlertDelivery,
    LogRow,
    Matches,
    Storage,
    StorageError,
    utc_now,
)

__all__ = [
    "KEEP_DAYS",
    "MAX_ATTEMPTS",
    "MAX_BACKOFF_SECONDS",
    "RULES_SECONDS",
    "STOP_SECONDS",
    "AlertService",
    "Timing",
]

log = logging.getLogger(__name__)
# A database outage fails every tick: one line per distinct fault per interval, not per tick.
_faults = RateLimitedLog(log)

#: Seconds between two readings of the rules (a rule added by another process takes effect
#: within this).
RULES_SECONDS = 2.0
#: Attempts of one delivery before it is given up.
MAX_ATTEMPTS = 10
#: The longest wait between two attempts.
MAX_BACKOFF_SECONDS = 3600.0
#: Days a delivered (or abandoned) window is kept.
KEEP_DAYS = 7
#: Deliveries one process runs at once.
_IN_FLIGHT = 8
#: Seconds a stopping process gives its deliveries.
STOP_SECONDS = 3.0
#: Seconds between two deletions of old windows.
_FORGET_SECONDS = 3600.0


@dataclass(frozen=True)
class Timing:
    """The service's periods, derived from the window (``--alert-window``) and the retry
    (``--alert-retry``) settings."""

    window: timedelta
    tick: float
    grace: timedelta
    retry: float
    lease: timedelta

    @classmethod
    def of(cls, config: Config) -> Timing:
        """The periods for `config`."""
        tick = min(1.0, config.alert_window / 4)
        return cls(
            window=timedelta(seconds=config.alert_window),
            tick=tick,
            grace=timedelta(seconds=2 * tick + 0.5),
            retry=config.alert_retry,
            # Longer than a delivery may take, so a live sender never loses its claim.
            lease=timedelta(seconds=3 * TIMEOUT_SECONDS),
        )

    def backoff(self, attempt: int, asked: float | None = None) -> float:
        """Seconds before the attempt after failed `attempt` (1 for the first): the retry
        doubled each time, at least what the receiver `asked`, at most an hour."""
        wait = self.retry * 2 ** (attempt - 1)
        return min(MAX_BACKOFF_SECONDS, max(wait, asked or 0.0))


class _Gathered:
    """This process's matches of one rule since the last write."""

    __slots__ = ("count", "first_at", "last_at", "lines")

    def __init__(self, first_at: datetime) -> None:
        self.count = 0
        self.first_at = first_at
        self.last_at = first_at
        self.lines: list[dict] = []

    def add(self, hits: list[LogRow], received_at: datetime) -> None:
        self.count += len(hits)
        self.last_at = max(self.last_at, received_at)
        room = MAX_LINES - len(self.lines)
        if room > 0:
            self.lines.extend(line_of(row, received_at) for row in hits[:room])

    def merge(self, later: _Gathered) -> None:
        """Take in `later`'s matches (gathered after this one's)."""
        self.count += later.count
        self.last_at = max(self.last_at, later.last_at)
        self.lines = (self.lines + later.lines)[:MAX_LINES]

    def matches(self) -> Matches:
        return Matches(self.count, self.first_at, self.last_at, list(self.lines))


class AlertService:
    """Matches, writes and sends the alerts of one server process (see the module)."""

    def __init__(self, storage: Storage, config: Config, app: Quart | None = None) -> None:
        """Serve alerts from `storage` with `config`'s settings; `app` counts deliveries."""
        self._storage = storage
        self._config = config
        self._app = app
        self.timing = Timing.of(config)
        self._rules: dict[int, list[CompiledRule]] = {}
        self._gathered: dict[int, _Gathered] = {}
        self._deliveries: dict[asyncio.Task[None], AlertDelivery] = {}
        self._sender: Sender | None = None
        self.stopping = asyncio.Event()

    # -- 1. match ---------------------------------------------------------------------------

    async def refresh_rules(self) -> None:
        """Read every rule again (after a change, and every `RULES_SECONDS`)."""
        rules: dict[int, list[CompiledRule]] = {}
        for rule in await self._storage.alert_rules(pending=False):
            rules.setdefault(rule.user_id, []).append(CompiledRule(rule))
        self._rules = rules

    def observe(self, user_id: int, rows: Sequence[LogRow], received_at: datetime) -> None:
        """The stored-logs hook: count a committed batch's matches of its user's rules."""
        rules = self._rules.get(user_id)
        if not rules:
            return
        for rule in rules:
            hits = rule.select(rows)
            if hits:
                gathered = self._gathered.get(rule.id)
                if gathered is None:
                    gathered = self._gathered[rule.id] = _Gathered(received_at)
                gathered.add(hits, received_at)

    # -- 2. write ---------------------------------------------------------------------------

    async def write(self) -> None:
        """Write the matches gathered so far to their windows; kept for the next try when
        the database fails (and the error raised)."""
        if not self._gathered:
            return
        taken, self._gathered = self._gathered, {}
        try:
            await self._storage.add_alert_matches(
                {rule_id: gathered.matches() for rule_id, gathered in taken.items()},
                self.timing.window,
                self.timing.grace,
                MAX_LINES,
            )
        except BaseException:
            for rule_id, later in self._gathered.items():
                if rule_id in taken:
                    taken[rule_id].merge(later)
                else:
                    taken[rule_id] = later
            self._gathered = taken
            raise

    # -- 3. send ----------------------------------------------------------------------------

    async def dispatch(self) -> int:
        """Claim the windows due now (as many as there is room for) and start sending them;
        return how many were started."""
        room = _IN_FLIGHT - len(self._deliveries)
        if room <= 0 or self._sender is None:
            return 0
        now = utc_now()
        started = 0
        for window_id in await self._storage.due_alert_windows(now, room):
            delivery = await self._storage.claim_alert_window(window_id, now, self.timing.lease)
            if delivery is None:
                continue  # another process claimed it first
            task = asyncio.get_running_loop().create_task(self._deliver(delivery))
            self._deliveries[task] = delivery
            task.add_done_callback(self._deliveries.pop)
            started += 1
        return started

    async def _deliver(self, delivery: AlertDelivery) -> None:
        assert self._sender is not None
        channel = delivery.rule.channel
        try:
            try:
                await self._sender.send(delivery)
            except DeliveryFailed:
                raise
            except Exception as exc:
                log.exception("alert %d: delivery failed unexpectedly", delivery.rule.id)
                raise DeliveryFailed(f"internal error ({type(exc).__name__})") from None
        except DeliveryFailed as exc:
            count_alert_delivery(channel, "failed", self._app)
            retry_at = None
            if delivery.attempt < MAX_ATTEMPTS:
                wait = self.timing.backoff(delivery.attempt, exc.retry_after)
                retry_at = utc_now() + timedelta(seconds=wait)
            log.warning(
                "alert %d: %s delivery %d failed (attempt %d: %s); %s",
                delivery.rule.id,
                channel,
                delivery.window_id,
                delivery.attempt,
                exc,
                "given up" if retry_at is None else f"next try at {retry_at:%H:%M:%S} UTC",
            )
            await self._finish(delivery, str(exc), retry_at)
            return
        count_alert_delivery(channel, "sent", self._app)
        await self._finish(delivery, None, None)

    async def _finish(
        self, delivery: AlertDelivery, error: str | None, retry_at: datetime | None
    ) -> None:
        try:
            await self._storage.finish_alert_delivery(delivery, error=error, retry_at=retry_at)
        except StorageError as exc:
            # The claim runs out and the window is sent again: at least once.
            log.warning("alert %d: outcome not recorded (%s)", delivery.rule.id, exc)

    # -- the background loop ----------------------------------------------------------------

    async def pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less when the service is asked to stop meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def run(self, sender: Sender) -> None:
        """Every tick: read the rules when due, write the matches, send what is due; until
        `stopping` is set, then write the last matches and let the deliveries end."""
        self._sender = sender
        read_rules_at = forget_at = 0.0
        while not self.stopping.is_set():
            try:
                if time.monotonic() >= read_rules_at:
                    await self.refresh_rules()
                    read_rules_at = time.monotonic() + RULES_SECONDS
                await self.write()
                await self.dispatch()
                if time.monotonic() >= forget_at:
                    await self._storage.forget_alert_windows(utc_now() - timedelta(days=KEEP_DAYS))
                    forget_at = time.monotonic() + _FORGET_SECONDS
            except StorageError as exc:
                _faults.log(
                    logging.WARNING,
                    str(exc),
                    "alerts: %s; trying again every %g s",
                    exc,
                    self.timing.tick,
                )
            await self.pause(self.timing.tick)
        await self._stop()

    async def _stop(self) -> None:
        try:
            await self.write()
        except StorageError as exc:
            log.warning("alerts: matches not written at shutdown (%s)", exc)
        if not self._deliveries:
            return
        _, running = await asyncio.wait(list(self._deliveries), timeout=STOP_SECONDS)
        for task in running:
            delivery = self._deliveries.get(task)
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            if delivery is not None:
                with contextlib.suppress(StorageError):
                    await self._storage.release_alert_delivery(delivery)
