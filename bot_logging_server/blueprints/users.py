"""``POST /create_user``: the original server's user creation, kept for its clients.

Off unless an API key is configured (``LOGGER_API_KEY`` / ``--api-key``): without one the
blueprint is not registered, so every method answers 404. The key comes
in ``X-Api-Key`` and is compared in constant time. The body is ``{"user", "password",
"tel_id"}``; the answer carries the new token once: ``{"code": 200, "message": "User
created", "user": NAME, "token": TOKEN}``; a taken name is 409.
"""

from __future__ import annotations

import hmac

from quart import Blueprint, Response, request

from bot_logging_server import accounts
from bot_logging_server.config import get_config
from bot_logging_server.errors import BadRequest, Conflict, Forbidden, json_response
from bot_logging_server.json_body import read_json
from bot_logging_server.schemas.accounts import load_create_user, normalise_username
from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.storage import UserExists, get_storage

__all__ = ["bp", "post_create_user"]

bp = Blueprint("users", __name__)


@bp.post("/create_user")
async def post_create_user() -> Response:
    """Create a user (API key required); answer the token once."""
    api_key = get_config().api_key or ""
    given = request.headers.get("X-Api-Key", "")
    if not hmac.compare_digest(given.encode(), api_key.encode()):
        raise Forbidden()
    try:
        fields = load_create_user(await read_json())
    except ValidationFailed as exc:
        raise BadRequest(exc.detail) from None
    try:
        new = await accounts.create_user(
            get_storage(), fields["user"], fields["password"], fields["tel_id"]
        )
    except ValueError as exc:
        raise BadRequest(f"body: {exc}") from None
    except UserExists:
        raise Conflict(f"user {normalise_username(fields['user'])!r} exists") from None
    return json_response(
        {"code": 200, "message": "User created", "user": new.user.username, "token": new.token}
    )
