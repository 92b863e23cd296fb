#!/usr/bin/env python3
"""The framework's floor: what hypercorn (and Quart) cost per request with no work at all.

``floor_app.py --kind quart`` serves a Quart app whose ``/send_logs`` reads the body and
answers the contract's 200 JSON without parsing, checking or storing anything;
``--kind asgi`` does the same as a bare ASGI callable (no Quart); ``--http-server uvicorn``
serves either with uvicorn + httptools instead of hypercorn. bench/run.py drives them
with the same wrk load as the real server, so the report shows how much of each request is
the HTTP stack itself: no server built on it can answer more requests per second than this.
"""

from __future__ import annotations

import argparse
import asyncio

import hypercorn.asyncio
import hypercorn.config
from quart import Quart, Response, request

OK = b'{"code":200,"message":"Logs added successfully","added":1}'


def quart_app() -> Quart:
    app = Quart(__name__)
    app.url_map.merge_slashes = False

    @app.post("/send_logs")
    @app.post("//send_logs")
    async def send_logs() -> Response:
        await request.get_data()
        return Response(OK, content_type="application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', content_type="application/json")

    return app


async def asgi_app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": OK})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kind", choices=["quart", "asgi"], default="quart")
    parser.add_argument("--event-loop", choices=["asyncio", "uvloop"], default="uvloop")
    parser.add_argument("--http-server", choices=["hypercorn", "uvicorn"], default="hypercorn")
    args = parser.parse_args()
    app = quart_app() if args.kind == "quart" else asgi_app
    if args.http_server == "uvicorn":
        import uvicorn

        uvicorn.run(
            app,
            host="127.0.0.1",
            port=args.port,
            loop=args.event_loop,
            http="httptools",
            access_log=False,
            log_level="warning",
        )
        return
    config = hypercorn.config.Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    serve = hypercorn.asyncio.serve(app, config)
    if args.event_loop == "uvloop":
        import uvloop

        uvloop.run(serve)
    else:
        asyncio.run(serve)


if __name__ == "__main__":
    main()
