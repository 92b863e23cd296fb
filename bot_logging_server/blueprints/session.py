"""``POST /api/session``: sign in with a password instead of the token it makes.

A user created with a password has the token ``md5(user + password)``
(`bot_logging_server.tokens.password_token`). The viewer's sign-in form sends
``{"user", "password"}`` here and gets ``{"user", "token"}`` back, so the page never computes
an md5 itself. The token made from the password is checked exactly as a read request's token
is (`bot_logging_server.auth.Authenticator.authenticate`): the same slow hash, the same 403
that never says why, and the same lockout of an address or a user name after too many
failures (429). Neither the password nor the token is ever logged; nothing is written.
"""

from __future__ import annotations

from quart import Blueprint, Response

from bot_logging_server.auth import get_authenticator
from bot_logging_server.errors import BadRequest, json_response
from bot_logging_server.json_body import parse_json, read_body
from bot_logging_server.schemas.accounts import load_session, normalise_username
from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.tokens import password_token

__all__ = ["bp", "post_session"]

bp = Blueprint("session", __name__, url_prefix="/api")
#: The largest body read (a name and a password are far smaller).
_MOST_BYTES = 8192


@bp.post("/session")
async def post_session() -> Response:
    """The token of ``{"user", "password"}`` when it verifies; 403 otherwise, 429 when
    locked out."""
    raw = await read_body(_MOST_BYTES)
    if raw is None:
        raise BadRequest(f"body: longer than {_MOST_BYTES} bytes")
    try:
        fields = load_session(parse_json(raw))
    except ValidationFailed as exc:
        raise BadRequest(exc.detail) from None
    # Tokens are made from the stored (normalised) name, as at creation.
    token = password_token(normalise_username(fields["user"]), fields["password"])
    user = await get_authenticator().authenticate(fields["user"], token, reading=True)
    return json_response({"user": user.username, "token": token})
