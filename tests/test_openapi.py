"""``/openapi.json`` and ``/docs`` (docs/API.md): every endpoint documented, from the schemas.

The document is a valid OpenAPI 3.0 document, it names every route of the app, the query
parameters it lists are the ones the server reads, real answers load through the schemas it
was generated from, and ``/docs`` needs nothing from another host.
"""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate
from support import client_body, post_logs, read_headers

from bot_logging_server.openapi import responses

# Aliases of /send_logs that the contract requires; documented in the description.
ALIASES = {"//send_logs", "/send_logs/", "//send_logs/"}


@pytest.fixture
async def spec(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200 and response.content_type == "application/json"
    return await response.get_json()


async def test_the_document_is_valid_openapi_3(spec):
    validate(spec)
    assert spec["openapi"].startswith("3.0")


async def test_every_route_of_the_app_is_documented(app, spec):
    routes = set()
    for rule in app.app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        methods = {m.lower() for m in rule.methods} - {"head", "options"}
        if path not in ALIASES:
            routes |= {(path, method) for method in methods}
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert routes == documented


def params(spec, path):
    return {p["name"] for p in spec["paths"][path]["get"]["parameters"]}


FILTERS = {"level", "since", "until", "q", "p_name", "p_description", "pid"}


async def test_read_endpoints_document_the_parameters_they_read(spec):
    assert params(spec, "/api/logs") == FILTERS | {"sort", "order", "limit", "cursor"}
    assert params(spec, "/api/logs/export") == FILTERS | {
        "sort",
        "order",
        "format",
        "limit",
        "cursor",
    }
    assert params(spec, "/api/stats") == FILTERS | {"bucket"}
    assert params(spec, "/api/tail") == FILTERS | {"Last-Event-ID"}


async def test_send_logs_documents_the_contracts_body_and_answers(spec):
    post = spec["paths"]["/send_logs"]["post"]
    assert set(post["responses"]) >= {"200", "400", "403", "413", "503"}
    body = spec["components"]["schemas"]["BatchData"]
    assert set(body["required"]) == {"user", "pid", "p_name", "post_time", "logs"}
    record = spec["components"]["schemas"]["LogRecord"]
    assert set(record["required"]) == {"level", "msg", "event_at"}
    assert "integer" in str(record["properties"]["level"]) and "string" in str(
        record["properties"]["level"]
    )


async def test_real_answers_load_through_the_documented_schemas(client, user):
    await post_logs(client, user, client_body(user.name, 3))
    logs = await client.get("/api/logs", headers=read_headers(user))
    page = responses.LogPageSchema().load(await logs.get_json())
    assert len(page["logs"]) == 3
    assert set(page["logs"][0]) == set(responses.StoredLogSchema().fields)
    stats = await client.get("/api/stats", headers=read_headers(user))
    assert (
        sum(c["count"] for c in responses.StatsSchema().load(await stats.get_json())["counts"]) == 3
    )
    refused = await client.get("/api/logs", headers={"X-User": user.name})
    assert responses.ErrorSchema().load(await refused.get_json())["code"] == 403
    health = await client.get("/healthz")
    responses.HealthSchema().load(await health.get_json())


async def test_docs_page_and_its_assets_are_served_locally(client):
    page = await client.get("/docs")
    assert page.status_code == 200 and page.content_type.startswith("text/html")
    html = await page.get_data(as_text=True)
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    links = re.findall(r'(?:src|href)="([^"]+)"', html)
    links = [link for link in links if link != "data:,"]  # the empty icon
    assert links and all(link.startswith("/") and not link.startswith("//") for link in links)
    for link in links:
        assert (await client.get(link)).status_code == 200, link


async def test_create_user_is_documented_when_the_endpoint_is_on(make_app):
    async with make_app(api_key="k" * 32) as app:
        response = await app.test_client().get("/openapi.json")
        spec = await response.get_json()
    assert "post" in spec["paths"]["/create_user"]
