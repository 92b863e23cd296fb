"""The values of alerts: an `AlertRule` (one row of ``alert_rules``), the `Matches` one
process gathered for a rule, an `AlertDelivery` (a claimed window and what its message
needs), and the states of a window (`WindowState`).

`storage.alerts` stores and reads them; `bot_logging_server.alerts` matches, sends and
schedules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["PENDING_STATES", "AlertDelivery", "AlertRule", "Matches", "WindowState"]


class WindowState:
    """The states of an ``alert_windows`` row (stored as these words)."""

    #: Gathering matches; sent once due.
    OPEN = "open"
    #: Claimed by a process that is sending it (until ``due_at``, the lease's end).
    SENDING = "sending"
    #: The last attempt failed; tried again at ``due_at``.
    RETRY = "retry"
    #: Delivered.
    SENT = "sent"
    #: Every attempt failed; given up.
    FAILED = "failed"


#: The states of a window not delivered yet (``pending`` in the API).
PENDING_STATES = (WindowState.OPEN, WindowState.SENDING, WindowState.RETRY)


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One row of ``alert_rules``, and (when listed for the API) its pending windows.

    `text` is matched case-insensitively within ``msg``; `p_description` matches that
    logger and its children (``billing`` also ``billing.charge``); None matches anything.
    `secret` is the webhook's signing key (None for Telegram).
    """

    id: int
    user_id: int
    min_level: int
    p_name: str | None
    p_description: str | None
    text: str | None
    channel: str
    url: str | None
    secret: str | None = field(repr=False)
    created_at: datetime
    last_status: str | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    last_sent_at: datetime | None = None
    pending: int = 0


@dataclass(frozen=True, slots=True)
class Matches:
    """One process's matches of one rule not written yet.

    `lines` are the first matching records (JSON-able objects, oldest first, each with a
    ``received_at`` text that orders them across processes); at most a few are kept.
    """

    count: int
    first_at: datetime
    last_at: datetime
    lines: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class AlertDelivery:
    """A claimed window, with what its message needs: the rule, the user, the matches.

    `attempt` is this delivery's number (1 for the first); `finish_alert_delivery` records
    its outcome only while the window is still claimed by this attempt.
    """

    window_id: int
    rule: AlertRule
    username: str
    tel_id: int | None
    opened_at: datetime
    closes_at: datetime
    last_at: datetime
    count: int
    lines: list[dict[str, Any]]
    attempt: int
