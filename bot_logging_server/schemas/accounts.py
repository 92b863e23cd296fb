"""User names, and the body of ``POST /create_user``: ``{"user", "password", "tel_id"}``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate

from bot_logging_server.schemas.base import ValidationFailed, load

__all__ = ["USERNAME_RE", "USERNAME_RULE", "CreateUserSchema", "load_create_user"]

#: What a user name may be (the contract's rule), and how errors state it.
USERNAME_RULE = "1-64 characters, no whitespace or control characters"
#: Matches exactly the user names `USERNAME_RULE` allows.
USERNAME_RE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,64}\Z")


class CreateUserSchema(Schema):
    """The body of ``POST /create_user``: ``{"user", "password", "tel_id"}``."""

    class Meta:
        unknown = EXCLUDE

    user = fields.String(
        required=True,
        validate=validate.Regexp(USERNAME_RE, error=USERNAME_RULE),
    )
    password = fields.String(load_default=None, allow_none=True)
    tel_id = fields.Integer(load_default=None, allow_none=True, strict=False)


_CREATE_USER = CreateUserSchema()


def load_create_user(body: object) -> dict[str, Any]:
    """Validate a ``/create_user`` body; raise `ValidationFailed` naming the field."""
    if not isinstance(body, Mapping):
        raise ValidationFailed("body: must be a JSON object")
    return load(_CREATE_USER, body, "body")
