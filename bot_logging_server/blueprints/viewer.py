"""The web log viewer: ``GET /`` (its page) and ``GET /static/<file>`` (its assets).

The files live in the repository's top-level ``static/`` directory; an installed wheel
carries them as ``bot_logging_server/static``, which is looked at first. Every asset is
served by the app itself (no CDN), with a Content-Security-Policy that allows nothing but
this origin.
"""

from __future__ import annotations

import functools
from pathlib import Path

from quart import Blueprint, Response, send_from_directory
from werkzeug.exceptions import NotFound

__all__ = ["CSP", "bp", "index", "send_static", "static_dir", "static_file"]

bp = Blueprint("viewer", __name__)

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
