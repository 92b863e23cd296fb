"""The request schemas (marshmallow), one module per concern, each instantiated once.

* `bot_logging_server.schemas.values`: the rules for single wire values (levels,
  timestamps, messages, names, 64-bit integers), as parse functions and as fields;
* `bot_logging_server.schemas.ingest`: the body of ``POST /send_logs``, read in the order of
  the checks, with a fast path that agrees with marshmallow;
* `bot_logging_server.schemas.query`: the query strings of the read endpoints and the page
  cursor;
* `bot_logging_server.schemas.accounts`: user names and the body of ``POST /create_user``;
* `bot_logging_server.schemas.events`: usage events: client times in every format and the
  rules of the common model;
* `bot_logging_server.schemas.events_api`: the native events API's body and query strings;
* `bot_logging_server.schemas.base`: `ValidationFailed` and its ``detail`` text
  (``data.logs[3].event_at: not a valid timestamp``).

The answers' shapes are documented beside the OpenAPI document that alone uses them
(`bot_logging_server.openapi.responses`).
"""
