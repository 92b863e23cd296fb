"""Every answer has the contract's JSON shape; no route answers HTML (docs/API.md, Conventions)."""

from __future__ import annotations

import pytest
from support import assert_error

from bot_logging_server.errors import error_body


@pytest.mark.parametrize("path", ["/nope", "/send_logs/x", "/static/x.css", "/healthz/x"])
async def test_unknown_path_is_404_json(client, path):
    await assert_error(await client.get(path), 404, "NotFound")


async def test_every_route_answers_405_json_to_a_wrong_method(app):
    client = app.test_client()
    methods_of: dict[str, set[str]] = {}  # a path may have one rule per method
    for rule in app.app.url_map.iter_rules():
        if not rule.arguments:
            methods_of.setdefault(rule.rule, set()).update(rule.methods)
    checked = 0
    for path, methods in methods_of.items():
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            if method in methods:
                continue
            response = await client.open(path, method=method)
            await assert_error(response, 405, "MethodNotAllowed")
            assert set(response.headers["Allow"].replace(" ", "").split(",")) >= (
                methods - {"HEAD"}
            )
            checked += 1
    assert checked >= 10


async def test_unexpected_exception_is_500_json_without_details(app, caplog):
    @app.app.get("/boom")
    async def boom():
        raise RuntimeError("secret internals: SELECT * FROM users")

    response = await app.test_client().get("/boom")
    body = await assert_error(response, 500, "InternalServerError")
    assert body == {"code": 500, "message": "InternalServerError"}
    assert "secret internals" not in await response.get_data(as_text=True)
    # ...but the server's own log has the traceback.
    assert any("RuntimeError" in (r.exc_text or "") for r in caplog.records)


def test_error_body_has_the_contract_names():
    assert error_body(400) == {"code": 400, "message": "BadRequest"}
    assert error_body(403) == {"code": 403, "message": "Forbidden"}
    assert error_body(404) == {"code": 404, "message": "NotFound"}
    assert error_body(405) == {"code": 405, "message": "MethodNotAllowed"}
    assert error_body(413) == {"code": 413, "message": "PayloadTooLarge"}
    assert error_body(429) == {"code": 429, "message": "TooManyRequests"}
    assert error_body(500) == {"code": 500, "message": "InternalServerError"}
    assert error_body(503) == {"code": 503, "message": "ServiceUnavailable"}
    assert error_body(400, "data.pid: x") == {
        "code": 400,
        "message": "BadRequest",
        "detail": "data.pid: x",
    }
