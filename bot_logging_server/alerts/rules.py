"""Alert rules: adding one, which records a rule matches, how a rule reads and looks on the
wire.

A rule matches a record when every condition it has holds (a missing one matches anything):

* ``level``: the record's level is at least this (default ``error``, 40);
* ``p_name``: the process name is exactly this;
* ``p_description``: the logger is this one or one of its children (``billing`` matches
  ``billing`` and ``billing.charge``, not ``billing2``), as Python's logging names them;
* ``text``: the message holds this text, in any letter case.

`CompiledRule.select` is what runs after each commit, on the event loop: plain comparisons
over the batch, cheapest first, nothing read from the database.

`add_rule` is the one way rules are made (the API and the CLI): a webhook rule gets a new
secret, returned once; a Telegram rule needs the user's ``tel_id``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot_logging_server.records import iso, level_name
from bot_logging_server.schemas.alerts import ALERT_CHANNELS
from bot_logging_server.storage import AlertRule, LogRow, Storage, User

__all__ = [
    "CHANNELS",
    "DEFAULT_LEVEL",
    "LINE_CHARS",
    "MAX_LINES",
    "MAX_RULES",
    "CompiledRule",
    "NewRule",
    "RuleRefused",
    "add_rule",
    "describe",
    "line_of",
    "rule_json",
]

#: Where an alert can go: ``telegram`` (the user's ``tel_id``) or ``webhook`` (a URL).
CHANNELS = ALERT_CHANNELS
#: The level a rule watches when none is given: ERROR and above.
DEFAULT_LEVEL = 40
#: Records shown in one alert message (the first of its window).
MAX_LINES = 5
#: Characters of a record's message shown in an alert line.
LINE_CHARS = 300
#: Alert rules one user may have.
MAX_RULES = 100


class CompiledRule:
    """One rule, ready to test batches of records against."""

    __slots__ = ("id", "logger", "logger_children", "min_level", "p_name", "text")

    def __init__(self, rule: AlertRule) -> None:
        """Prepare `rule`'s conditions (the text folded once)."""
        self.id = rule.id
        self.min_level = rule.min_level
        self.p_name = rule.p_name
        self.logger = rule.p_description
        self.logger_children = None if rule.p_description is None else rule.p_description + "."
        self.text = None if rule.text is None else rule.text.casefold()

    def select(self, rows: Sequence[LogRow]) -> list[LogRow]:
        """The rows of a batch this rule matches, in their order (one pass, cheapest test
        first)."""
        level, name, text = self.min_level, self.p_name, self.text
        logger, children = self.logger, self.logger_children
        if name is None and logger is None and text is None:
            return [row for row in rows if row.level >= level]
        return [
            row
            for row in rows
            if row.level >= level
            and (name is None or row.p_name == name)
            and (
                logger is None
                or row.p_description == logger
                or row.p_description.startswith(children)  # type: ignore[arg-type]
            )
            and (text is None or text in row.msg.casefold())
        ]


def describe(rule: AlertRule) -> str:
    """What `rule` watches, in words: ``level >= ERROR, process billing, text "declined"``."""
    parts = [f"level >= {level_name(rule.min_level)}"]
    if rule.p_name is not None:
        parts.append(f"process {rule.p_name}")
    if rule.p_description is not None:
        parts.append(f"logger {rule.p_description}")
    if rule.text is not None:
        parts.append(f'text "{rule.text}"')
    return ", ".join(parts)


def line_of(row: LogRow, received_at: datetime) -> dict[str, Any]:
    """One record as an alert shows it (the message cut to `LINE_CHARS`)."""
    return {
        "level": row.level,
        "level_name": level_name(row.level),
        "p_name": row.p_name,
        "p_description": row.p_description,
        "pid": row.pid,
        "msg": row.msg[:LINE_CHARS],
        "event_at": iso(row.event_at),
        "received_at": iso(received_at),
    }


def rule_json(rule: AlertRule) -> dict[str, Any]:
    """`rule` as ``GET /api/alerts`` answers it: the conditions, the channel, and how its
    deliveries go (never its secret)."""

    def when(moment: datetime | None) -> str | None:
        return None if moment is None else iso(moment)

    return {
        "id": rule.id,
        "level": rule.min_level,
        "level_name": level_name(rule.min_level),
        "p_name": rule.p_name,
        "p_description": rule.p_description,
        "text": rule.text,
        "channel": rule.channel,
        "url": rule.url,
        "description": describe(rule),
        "created_at": iso(rule.created_at),
        "last_status": rule.last_status,
        "last_error": rule.last_error,
        "last_attempt_at": when(rule.last_attempt_at),
        "last_sent_at": when(rule.last_sent_at),
        "pending": rule.pending,
    }


class RuleRefused(ValueError):
    """The rule cannot be made for this user (the message says why)."""


@dataclass(frozen=True)
class NewRule:
    """A rule just made, and its webhook secret in clear (shown once; None for Telegram)."""

    rule: AlertRule
    secret: str | None = field(repr=False)


async def add_rule(
    storage: Storage,
    user: User,
    *,
    channel: str,
    min_level: int = DEFAULT_LEVEL,
    p_name: str | None = None,
    p_description: str | None = None,
    text: str | None = None,
    url: str | None = None,
) -> NewRule:
    """Store a rule for `user` (its arguments as `schemas.alerts.load_alert_rule` loads them).

    Raises `RuleRefused` for a Telegram rule of a user without ``tel_id``, and
    `storage.AlertRuleLimit` past `MAX_RULES` rules.
    """
    if channel == "telegram" and user.tel_id is None:
        raise RuleRefused(
            f"user {user.username!r} has no tel_id (Telegram chat id) to send alerts to"
        )
    secret = secrets.token_hex(32) if channel == "webhook" else None
    rule = await storage.create_alert_rule(
        user.id,
        min_level=min_level,
        p_name=p_name,
        p_description=p_description,
        text=text,
        channel=channel,
        url=url,
        secret=secret,
        max_rules=MAX_RULES,
    )
    return NewRule(rule, secret)
