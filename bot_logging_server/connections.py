"""The connection cap: at most ``--max-connections`` open connections per process.

Every open connection costs a file descriptor and a little memory, whether or not it has a
request in progress (`bot_logging_server.admission` caps those). Past the cap, a new
connection is answered at once, before anything is read from it, with contract JSON::

    HTTP/1.1 503 Service Unavailable
    Retry-After: 1
    Connection: close

    {"code": 503, "message": "ServiceUnavailable", "detail": "too many connections at once"}

and closed. The connections already open are not disturbed; WebSockets and live tails
count as the connections they are.

The cap is put into the HTTP server itself, for the process that serves (each worker of
``--workers`` has its own): `install_hypercorn_cap` for hypercorn, and
`bot_logging_server.uvicorn_http.JSONErrorsProtocol` asks `refused` for uvicorn.
"""

from __future__ import annotations

import asyncio

import orjson

from bot_logging_server.errors import RETRY_AFTER_SECONDS, error_body

__all__ = ["DETAIL", "cap_connections", "install_hypercorn_cap", "refusal", "refused"]

#: The ``detail`` of the answer past the cap.
DETAIL = "too many connections at once"

_limit: int | None = None


def cap_connections(limit: int | None) -> None:
    """Cap this process's open connections at `limit` (None: no cap)."""
    global _limit
    _limit = limit


def refused(open_connections: int) -> bool:
    """Whether a new connection, with `open_connections` open besides it, is over the cap."""
    return _limit is not None and open_connections >= _limit


def refusal() -> bytes:
    """The whole HTTP/1.1 answer sent to a connection past the cap."""
    body = orjson.dumps(error_body(503, DETAIL))
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {RETRY_AFTER_SECONDS}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def install_hypercorn_cap(limit: int) -> None:
    """Cap this process's hypercorn (asyncio and uvloop workers alike) at `limit`
    connections. Call it before serving."""
    import hypercorn.asyncio.run as hypercorn_run
    from hypercorn.asyncio.tcp_server import TCPServer

    cap_connections(limit)
    counted = {"open": 0}

    class CappedTCPServer(TCPServer):
        """hypercorn's connection handler, refusing connections past the cap."""

        async def run(self) -> None:
            if refused(counted["open"]):
                await _refuse(self.writer)
                return
            counted["open"] += 1
            try:
                await super().run()
            finally:
                counted["open"] -= 1

    hypercorn_run.TCPServer = CappedTCPServer  # type: ignore[misc]


async def _refuse(writer: asyncio.StreamWriter) -> None:
    """Answer `refusal` on `writer` and close it (a peer already gone is no error)."""
    try:
        writer.write(refusal())
        await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
