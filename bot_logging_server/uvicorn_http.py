"""What serving with uvicorn needs beyond uvicorn itself (imported only with ``uvicorn``).

* `UvicornConfig`: uvicorn's config, carrying our settings to worker processes (see
  `bot_logging_server.server`); defined here, at module level, so that multiprocessing can
  pickle it by name.
* `JSONErrorsProtocol`: uvicorn's HTTP/1.1 protocol (httptools when installed, else h11),
  whose answer to a request its parser refuses (malformed, or ``Content-Length`` with
  ``Transfer-Encoding``) is contract JSON, like every other answer, instead of plain text.
"""

from __future__ import annotations

import orjson
import uvicorn

from bot_logging_server.errors import error_body
from bot_logging_server.server import CarriesSettings

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Protocol
except ImportError:  # httptools is optional: uvicorn's pure-Python h11 protocol
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Protocol  # type: ignore[assignment]

__all__ = ["JSONErrorsProtocol", "UvicornConfig", "http_protocol"]


class UvicornConfig(CarriesSettings, uvicorn.Config):
    """uvicorn's `Config`, carrying our settings to the worker processes it is pickled to."""


class JSONErrorsProtocol(_Protocol):
    """uvicorn's HTTP/1.1 protocol; a request its parser refuses gets contract JSON (400)."""

    def send_400_response(self, msg: str) -> None:
        """Answer 400 ``{"code": 400, "message": "BadRequest", "detail": msg}`` and close."""
        body = orjson.dumps(error_body(400, msg))
        head = (
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        )
        self.transport.write(head + body)
        self.transport.close()


def http_protocol() -> type[JSONErrorsProtocol]:
    """The protocol class to give uvicorn's ``http`` option."""
    return JSONErrorsProtocol
