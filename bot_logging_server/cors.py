"""CORS for the endpoints web pages post to from other origins (with an ingest key).

`allow_cross_origin(bp, rule, methods, headers)` makes one route of a blueprint answerable
from any origin: the blueprint answers the browser's preflight (``OPTIONS rule``: 204 with
``Access-Control-Allow-Origin: *``, the allowed methods and request headers, and how long
the browser may remember that), and every answer of that route to those methods, errors
included, carries
``Access-Control-Allow-Origin: *`` so the page can read it. No cookie is ever involved
(credentials travel in a header or the URL), so ``*`` is safe; every other route stays
same-origin.
"""

from __future__ import annotations

from collections.abc import Sequence

from quart import Blueprint, Response, request

__all__ = ["PREFLIGHT_MAX_AGE", "allow_cross_origin"]

#: Seconds a browser may cache a preflight answer.
PREFLIGHT_MAX_AGE = 86_400


class _Empty(Response):
    """An answer without a body, and so without a ``Content-Type`` (never HTML)."""

    default_mimetype = None


def allow_cross_origin(
    bp: Blueprint, rule: str, methods: Sequence[str], headers: Sequence[str]
) -> None:
    """Open `rule` of `bp` to every origin for `methods`, with request `headers` allowed.

    Registers the ``OPTIONS`` preflight for `rule` on `bp` and an after-request hook of `bp`
    that marks that route's answers (all of them, errors too) as readable by any origin.
    """
    allow = {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": ", ".join([*methods, "OPTIONS"]),
        "Access-Control-Allow-Headers": ", ".join(headers),
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
    }
    full_rule = (bp.url_prefix or "") + rule

    async def preflight() -> Response:
        return _Empty(b"", status=204, headers=allow)

    endpoint = "preflight_" + rule.strip("/").replace("/", "_").replace("<", "").replace(">", "")
    bp.add_url_rule(rule, endpoint, preflight, methods=["OPTIONS"])

    @bp.after_request
    async def _readable_by_any_origin(response: Response) -> Response:
        matched = request.url_rule
        if matched is not None and matched.rule == full_rule and request.method in methods:
            response.headers["Access-Control-Allow-Origin"] = "*"
        return response
