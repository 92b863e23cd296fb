"""The web log viewer: ``GET /`` (its page) and ``GET /static/<file>`` (its assets); the
usage tracker ``GET /tracker.js`` and its demo page ``GET /demo`` (``/demo/<page>``).

The files live in the repository's top-level ``static/`` directory; an installed wheel
carries them as ``bot_logging_server/static``, which is looked at first. Every asset is
served by the app itself (no CDN), with a Content-Security-Policy that allows nothing but
this origin.
"""

from __future__ import annotations

import asyncio
import functools
import html
import re
from pathlib import Path

from quart import Blueprint, Response, request, send_from_directory
from werkzeug.exceptions import NotFound

__all__ = ["CSP", "bp", "demo", "index", "send_static", "static_dir", "static_file", "tracker"]

bp = Blueprint("viewer", __name__)

#: The demo's page names (``/demo/<page>``), and what it accepts as an ingest key in ``?key=``.
_DEMO_PAGE = re.compile(r"[a-z0-9-]{1,32}")
_KEY = re.compile(r"[0-9A-Fa-f]{1,64}")

#: The viewer and the docs page load scripts, styles and data from this origin only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@functools.cache
def static_dir() -> Path | None:
    """Where the viewer's files are: ``<package>/static``, else ``<repository>/static``."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "static", package.parent / "static"):
        if (candidate / "index.html").is_file():
            return candidate
    return None


async def static_file(filename: str) -> Response:
    """`filename` from `static_dir` (404 in the contract's shape when it is not there)."""
    directory = static_dir()
    if directory is None:
        raise NotFound()
    response = await send_from_directory(directory, filename)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/")
async def index() -> Response:
    """The viewer's page."""
    return await static_file("index.html")


@bp.get("/static/<path:filename>")
async def send_static(filename: str) -> Response:
    """One of the viewer's files."""
    return await static_file(filename)


@bp.get("/tracker.js")
async def tracker() -> Response:
    """The usage tracker, for any site's pages (a ``<script src>`` needs no CORS)."""
    return await static_file("tracker.js")


@bp.get("/demo")
@bp.get("/demo/<page>")
async def demo(page: str = "home") -> Response:
    """A demo page that loads ``/tracker.js`` with the ingest key of ``?key=`` (32 hex).

    The key goes into the script tag's ``data-key`` and into the demo's own links; anything
    but hex digits is ignored (the page then says how to add a key, and records nothing).
    """
    directory = static_dir()
    if directory is None or not _DEMO_PAGE.fullmatch(page):
        raise NotFound()
    key = request.args.get("key", "")
    key = key if _KEY.fullmatch(key) else ""
    template = await asyncio.to_thread((directory / "demo.html").read_text, "utf-8")
    text = template.replace("{{key}}", html.escape(key)).replace("{{page}}", page)
    response = Response(text, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response
