"""User names, the body of ``POST /create_user`` (``{"user", "password", "tel_id"}``) and
that of ``POST /api/session`` (``{"user", "password"}``).

User names are compared in Unicode NFKC form (`normalise_username`): ``alice`` written in
full-width letters (U+FF41...) is ``alice``, and ``café`` is one name whether its ``é`` is
one code point or ``e`` plus a combining accent. A new name is stored normalised and may hold
no invisible format character (Unicode category Cf: zero-width spaces and joiners, bidi
controls, the soft hyphen...), so no two users can look alike that way (`new_name_problem`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from bot_logging_server.schemas.base import ValidationFailed, load

__all__ = [
    "USERNAME_RE",
    "USERNAME_RULE",
    "CreateUserSchema",
    "SessionBodySchema",
    "WholeNumber",
    "load_create_user",
    "load_session",
    "new_name_problem",
    "normalise_username",
]

#: What a user name may be (the contract's rule), and how errors state it.
USERNAME_RULE = "1-64 characters, no whitespace or control characters"
#: Matches exactly the user names `USERNAME_RULE` allows.
USERNAME_RE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,64}\Z")


def normalise_username(name: str) -> str:
    """`name` in Unicode NFKC form, the form user names are stored and compared in."""
    return name if name.isascii() else unicodedata.normalize("NFKC", name)


def new_name_problem(name: str) -> str | None:
    """Why `name` (already normalised) cannot be a new user's name, or None when it can.

    The rule is `USERNAME_RULE`, plus no invisible format character (category Cf).
    """
    if not USERNAME_RE.match(name):
        return f"user name must be {USERNAME_RULE}"
    for i, char in enumerate(name):
        if unicodedata.category(char) == "Cf" and not _joins_emoji(name, i):
            return f"user name must not hold invisible format characters (U+{ord(char):04X})"
    return None


def _joins_emoji(name: str, i: int) -> bool:
    """Whether ``name[i]`` is a zero-width joiner between two symbols, as in the emoji
    sequence 🏳️‍🌈 (a visible glyph, not a way to make two names look alike)."""
    if name[i] != _ZWJ or i == 0 or i + 1 == len(name):
        return False
    before = name[i - 1] if name[i - 1] != _EMOJI_STYLE or i < 2 else name[i - 2]
    return unicodedata.category(before) == "So" and unicodedata.category(name[i + 1]) == "So"


_ZWJ = "\u200d"
_EMOJI_STYLE = "\ufe0f"  # VARIATION SELECTOR-16, often before a joiner
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]{1,20}")


class WholeNumber(fields.Field):
    """An integer: a JSON integer (not a boolean, not ``1.5`` nor ``1.0``), or a string of
    ASCII digits with an optional sign (``"-100123"``, as Telegram chat ids are often
    written); anything else is refused rather than rounded."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
            return int(value)
        raise ValidationError("must be an integer")


class CreateUserSchema(Schema):
    """The body of ``POST /create_user``: ``{"user", "password", "tel_id"}``."""

    class Meta:
        unknown = EXCLUDE

    user = fields.String(
        required=True,
        validate=validate.Regexp(USERNAME_RE, error=USERNAME_RULE),
    )
    password = fields.String(load_default=None, allow_none=True)
    tel_id = WholeNumber(load_default=None, allow_none=True)


_CREATE_USER = CreateUserSchema()


def load_create_user(body: object) -> dict[str, Any]:
    """Validate a ``/create_user`` body; raise `ValidationFailed` naming the field."""
    if not isinstance(body, Mapping):
        raise ValidationFailed("body: must be a JSON object")
    return load(_CREATE_USER, body, "body")


#: The longest password ``POST /api/session`` takes (characters).
MAX_PASSWORD_CHARS = 1024


class SessionBodySchema(Schema):
    """The body of ``POST /api/session``: ``{"user", "password"}`` (the password the user
    was created with; its token is ``md5(user + password)``)."""

    class Meta:
        unknown = EXCLUDE

    user = fields.String(
        required=True,
        validate=validate.Regexp(USERNAME_RE, error=USERNAME_RULE),
    )
    password = fields.String(required=True, validate=validate.Length(max=MAX_PASSWORD_CHARS))


_SESSION = SessionBodySchema()


def load_session(body: object) -> dict[str, Any]:
    """Validate a ``POST /api/session`` body; raise `ValidationFailed` naming the field
    (never quoting the password)."""
    if not isinstance(body, Mapping):
        raise ValidationFailed("body: must be a JSON object")
    return load(_SESSION, body, "body")
