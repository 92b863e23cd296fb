"""``/api/alerts``: a user's alert rules, and how their deliveries go.

Authenticated as the read endpoints are (``X-User`` plus ``X-User-Token``, or
``Authorization: Bearer``); a user only ever sees and changes their own rules.

* ``GET /api/alerts``: ``{"alerts": [rule, ...]}``, each rule with its conditions, channel,
  and delivery state: ``last_status`` (``sent``, ``retrying``, ``failed`` or null),
  ``last_error``, ``last_attempt_at``, ``last_sent_at`` and ``pending`` (messages not
  delivered yet, gathering ones included).
* ``POST /api/alerts``: make a rule (`schemas.alerts.AlertRuleSchema`); 201 with
  ``{"alert": rule}``, plus ``"secret"`` for a webhook: the signing key, shown this once.
* ``DELETE /api/alerts/<id>``: remove a rule and its pending messages; 404 when the user
  has no such rule.
"""

from __future__ import annotations

from quart import Blueprint, Response

from bot_logging_server.alerts import get_alerts
from bot_logging_server.alerts.rules import MAX_RULES, RuleRefused, add_rule, rule_json
from bot_logging_server.auth import requires_header_user
from bot_logging_server.errors import APIError, BadRequest, Conflict, json_response
from bot_logging_server.json_body import read_json
from bot_logging_server.schemas.alerts import load_alert_rule
from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.storage import AlertRuleLimit, User, get_storage

__all__ = ["add_alert", "bp", "list_alerts", "remove_alert"]

bp = Blueprint("alerts", __name__, url_prefix="/api")


@bp.get("/alerts")
@requires_header_user
async def list_alerts(user: User) -> Response:
    """The user's rules, oldest first, each with its delivery state."""
    rules = await get_storage().alert_rules(user.id)
    return json_response({"alerts": [rule_json(rule) for rule in rules]})


@bp.post("/alerts")
@requires_header_user
async def add_alert(user: User) -> Response:
    """Make a rule; the webhook secret is in this answer only."""
    try:
        spec = load_alert_rule(await read_json())
    except ValidationFailed as exc:
        raise BadRequest(exc.detail) from None
    try:
        new = await add_rule(get_storage(), user, **spec)
    except RuleRefused as exc:
        raise BadRequest(str(exc)) from None
    except AlertRuleLimit:
        raise Conflict(f"at most {MAX_RULES} alert rules per user") from None
    await get_alerts().refresh_rules()  # this process matches it at once; others within 2 s
    body: dict[str, object] = {"alert": rule_json(new.rule)}
    if new.secret is not None:
        body["secret"] = new.secret
    return json_response(body, 201)


@bp.delete("/alerts/<int:rule_id>")
@requires_header_user
async def remove_alert(user: User, rule_id: int) -> Response:
    """Remove one of the user's rules, and its messages not sent yet."""
    if not await get_storage().remove_alert_rule(rule_id, user.id):
        raise APIError(f"no alert {rule_id}", status=404)
    await get_alerts().refresh_rules()
    return json_response({"deleted": rule_id})
