"""``GET /openapi.json`` (generated from the schemas) and ``GET /docs`` (it, rendered).

``/docs`` is a small page of our own (``static/docs.html`` and ``static/docs.js``) that reads
``/openapi.json``: nothing is fetched from anywhere else, so it works without internet.
"""

from __future__ import annotations

from quart import Blueprint, Response, current_app

from bot_logging_server.blueprints.viewer import static_file
from bot_logging_server.config import get_config
from bot_logging_server.errors import json_response
from bot_logging_server.openapi import build_spec

__all__ = ["bp", "docs", "openapi_json"]

bp = Blueprint("docs", __name__)
_EXTENSION = "bot_logging_server.openapi"


@bp.get("/openapi.json")
async def openapi_json() -> Response:
    """The OpenAPI 3.0 document (built once per app)."""
    spec = current_app.extensions.get(_EXTENSION)
    if spec is None:
        from bot_logging_server import __version__

        on = get_config().api_key is not None
        spec = current_app.extensions[_EXTENSION] = build_spec(__version__, create_user=on)
    return json_response(spec)


@bp.get("/docs")
async def docs() -> Response:
    """The API documentation page."""
    return await static_file("docs.html")
