"""The pieces of the OpenAPI document that several of its modules share: the error answer,
the read operation (its security and its 400/403/429/503 answers), the JSON read, and the
``Idempotency-Key`` header of the writes.

`bot_logging_server.openapi.build_spec` and `bot_logging_server.openapi.events` describe
their paths with these.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from bot_logging_server.openapi import responses

__all__ = ["IDEMPOTENCY_KEY", "JSON", "READ_SECURITY", "error", "json_read", "read_operation"]

#: The JSON media type.
JSON = "application/json"
#: The read endpoints' security: a user with a token, as a header or a bearer token.
READ_SECURITY = [{"user": [], "token": []}, {"user": [], "bearer": []}]
#: The optional ``Idempotency-Key`` header of the writes.
IDEMPOTENCY_KEY = {
    "in": "header",
    "name": "Idempotency-Key",
    "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
    "description": "Optional. A repeat within 24 h of a key committed for this user answers "
    "the first answer (with Idempotent-Replayed: true) and stores nothing.",
}


def error(description: str) -> dict[str, Any]:
    """An error answer (``{code, message[, detail]}``) described by `description`."""
    return {"description": description, "content": {JSON: {"schema": responses.ErrorSchema}}}


def read_operation(
    summary: str,
    query: type,
    ok: dict[str, Any],
    tag: str = "read",
    limited: str | None = None,
    **extra: Any,
) -> dict:
    """A ``GET`` with the read security, the query string `query` and the answer `ok`.

    The 400, 403, 429 and 503 answers are added; `limited` (``reads``, ``tails``) names the
    per-user limit a 429 may also mean. `extra` adds to the operation (``parameters`` after
    the query string's).
    """
    answers = {
        "200": ok,
        "400": error("A query parameter is invalid (detail names it)."),
        "403": error("Unknown user, wrong, missing or malformed token, or disabled user."),
    }
    refused = "Locked out after too many failed token checks"
    if limited is not None:
        refused += f", or the user already has --max-{limited}-per-user {limited} in progress"
    answers["429"] = error(f"{refused}; retry after Retry-After.")
    answers["503"] = error(
        "The database is unavailable, or the read ran past --db-timeout; retry after Retry-After."
    )
    return {
        "summary": summary,
        "tags": [tag],
        "security": READ_SECURITY,
        "parameters": [{"in": "query", "schema": query}, *extra.pop("parameters", [])],
        "responses": answers,
        **extra,
    }


def json_read(
    spec: APISpec,
    path: str,
    summary: str,
    query: type,
    schema: type,
    description: str,
    **options: Any,
) -> None:
    """Declare ``GET path``: a read (`read_operation`) whose 200 is JSON in `schema`."""
    ok = {"description": description, "content": {JSON: {"schema": schema}}}
    spec.path(path=path, operations={"get": read_operation(summary, query, ok, **options)})
