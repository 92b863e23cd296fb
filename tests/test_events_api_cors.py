"""CORS of the native usage-events API: a browser preflight from any origin is allowed, every
answer to ``POST /api/events`` is readable from another origin, and reading stays
same-origin.
"""

from __future__ import annotations

from support import post_events as post
from support import read_headers

pytest_plugins = ["support.api_fixtures"]


async def asgi_headers(app, method: str, path: str, headers: dict[str, str]) -> tuple:
    """Status, headers and body exactly as the app sends them (the test client's response
    object adds a default Content-Type of its own)."""
    sent: list[dict] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
        "extensions": {},
    }
    requested = False

    async def receive():
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app.app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    names = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], names, body


async def test_a_browser_preflight_from_any_origin_is_allowed(app):
    status, headers, body = await asgi_headers(
        app,
        "OPTIONS",
        "/api/events",
        {
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-ingest-key",
        },
    )
    assert (status, body) == (204, b"")
    assert headers["access-control-allow-origin"] == "*"
    assert "POST" in headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "x-ingest-key"} <= allowed
    assert int(headers["access-control-max-age"]) > 0
    assert "content-type" not in headers  # no body, and never HTML


async def test_every_answer_to_a_post_is_readable_from_another_origin(client, key):
    origin = {"Origin": "https://shop.example"}
    ok = await post(client, {"events": [{"name": "a"}]}, key, origin)
    refused = await post(client, {"events": [{"name": "a"}]}, "0" * 32, origin)
    bad = await post(client, {"events": "x"}, key, origin)
    assert [r.status_code for r in (ok, refused, bad)] == [200, 403, 400]
    assert all(r.headers.get("Access-Control-Allow-Origin") == "*" for r in (ok, refused, bad))


async def test_reading_stays_same_origin(client, user):
    response = await client.get(
        "/api/events", headers={**read_headers(user), "Origin": "https://x.example"}
    )
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers
