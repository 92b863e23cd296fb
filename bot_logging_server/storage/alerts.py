"""The alert tables: ``alert_rules`` (what to watch, where to send, how the last delivery
went) and ``alert_windows`` (one rule's matches gathered into one message, and its delivery).
The values these take and give (`AlertRule`, `Matches`, `AlertDelivery`, `WindowState`)
are `storage.alert_records`.

Written once for every backend (see `storage.dialect.Dialect`). Any number of processes
(``--workers N``, several servers) share these tables without a lock of their own:

* Matches join their rule's newest window with a conditional UPDATE (``state = 'open'``,
  and the window not yet closed). When there is none, the next window is INSERTed with the
  rule's next ``seq``; ``(rule_id, seq)`` is unique, so of two processes opening it at once
  one gets `DuplicateKey`, reads again and joins the other's window.
* A window is due at ``due_at`` (its end plus a grace for late matches, or the time of its
  next retry). A process sends it only after claiming it: a conditional UPDATE that sets
  ``state = 'sending'`` and moves ``due_at`` a lease ahead, and counts the attempt. Of the
  processes polling at once exactly one changes the row; the others see it claimed. The
  attempt number fences the result: a sender whose lease ran out (it hung; another process
  claimed the window again) cannot record its outcome over the newer attempt's.
* A window is thus sent once, unless its sender dies between the receiver's answer and the
  recording of the outcome: then it is sent again when the lease ends (at least once; the
  ``X-Alert-Delivery`` id lets a webhook receiver drop the repeat).

The dispatcher, the matching and the messages are `bot_logging_server.alerts`.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta
from typing import Any

import orjson

from bot_logging_server.storage.alert_records import (
    PENDING_STATES,
    AlertDelivery,
    AlertRule,
    Matches,
    WindowState,
)
from bot_logging_server.storage.base import (
    Conflict,
    DuplicateKey,
    StorageError,
    Table,
    Transaction,
    UserNotFound,
    utc_now,
)

__all__ = ["AlertRuleLimit", "AlertTable"]


#: How many times adding matches is tried again after meeting another process's change.
_ADD_ATTEMPTS = 8
#: The longest error text kept (on the window and on the rule).
_ERROR_CHARS = 1000

_RULE_COLUMNS = (
    "id, user_id, min_level, p_name, p_description, msg_text, channel, url, secret, "
    "created_at, last_status, last_error, last_attempt_at, last_sent_at"
)


class AlertRuleLimit(StorageError):
    """The user has as many alert rules as allowed (the limit is the argument)."""


def _merge_lines(stored: str, new: list[dict[str, Any]], keep: int) -> str:
    """The first `keep` lines of the stored ones and `new`, in order of arrival."""
    lines = orjson.loads(stored) + new
    lines.sort(key=lambda line: line.get("received_at", ""))
    return orjson.dumps(lines[:keep]).decode()


class AlertTable(Table):
    """The queries of ``alert_rules`` and ``alert_windows``."""

    # -- rules ------------------------------------------------------------------------------

    def _rule(self, row: Any, pending: int = 0) -> AlertRule:
        decode = self.db.dialect.decode_time

        def maybe(value: Any) -> datetime | None:
            return None if value is None else decode(value)

        return AlertRule(
            int(row[0]),
            int(row[1]),
            int(row[2]),
            row[3],
            row[4],
            row[5],
            row[6],
            row[7],
            row[8],
            decode(row[9]),
            row[10],
            row[11],
            maybe(row[12]),
            maybe(row[13]),
            pending,
        )

    async def create_alert_rule(
        self,
        user_id: int,
        *,
        min_level: int,
        p_name: str | None,
        p_description: str | None,
        text: str | None,
        channel: str,
        url: str | None,
        secret: str | None,
        max_rules: int,
    ) -> AlertRule:
        """Store a new rule of `user_id` and return it.

        Raises `UserNotFound` when the user is gone, `AlertRuleLimit` when the user has
        `max_rules` rules already.
        """
        now = utc_now()
        async with self.db.transaction() as tx:
            # Locks the user's row: two creations at once count one after the other.
            found = await tx.fetch(
                f"SELECT id FROM users WHERE id = ?{self.db.dialect.lock_rows}", (user_id,)
            )
            if not found:
                raise UserNotFound(str(user_id))
            rows = await tx.fetch("SELECT COUNT(*) FROM alert_rules WHERE user_id = ?", (user_id,))
            if int(rows[0][0]) >= max_rules:
                raise AlertRuleLimit(max_rules)
            done = await tx.execute(
                "INSERT INTO alert_rules (user_id, min_level, p_name, p_description, msg_text, "
                "channel, url, secret, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user_id,
                    min_level,
                    p_name,
                    p_description,
                    text,
                    channel,
                    url,
                    secret,
                    self.db.dialect.encode_time(now),
                ),
            )
        assert done.lastrowid is not None
        return AlertRule(
            done.lastrowid,
            user_id,
            min_level,
            p_name,
            p_description,
            text,
            channel,
            url,
            secret,
            now,
        )

    async def alert_rules(
        self, user_id: int | None = None, *, pending: bool = True
    ) -> list[AlertRule]:
        """The rules of `user_id` (None: of every user), by id; with `pending`, each with
        how many of its windows are not delivered yet."""
        where, args = ("WHERE user_id = ?", (user_id,)) if user_id is not None else ("", ())
        rows = await self.db.fetch(
            f"SELECT {_RULE_COLUMNS} FROM alert_rules {where} ORDER BY id", args
        )
        counts: dict[int, int] = {}
        if pending and rows:
            marks = ", ".join("?" * len(PENDING_STATES))
            counted = await self.db.fetch(
                "SELECT w.rule_id, COUNT(*) FROM alert_windows w "
                "JOIN alert_rules r ON r.id = w.rule_id "
                f"WHERE w.state IN ({marks}) {'AND r.user_id = ?' if args else ''} "
                "GROUP BY w.rule_id",
                (*PENDING_STATES, *args),
            )
            counts = {int(rule_id): int(count) for rule_id, count in counted}
        return [self._rule(row, counts.get(int(row[0]), 0)) for row in rows]

    async def remove_alert_rule(self, rule_id: int, user_id: int | None = None) -> bool:
        """Delete a rule (only `user_id`'s, when given) and its windows; False if none was."""
        async with self.db.transaction() as tx:
            if user_id is None:
                done = await tx.execute("DELETE FROM alert_rules WHERE id = ?", (rule_id,))
            else:
                done = await tx.execute(
                    "DELETE FROM alert_rules WHERE id = ? AND user_id = ?", (rule_id, user_id)
                )
            if done.rowcount:
                await tx.execute("DELETE FROM alert_windows WHERE rule_id = ?", (rule_id,))
        return bool(done.rowcount)

    # -- windows: gathering -----------------------------------------------------------------

    async def add_alert_matches(
        self, found: dict[int, Matches], window: timedelta, grace: timedelta, keep: int
    ) -> None:
        """Add each rule's matches (`found`: by rule id) to its open window, or open the
        rule's next window with them; one transaction for all when nothing interferes.

        A window opens at its first match and gathers for `window`; it is due `grace` after
        its end (for matches other processes have not written yet). `keep`: lines kept per
        window. Safe against any number of processes doing the same at once (see the
        module's docstring); matches of a rule removed meanwhile are dropped.
        """
        left = dict(found)
        for attempt in range(_ADD_ATTEMPTS):
            try:
                async with self.db.transaction() as tx:
                    newest = await self._newest_windows(tx, list(left))
                    # In rule order: two processes meet on rows in the same order (no
                    # deadlock between them, only a wait).
                    left = {
                        rule_id: matches
                        for rule_id, matches in sorted(left.items())
                        if rule_id in newest  # else the rule was removed: dropped
                        and not await self._add_matches(
                            tx, rule_id, newest[rule_id], matches, window, grace, keep
                        )
                    }
            except (DuplicateKey, Conflict):
                pass  # another process opened a window, or met ours: read again
            if not left:
                return
            await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise StorageError(f"alert matches not added after {_ADD_ATTEMPTS} tries")

    async def _newest_windows(self, tx: Transaction, rule_ids: list[int]) -> dict[int, Any]:
        """For each rule of `rule_ids` that exists: its newest window's ``(id, seq,
        closes_at, state, first_lines)``, or None when it has none yet (one statement)."""
        marks = ", ".join("?" * len(rule_ids))
        rows = await tx.fetch(
            "SELECT r.id, w.id, w.seq, w.closes_at, w.state, w.first_lines FROM alert_rules r "
            "LEFT JOIN alert_windows w ON w.rule_id = r.id AND w.seq = "
            "(SELECT MAX(seq) FROM alert_windows m WHERE m.rule_id = r.id) "
            f"WHERE r.id IN ({marks})",
            rule_ids,
        )
        return {int(row[0]): (row[1:] if row[1] is not None else None) for row in rows}

    async def _add_matches(
        self,
        tx: Transaction,
        rule_id: int,
        newest: Any,
        found: Matches,
        window: timedelta,
        grace: timedelta,
        keep: int,
    ) -> bool:
        """Add one rule's matches in `tx` (`newest`: its newest window, or None); False
        when another process changed that window between our read and our write (nothing
        of these matches is written then)."""
        encode, decode = self.db.dialect.encode_time, self.db.dialect.decode_time
        if newest and newest[3] == WindowState.OPEN and found.first_at < decode(newest[2]):
            window_id, stored = newest[0], newest[4]
            last = encode(found.last_at)
            sql = (
                "UPDATE alert_windows SET match_count = match_count + ?, "
                "last_at = CASE WHEN last_at < ? THEN ? ELSE last_at END"
            )
            args: list[Any] = [found.count, last, last]
            if found.lines and len(orjson.loads(stored)) < keep:
                # Only while the stored lines are still what we read (compare and set).
                sql += ", first_lines = ? WHERE id = ? AND state = ? AND first_lines = ?"
                args += [_merge_lines(stored, found.lines, keep), window_id]
                args += [WindowState.OPEN, stored]
            else:
                sql += " WHERE id = ? AND state = ?"
                args += [window_id, WindowState.OPEN]
            done = await tx.execute(sql, args)
            return done.rowcount == 1
        seq = int(newest[1]) + 1 if newest else 1
        closes = found.first_at + window
        await tx.execute(
            "INSERT INTO alert_windows (rule_id, seq, opened_at, closes_at, last_at, "
            "match_count, first_lines, state, attempts, due_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (
                rule_id,
                seq,
                encode(found.first_at),
                encode(closes),
                encode(found.last_at),
                found.count,
                orjson.dumps(found.lines[:keep]).decode(),
                WindowState.OPEN,
                encode(closes + grace),
            ),
        )
        return True

    # -- windows: delivering ----------------------------------------------------------------

    async def due_alert_windows(self, now: datetime, limit: int) -> list[int]:
        """Ids of up to `limit` windows due at `now` (open and over, to retry, or claimed by
        a process whose lease ran out), the longest due first."""
        marks = ", ".join("?" * len(PENDING_STATES))
        rows = await self.db.fetch(
            f"SELECT id FROM alert_windows WHERE state IN ({marks}) AND due_at <= ? "
            "ORDER BY due_at LIMIT ?",
            (*PENDING_STATES, self.db.dialect.encode_time(now), limit),
        )
        return [int(row[0]) for row in rows]

    async def claim_alert_window(
        self, window_id: int, now: datetime, lease: timedelta
    ) -> AlertDelivery | None:
        """Claim a due window for one delivery attempt, lasting until ``now + lease``.

        None when it is not due any more (another process claimed it first, or it is done),
        or when its rule or user is gone (the window is deleted then).
        """
        encode, decode = self.db.dialect.encode_time, self.db.dialect.decode_time
        marks = ", ".join("?" * len(PENDING_STATES))
        async with self.db.transaction() as tx:
            done = await tx.execute(
                "UPDATE alert_windows SET state = ?, attempts = attempts + 1, due_at = ? "
                f"WHERE id = ? AND state IN ({marks}) AND due_at <= ?",
                (WindowState.SENDING, encode(now + lease), window_id, *PENDING_STATES, encode(now)),
            )
            if done.rowcount != 1:
                return None
            rows = await tx.fetch(
                "SELECT w.opened_at, w.closes_at, w.last_at, w.match_count, w.first_lines, "
                "w.attempts, u.username, u.tel_id, "
                + ", ".join("r." + c for c in _RULE_COLUMNS.split(", "))
                + " FROM alert_windows w JOIN alert_rules r ON r.id = w.rule_id "
                "JOIN users u ON u.id = r.user_id WHERE w.id = ?",
                (window_id,),
            )
            if not rows:
                await tx.execute("DELETE FROM alert_windows WHERE id = ?", (window_id,))
                return None
        row = rows[0]
        return AlertDelivery(
            window_id=window_id,
            rule=self._rule(row[8:]),
            username=row[6],
            tel_id=None if row[7] is None else int(row[7]),
            opened_at=decode(row[0]),
            closes_at=decode(row[1]),
            last_at=decode(row[2]),
            count=int(row[3]),
            lines=orjson.loads(row[4]),
            attempt=int(row[5]),
        )

    async def finish_alert_delivery(
        self,
        delivery: AlertDelivery,
        *,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> bool:
        """Record an attempt's outcome on the window and on its rule.

        `error` None: sent. Else failed: tried again at `retry_at`, or given up when that is
        None. Returns False (and records nothing) when the window is no longer claimed by
        this attempt (the lease ran out and another process took it over).
        """
        now = utc_now()
        encode = self.db.dialect.encode_time
        error = None if error is None else error[:_ERROR_CHARS]
        if error is None:
            state, status = WindowState.SENT, "sent"
        elif retry_at is not None:
            state, status = WindowState.RETRY, "retrying"
        else:
            state, status = WindowState.FAILED, "failed"
        async with self.db.transaction() as tx:
            done = await tx.execute(
                "UPDATE alert_windows SET state = ?, due_at = ?, last_error = ?, sent_at = ? "
                "WHERE id = ? AND state = ? AND attempts = ?",
                (
                    state,
                    encode(retry_at or now),
                    error,
                    encode(now) if error is None else None,
                    delivery.window_id,
                    WindowState.SENDING,
                    delivery.attempt,
                ),
            )
            if done.rowcount != 1:
                return False
            sent = ", last_sent_at = ?" if error is None else ""
            await tx.execute(
                f"UPDATE alert_rules SET last_status = ?, last_error = ?, last_attempt_at = ?"
                f"{sent} WHERE id = ?",
                (
                    status,
                    error,
                    encode(now),
                    *((encode(now),) if error is None else ()),
                    delivery.rule.id,
                ),
            )
        return True

    async def release_alert_delivery(self, delivery: AlertDelivery) -> None:
        """Give a claimed window back at once, as not attempted (a stopping server)."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE alert_windows SET state = ?, attempts = attempts - 1, due_at = ? "
                "WHERE id = ? AND state = ? AND attempts = ?",
                (
                    WindowState.RETRY,
                    self.db.dialect.encode_time(utc_now()),
                    delivery.window_id,
                    WindowState.SENDING,
                    delivery.attempt,
                ),
            )

    async def forget_alert_windows(self, before: datetime) -> int:
        """Delete delivered and abandoned windows that closed before `before`; return how many."""
        async with self.db.transaction() as tx:
            done = await tx.execute(
                "DELETE FROM alert_windows WHERE state IN (?, ?) AND closes_at < ?",
                (WindowState.SENT, WindowState.FAILED, self.db.dialect.encode_time(before)),
            )
        return done.rowcount
