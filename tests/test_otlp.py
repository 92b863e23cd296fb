"""OpenTelemetry logs: ``POST /v1/logs`` (OTLP/HTTP, protobuf and JSON; docs/API.md).

The client of the first tests is the OpenTelemetry Python SDK itself, its OTLP/HTTP log
exporter behind Python's logging, against a real server process on both backends. OTLP/JSON
is sent by hand, and the corners (partial success, errors, compression, keys) go through the
in-process app.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
import os
import tracemalloc
import urllib.parse
import urllib.request
import uuid
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from support import (
    Account,
    ServerProcess,
    add_user,
    assert_error,
    new_account,
    read_headers,
    recent_logs,
)

from bot_logging_server.schemas.otlp import severity_level

PROTOBUF = "application/x-protobuf"

# -- the SDK's exporter against a real server ----------------------------------------------


@dataclass
class Live:
    port: int
    user: Account

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/logs"

    def rows(self, logger: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"p_description": logger, "limit": 1000})
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/logs?{query}", headers=read_headers(self.user)
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return sorted(json.loads(response.read())["logs"], key=lambda row: row["id"])


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    if request.param == "sqlite":
        database_url = f"sqlite:///{tmp_path_factory.mktemp('otlp-db') / 'logs.db'}"
    else:
        database_url = request.getfixturevalue("mysql_database")
    user = asyncio.run(add_user(database_url))
    with ServerProcess(database_url, tmp_path_factory.mktemp("otlp-server")) as server:
        server.wait_ready_blocking()
        yield Live(server.port, user)


@pytest.fixture
def otel_logger(live: Live) -> Iterator[Any]:
    """``make(**exporter_settings)``: a Python logger whose records the SDK exports."""
    made: list[tuple[logging.Logger, LoggingHandler, LoggerProvider]] = []

    def make(**settings: Any) -> logging.Logger:
        settings.setdefault("headers", {"X-User": live.user.name, "X-User-Token": live.user.token})
        resource = Resource.create({"service.name": "billing-svc", "process.pid": os.getpid()})
        provider = LoggerProvider(resource=resource)
        provider.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=live.endpoint, **settings))
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the SDK's own handler
            handler = LoggingHandler(logger_provider=provider)
        log = logging.getLogger(f"otlp_test.{uuid.uuid4().hex[:8]}")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)
        made.append((log, handler, provider))
        return log

    yield make
    for log, handler, provider in made:
        log.removeHandler(handler)
        provider.shutdown()


def test_the_sdk_exporter_stores_python_logging_records(live, otel_logger):
    log = otel_logger()
    log.warning("sku %s out of stock", "A-17", extra={"order": 17})
    log.info("shipped")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.exception("charge failed")
    rows = live.rows(log.name)
    assert [row["level"] for row in rows] == [30, 20, 40]
    messages = [json.loads(row["msg"]) for row in rows]
    assert [m["body"] for m in messages] == ["sku A-17 out of stock", "shipped", "charge failed"]
    assert messages[0]["attributes"]["order"] == 17
    assert messages[0]["attributes"]["code.function.name"] == (
        "test_the_sdk_exporter_stores_python_logging_records"
    )
    assert messages[2]["attributes"]["exception.type"] == "ZeroDivisionError"
    assert "Traceback" in messages[2]["attributes"]["exception.stacktrace"]
    for row in rows:
        assert (row["p_name"], row["pid"], row["p_description"]) == (
            "billing-svc",
            os.getpid(),
            log.name,
        )
        event_at = datetime.fromisoformat(row["event_at"].replace("Z", "+00:00"))
        assert abs((datetime.now(UTC) - event_at).total_seconds()) < 60


@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.Deflate], ids=str)
def test_the_sdk_exporter_may_compress(live, otel_logger, compression):
    log = otel_logger(compression=compression)
    log.error("compressed")
    [row] = live.rows(log.name)
    assert json.loads(row["msg"])["body"] == "compressed"


def test_a_bearer_token_names_the_user_with_x_user(live, otel_logger):
    log = otel_logger(
        headers={"X-User": live.user.name, "Authorization": f"Bearer {live.user.token}"}
    )
    log.error("bearer")
    assert len(live.rows(log.name)) == 1


def test_a_wrong_token_stores_nothing(live, otel_logger):
    log = otel_logger(headers={"X-User": live.user.name, "X-User-Token": "0" * 32})
    log.error("refused")
    assert live.rows(log.name) == []


def test_otlp_json_by_hand(live):
    body = otlp_json(
        record(
            severityNumber="SEVERITY_NUMBER_ERROR",
            body={"kvlistValue": {"values": [attribute("sku", "A-17")]}},
            attributes=[attribute("order", 17), attribute("tags", ["a", "b"])],
            traceId="5b8efff798038103d269b633813fc60c",
            spanId="eee19b7ec3c1b174",
        ),
        scope="json-by-hand",
    )
    request = urllib.request.Request(
        live.endpoint,
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "X-User": live.user.name,
            "X-User-Token": live.user.token,
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200 and response.headers["Content-Type"] == "application/json"
        assert json.loads(response.read()) == {}
    [row] = live.rows("json-by-hand")
    assert row["level"] == 40 and row["p_name"] == "by-hand" and row["pid"] == 4242
    assert row["event_at"] == "2023-11-14T22:13:20.123456Z"
    assert json.loads(row["msg"]) == {
        "body": {"sku": "A-17"},
        "attributes": {"order": 17, "tags": ["a", "b"]},
        "trace_id": "5b8efff798038103d269b633813fc60c",
        "span_id": "eee19b7ec3c1b174",
    }


# -- OTLP/JSON helpers ---------------------------------------------------------------------


def attribute(key: str, value: Any) -> dict[str, Any]:
    return {"key": key, "value": any_value(value)}


def any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 as a string, as OTLP/JSON writes it
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    return {"stringValue": value}


def record(**fields: Any) -> dict[str, Any]:
    doc = {
        "timeUnixNano": "1700000000123456789",
        "severityNumber": 9,
        "body": {"stringValue": "m"},
    }
    doc.update(fields)
    return doc


def otlp_json(*records: dict[str, Any], scope: str = "billing") -> dict[str, Any]:
    return {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [
                        attribute("service.name", "by-hand"),
                        attribute("process.pid", 4242),
                    ]
                },
                "scopeLogs": [{"scope": {"name": scope}, "logRecords": list(records)}],
            }
        ]
    }


def as_protobuf(document: dict[str, Any]) -> bytes:
    from google.protobuf import json_format

    return json_format.ParseDict(document, ExportLogsServiceRequest()).SerializeToString()


def otlp_headers(account: Any, mimetype: str = "application/json", **extra: str) -> dict:
    return {"Content-Type": mimetype, "X-User": account.name, "X-User-Token": account.token} | extra


# -- in process ----------------------------------------------------------------------------


async def test_rejected_records_are_counted_in_partial_success_and_the_rest_stored(
    client, storage, user
):
    body = otlp_json(record(), record(severityNumber=99), record(severityNumber=-1), record())
    response = await client.post("/v1/logs", json=body, headers=otlp_headers(user))
    assert response.status_code == 200
    assert await response.get_json() == {
        "partialSuccess": {
            "rejectedLogRecords": "2",
            "errorMessage": "2 log records rejected: severity_number outside 0-24",
        }
    }
    assert await storage.count_logs(user.id) == 2


async def test_partial_success_in_protobuf(client, storage, user):
    body = as_protobuf(otlp_json(record(), record(severityNumber=30)))
    response = await client.post("/v1/logs", data=body, headers=otlp_headers(user, PROTOBUF))
    assert response.status_code == 200 and response.content_type == PROTOBUF
    answer = ExportLogsServiceResponse.FromString(await response.get_data())
    assert answer.partial_success.rejected_log_records == 1
    assert await storage.count_logs(user.id) == 1


async def test_a_full_success_answers_an_empty_response(client, storage, user):
    body = as_protobuf(otlp_json(record(), record()))
    response = await client.post("/v1/logs", data=body, headers=otlp_headers(user, PROTOBUF))
    assert response.status_code == 200
    assert await response.get_data() == b""  # an empty ExportLogsServiceResponse
    assert await storage.count_logs(user.id) == 2


async def test_basic_auth_names_user_and_token_at_once(client, storage, user):
    pair = base64.b64encode(f"{user.name}:{user.token}".encode()).decode()
    headers = {"Content-Type": PROTOBUF, "Authorization": f"Basic {pair}"}
    response = await client.post("/v1/logs", data=as_protobuf(otlp_json(record())), headers=headers)
    assert response.status_code == 200
    assert await storage.count_logs(user.id) == 1


@pytest.mark.parametrize(
    ("number", "text", "level"),
    [
        (1, "", 5),
        (4, "", 8),
        (5, "", 10),
        (9, "", 20),
        (12, "", 23),
        (13, "", 30),
        (17, "", 40),
        (21, "", 50),
        (24, "", 53),
        (0, "Warn", 30),
        (0, "fatal", 50),
        (0, "trace", 5),
        (0, "notice", 0),
        (0, "", 0),
        (25, "", None),
        (-3, "ERROR", None),
    ],
)
def test_severity_to_python_level(number, text, level):
    assert severity_level(number, text) == level


def test_python_levels_survive_the_sdks_mapping_and_back():
    from opentelemetry.sdk._logs._internal import std_to_otel

    for levelno in (10, 11, 12, 13, 20, 21, 30, 33, 40, 43, 50, 53):
        assert severity_level(std_to_otel(levelno).value, "") == levelno


async def test_a_record_without_times_gets_the_receive_time(client, storage, user):
    body = otlp_json(record(timeUnixNano="0"), record(timeUnixNano="0", observedTimeUnixNano="1"))
    await client.post("/v1/logs", json=body, headers=otlp_headers(user))
    newest, oldest = await recent_logs(storage, user.id)
    assert oldest.event_at == oldest.received_at
    assert newest.event_at == datetime(1970, 1, 1)


@pytest.mark.parametrize("mimetype", [PROTOBUF, "application/json"])
@pytest.mark.parametrize("who", ["wrong-token", "no-user"])
async def test_a_wrong_token_is_403_in_the_requests_encoding(client, storage, user, mimetype, who):
    headers = otlp_headers(user, mimetype, **{"X-User-Token": "0" * 32})
    if who == "no-user":
        headers = {"Content-Type": mimetype, "Authorization": f"Bearer {user.token}"}
    data = as_protobuf(otlp_json(record())) if mimetype == PROTOBUF else b"{}"
    response = await client.post("/v1/logs", data=data, headers=headers)
    assert response.status_code == 403
    if mimetype == PROTOBUF:
        assert response.content_type == PROTOBUF
        status = Status.FromString(await response.get_data())
        assert (status.code, status.message) == (7, "Forbidden")  # PERMISSION_DENIED
    else:
        await assert_error(response, 403, "Forbidden")
    assert await storage.count_logs(user.id) == 0


@pytest.mark.parametrize(
    ("mimetype", "data", "extra", "status", "message"),
    [
        pytest.param(PROTOBUF, b"\xff\xff\xff", {}, 400, "body: not an OTLP", id="bad-protobuf"),
        pytest.param(
            "application/json", b'{"resourceLogs": 5}', {}, 400, "body: not an OTLP", id="bad-json"
        ),
        pytest.param(
            "application/json",
            json.dumps(otlp_json(record(traceId="zz"))).encode(),
            {},
            400,
            "traceId: not hexadecimal",
            id="bad-trace-id",
        ),
        pytest.param("text/plain", b"hello", {}, 415, "Content-Type:", id="text"),
        pytest.param(
            PROTOBUF, b"x", {"Content-Encoding": "br"}, 415, "Content-Encoding", id="brotli"
        ),
        pytest.param(
            PROTOBUF, b"not gzip", {"Content-Encoding": "gzip"}, 400, "body: not valid", id="gzip"
        ),
        pytest.param(
            PROTOBUF,
            gzip.compress(b"\0" * 5000)[:-10],
            {"Content-Encoding": "gzip"},
            400,
            "body: gzip data cut short",
            id="gzip-cut",
        ),
    ],
)
async def test_a_request_that_is_not_an_export_stores_nothing(
    client, storage, user, mimetype, data, extra, status, message
):
    response = await client.post(
        "/v1/logs", data=data, headers=otlp_headers(user, mimetype, **extra)
    )
    assert response.status_code == status
    if response.content_type == PROTOBUF:
        assert Status.FromString(await response.get_data()).message.startswith(message)
    else:
        body = await response.get_json()
        assert body["code"] == status and body["detail"].startswith(message)
    assert await storage.count_logs(user.id) == 0


async def test_a_body_that_inflates_past_the_limit_is_413_without_inflating_it(make_app):
    async with make_app(max_body_bytes=65536) as app:
        from bot_logging_server.storage import get_storage

        account = await new_account(get_storage(app.app))
        bomb = zlib.compress(b"\0" * 50_000_000)  # 49 KB that inflate to 50 MB
        assert len(bomb) < 65536
        tracemalloc.start()
        try:
            response = await app.test_client().post(
                "/v1/logs",
                data=bomb,
                headers=otlp_headers(account, PROTOBUF, **{"Content-Encoding": "deflate"}),
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert response.status_code == 413
        status = Status.FromString(await response.get_data())
        assert status.code == 8 and "more than 65536 bytes once decompressed" in status.message
        assert peak < 5_000_000  # never more than the limit was inflated


async def test_more_records_than_the_limit_is_413(make_app):
    async with make_app(max_records=2) as app:
        from bot_logging_server.storage import get_storage

        account = await new_account(get_storage(app.app))
        body = otlp_json(record(), record(), record())
        response = await app.test_client().post(
            "/v1/logs", json=body, headers=otlp_headers(account)
        )
        body = await assert_error(response, 413, "PayloadTooLarge")
        assert body["detail"] == "logRecords: more than 2 records"


async def test_an_idempotency_key_stores_an_export_once(client, storage, user):
    data = as_protobuf(otlp_json(record(), record(severityNumber=99)))
    headers = otlp_headers(user, PROTOBUF, **{"Idempotency-Key": str(uuid.uuid4())})
    first = await client.post("/v1/logs", data=data, headers=headers)
    again = await client.post("/v1/logs", data=data, headers=headers)
    assert first.status_code == again.status_code == 200
    assert await first.get_data() == await again.get_data()  # the same partial_success
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await storage.count_logs(user.id) == 1
