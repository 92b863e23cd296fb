"""Cross-origin access for the event interfaces that web pages call from their own origin.

The tracker demo and Microticks answered every origin (their pages run elsewhere than the
API), and a page posting to The Eye sends an ``Authorization`` header, which needs a
preflight. `allow_any_origin` gives a blueprint that policy: every answer, errors included,
carries ``Access-Control-Allow-Origin: *``, and a preflight (``OPTIONS`` with
``Access-Control-Request-Method``) to any of its routes is answered 204 with the route's
methods and the headers asked for. No cookies are involved (no credentials mode), so ``*``
is allowed by browsers and exposes nothing a key or token does not already grant.

A route of such a blueprint must list ``OPTIONS`` among its methods.
"""

from __future__ import annotations

import re

from quart import Blueprint, Response, request

__all__ = ["PREFLIGHT_MAX_AGE", "allow_any_origin"]

#: Seconds a browser may cache a preflight's answer.
PREFLIGHT_MAX_AGE = 86400
# A header list as browsers send it: names, commas, spaces; anything else is not echoed.
_HEADER_LIST = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+(?:\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")


def _preflight() -> Response:
    methods = sorted((request.url_rule.methods if request.url_rule else set()) - {"HEAD"})
    asked = request.headers.get("Access-Control-Request-Headers", "").strip()
    headers = {
        "Access-Control-Allow-Methods": ", ".join(methods),
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
        "Access-Control-Allow-Headers": asked
        if asked and len(asked) <= 1024 and _HEADER_LIST.fullmatch(asked)
        else "Content-Type",
    }
    response = Response(b"", status=204, headers=headers)
    del response.headers["Content-Type"]  # no body: not even an empty HTML one
    return response


def allow_any_origin(bp: Blueprint) -> None:
    """Answer preflights to `bp`'s routes and let every origin read `bp`'s answers."""

    @bp.before_request
    async def _answer_preflight() -> Response | None:
        if request.method == "OPTIONS":
            return _preflight()
        return None

    @bp.after_request
    async def _allow_origin(response: Response) -> Response:
        response.headers.setdefault("Access-Control-Allow-Origin", "*")
        return response
