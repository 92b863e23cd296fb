"""Sending one alert: its message, through Telegram's Bot API or a signed webhook.

**Telegram**: ``POST {--telegram-api-url}/bot{--telegram-token}/sendMessage`` with the JSON
``{"chat_id": <the user's tel_id>, "text": ...}`` (plain text, at most 4096 characters);
sent when the API answers ``{"ok": true}``.

**Webhook**: ``POST`` of the JSON `webhook_body` to the rule's URL, with

* ``X-Alert-Timestamp``: the Unix time of sending, in seconds;
* ``X-Alert-Signature``: ``sha256=`` and the hex HMAC-SHA256, keyed with the rule's secret,
  of the timestamp, a ``.``, and the body's bytes (`sign`): the receiver recomputes it, and
  refuses an old timestamp so that a captured request cannot be replayed;
* ``X-Alert-Delivery``: the window's id, the same on every attempt (a receiver may drop a
  repeat).

Sent on any 2xx answer. Redirects are not followed. Failures raise `DeliveryFailed`, whose
text never holds the bot token (it is part of the Bot API's URL, so no URL is quoted).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import time
from datetime import datetime
from typing import Any

import httpx
import orjson

from bot_logging_server.alerts.rules import describe
from bot_logging_server.records import iso
from bot_logging_server.storage import AlertDelivery

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "TIMEOUT_SECONDS",
    "TIMESTAMP_HEADER",
    "DeliveryFailed",
    "Sender",
    "message_text",
    "sign",
    "webhook_body",
]

SIGNATURE_HEADER = "X-Alert-Signature"
TIMESTAMP_HEADER = "X-Alert-Timestamp"
DELIVERY_HEADER = "X-Alert-Delivery"
#: Seconds one delivery may take (connecting, sending, the answer).
TIMEOUT_SECONDS = 10.0
#: Telegram's limit on one message's text.
_TELEGRAM_CHARS = 4096
#: Characters of a receiver's error description kept.
_DESCRIPTION_CHARS = 200


class DeliveryFailed(Exception):
    """A delivery attempt failed: the message says why (fit for the API and the log).

    `retry_after`: seconds the receiver asked us to wait (429/503 ``Retry-After``, or
    Telegram's ``parameters.retry_after``), else None.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        """Keep `message` and the receiver's `retry_after`."""
        super().__init__(message)
        self.retry_after = retry_after


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def message_text(delivery: AlertDelivery) -> str:
    """The alert as text: who, how many, which rule, when, then the first records."""
    count = delivery.count
    noun = "record" if count == 1 else "records"
    first, last = _clock(delivery.opened_at), _clock(delivery.last_at)
    when = f"at {first}" if first == last else f"from {first} to {last}"
    head = (
        f"{delivery.username}: {count} {noun} matched alert {delivery.rule.id} "
        f"({describe(delivery.rule)}) {when} UTC."
    )
    lines = [head]
    for line in delivery.lines:
        where = " ".join(part for part in (line["p_name"], line["p_description"]) if part)
        lines.append(f"{line['level_name']} {line['event_at'][11:19]} {where}: {line['msg']}")
    if count > len(delivery.lines):
        lines.append(f"... and {count - len(delivery.lines)} more")
    return "\n".join(lines)


def webhook_body(delivery: AlertDelivery) -> bytes:
    """The webhook's JSON body (`docs/API.md`, "Alerts")."""
    return orjson.dumps(
        {
            "alert": delivery.rule.id,
            "user": delivery.username,
            "description": describe(delivery.rule),
            "count": delivery.count,
            "first_at": iso(delivery.opened_at),
            "last_at": iso(delivery.last_at),
            "window_seconds": (delivery.closes_at - delivery.opened_at).total_seconds(),
            "lines": delivery.lines,
            "text": message_text(delivery),
            "delivery": delivery.window_id,
            "attempt": delivery.attempt,
        }
    )


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``X-Alert-Signature``: ``sha256=`` + hex HMAC-SHA256(secret, timestamp + "." + body)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class Sender:
    """Delivers alerts over one HTTP client (kept for the server's life)."""

    def __init__(
        self, client: httpx.AsyncClient, telegram_api_url: str, telegram_token: str | None
    ) -> None:
        """Send with `client`; Telegram through `telegram_api_url` as `telegram_token`."""
        self._client = client
        self._telegram_api_url = telegram_api_url.rstrip("/")
        self._telegram_token = telegram_token

    async def send(self, delivery: AlertDelivery) -> None:
        """Deliver one alert on its rule's channel; raise `DeliveryFailed` saying why not."""
        try:
            if delivery.rule.channel == "telegram":
                await self._telegram(delivery)
            else:
                await self._webhook(delivery)
        except httpx.TimeoutException:
            raise DeliveryFailed(f"no answer within {TIMEOUT_SECONDS:g} s") from None
        except httpx.HTTPError as exc:
            # The exception's text may hold the URL, and Telegram's holds the token.
            raise DeliveryFailed(f"could not connect ({type(exc).__name__})") from None

    async def _telegram(self, delivery: AlertDelivery) -> None:
        if not self._telegram_token:
            raise DeliveryFailed("no Telegram bot token is configured (--telegram-token)")
        if delivery.tel_id is None:
            raise DeliveryFailed(f"user {delivery.username!r} has no tel_id")
        response = await self._client.post(
            f"{self._telegram_api_url}/bot{self._telegram_token}/sendMessage",
            json={
                "chat_id": delivery.tel_id,
                "text": message_text(delivery)[:_TELEGRAM_CHARS],
                "disable_web_page_preview": True,
            },
        )
        answer: Any = None
        with contextlib.suppress(ValueError):
            answer = response.json()
        if response.status_code == 200 and isinstance(answer, dict) and answer.get("ok") is True:
            return
        description, retry_after = "", _retry_after(response)
        if isinstance(answer, dict):
            description = str(answer.get("description", ""))[:_DESCRIPTION_CHARS]
            parameters = answer.get("parameters")
            if isinstance(parameters, dict) and isinstance(parameters.get("retry_after"), int):
                retry_after = float(parameters["retry_after"])
        detail = f": {description}" if description else ""
        raise DeliveryFailed(
            f"Telegram Bot API answered {response.status_code}{detail}", retry_after
        )

    async def _webhook(self, delivery: AlertDelivery) -> None:
        if not delivery.rule.url or not delivery.rule.secret:
            raise DeliveryFailed("the rule has no webhook URL or secret")
        body = webhook_body(delivery)
        timestamp = str(int(time.time()))
        response = await self._client.post(
            delivery.rule.url,
            content=body,
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(delivery.rule.secret, timestamp, body),
                DELIVERY_HEADER: str(delivery.window_id),
            },
        )
        if 200 <= response.status_code < 300:
            return
        raise DeliveryFailed(f"webhook answered {response.status_code}", _retry_after(response))
