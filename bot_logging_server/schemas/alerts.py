"""The body of ``POST /api/alerts`` (and the options of ``alerts add``): one alert rule.

``{"level": "error", "p_name": "billing", "p_description": "app.pay", "text": "declined",
"channel": "webhook", "url": "https://hooks.example/alerts"}``: every condition optional
(``level`` defaults to ``error``), ``channel`` required, ``url`` required for a webhook and
refused for Telegram. Empty strings count as not given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates_schema,
)

from bot_logging_server.schemas.base import ValidationFailed, load
from bot_logging_server.schemas.values import NAME_CHARS, Level

__all__ = ["ALERT_CHANNELS", "AlertRuleSchema", "load_alert_rule"]

#: Where an alert can go.
ALERT_CHANNELS = ("telegram", "webhook")
_URL_CHARS = 2048
_TEXT_CHARS = 1000


class AlertRuleSchema(Schema):
    """One alert rule: which records (all conditions must hold) and where to send them."""

    class Meta:
        unknown = EXCLUDE

    min_level = Level(
        data_key="level",
        load_default=40,
        metadata={"description": "Minimum level, a number or a name; default error."},
    )
    p_name = fields.String(
        load_default=None,
        validate=validate.Length(1, NAME_CHARS),
        metadata={"description": "Process name, exactly."},
    )
    p_description = fields.String(
        load_default=None,
        validate=validate.Length(1, NAME_CHARS),
        metadata={"description": "Logger: this one or its children (billing: billing.charge)."},
    )
    text = fields.String(
        load_default=None,
        validate=validate.Length(1, _TEXT_CHARS),
        metadata={"description": "Text within the message, in any letter case."},
    )
    channel = fields.String(
        required=True,
        validate=validate.OneOf(ALERT_CHANNELS),
        metadata={"description": "telegram (the user's tel_id) or webhook (url)."},
    )
    url = fields.Url(
        load_default=None,
        schemes={"http", "https"},
        require_tld=False,
        validate=validate.Length(max=_URL_CHARS),
        metadata={"description": "The webhook's http(s) URL (webhook only)."},
    )

    @pre_load
    def _drop_empty(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, Mapping):
            return {key: value for key, value in data.items() if value not in ("", None)}
        return data

    @validates_schema
    def _url_for_webhooks_only(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("channel") == "webhook" and data.get("url") is None:
            raise ValidationError("required for a webhook", "url")
        if data.get("channel") == "telegram" and data.get("url") is not None:
            raise ValidationError("only for a webhook", "url")


_ALERT_RULE = AlertRuleSchema()


def load_alert_rule(body: object, prefix: str = "body") -> dict[str, Any]:
    """Validate one rule (`body`); raise `ValidationFailed` naming the field from `prefix`.

    Loads to the keyword arguments of `bot_logging_server.alerts.rules.add_rule`.
    """
    if not isinstance(body, Mapping):
        raise ValidationFailed(f"{prefix}: must be a JSON object")
    return load(_ALERT_RULE, body, prefix)
