"""Cross-origin access for the endpoints that web pages call from their own origin.

Two policies, both with ``Access-Control-Allow-Origin: *`` on every answer they cover, errors
included, and a preflight (``OPTIONS``) answered 204 with no body:

* `allow_any_origin(bp)`: every route of a blueprint. The tracker demo and Microticks
  answered every origin (their pages run elsewhere than the API), and a page posting to The
  Eye sends an ``Authorization`` header, which needs a preflight. A route of such a blueprint
  must list ``OPTIONS`` among its methods; the preflight allows the route's methods and echoes
  the request headers the browser asks for.
* `allow_cross_origin(bp, rule, methods, headers)`: one route of a blueprint, for the given
  methods and request headers (``POST /api/events`` with an ingest key); the blueprint's other
  routes stay same-origin.

No cookie is ever involved (credentials travel in a header or the URL, never in credentials
mode), so ``*`` is allowed by browsers and exposes nothing a key or token does not grant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from quart import Blueprint, Response, request

__all__ = ["PREFLIGHT_MAX_AGE", "allow_any_origin", "allow_cross_origin"]

#: Seconds a browser may cache a preflight's answer.
PREFLIGHT_MAX_AGE = 86_400
# A header list as browsers send it: names, commas, spaces; anything else is not echoed.
_HEADER_LIST = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+(?:\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")


class _Empty(Response):
    """An answer without a body, and so without a ``Content-Type`` (never HTML)."""

    default_mimetype = None


def _preflight(methods: Sequence[str], headers: str) -> Response:
    """The 204 answer to a preflight allowing `methods` and the request `headers`."""
    allow: Mapping[str, str] = {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": ", ".join(methods),
        "Access-Control-Allow-Headers": headers,
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
    }
    return _Empty(b"", status=204, headers=dict(allow))


def allow_any_origin(bp: Blueprint) -> None:
    """Answer preflights to `bp`'s routes and let every origin read `bp`'s answers."""

    @bp.before_request
    async def _answer_preflight() -> Response | None:
        if request.method != "OPTIONS":
            return None
        methods = sorted((request.url_rule.methods if request.url_rule else set()) - {"HEAD"})
        asked = request.headers.get("Access-Control-Request-Headers", "").strip()
        echoed = asked if asked and len(asked) <= 1024 and _HEADER_LIST.fullmatch(asked) else ""
        return _preflight(methods, echoed or "Content-Type")

    @bp.after_request
    async def _allow_origin(response: Response) -> Response:
        response.headers.setdefault("Access-Control-Allow-Origin", "*")
        return response


def allow_cross_origin(
    bp: Blueprint, rule: str, methods: Sequence[str], headers: Sequence[str]
) -> None:
    """Open `rule` of `bp` to every origin for `methods`, with request `headers` allowed.

    Registers the ``OPTIONS`` preflight for `rule` on `bp` and an after-request hook of `bp`
    that marks that route's answers (all of them, errors too) as readable by any origin.
    """
    full_rule = (bp.url_prefix or "") + rule

    async def preflight() -> Response:
        return _preflight([*methods, "OPTIONS"], ", ".join(headers))

    endpoint = "preflight_" + rule.strip("/").replace("/", "_").replace("<", "").replace(">", "")
    bp.add_url_rule(rule, endpoint, preflight, methods=["OPTIONS"])

    @bp.after_request
    async def _readable_by_any_origin(response: Response) -> Response:
        matched = request.url_rule
        if matched is not None and matched.rule == full_rule and request.method in methods:
            response.headers["Access-Control-Allow-Origin"] = "*"
        return response
