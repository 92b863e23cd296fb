"""Exporting logs, ``GET /api/logs/export``: NDJSON streamed page by page across many pages,
the filters and an optional limit applied, CSV with a header, quoting awkward messages and
defusing cells that would run as formulas; an empty export is empty; bad parameters are 400.
"""

from __future__ import annotations

import asyncio
import csv
import io

import orjson
import pytest
from support import assert_error, client_body, client_record, get_logs, post_logs, read_headers

from bot_logging_server.records import CSV_COLUMNS


@pytest.mark.parametrize(
    ("params", "field"),
    [({"format": "xml"}, "query.format"), ({"limit": "0"}, "query.limit")],
)
async def test_bad_export_parameters_are_400(client, user, params, field):
    response = await client.get("/api/logs/export", query_string=params, headers=read_headers(user))
    assert (await assert_error(response, 400, "BadRequest"))["detail"].startswith(field)


async def export(client, account, **params):
    response = await client.get(
        "/api/logs/export", query_string=params, headers=read_headers(account)
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    return response


async def test_ndjson_export_streams_every_record_across_many_pages(client, user):
    await post_logs(client, user, client_body(user.name, 2345))
    response = await export(client, user, format="ndjson")
    assert response.content_type == "application/x-ndjson"
    assert "attachment" in response.headers["Content-Disposition"]
    records = [orjson.loads(line) for line in (await response.get_data()).splitlines()]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == 2345
    assert ids == sorted(ids, reverse=True)
    first_page = (await get_logs(client, user, limit=1000))["logs"]
    assert records[:1000] == first_page


async def test_export_applies_the_filters_and_an_optional_limit(client, user):
    await post_logs(client, user, client_body(user.name, 30))  # levels 30, 40, 50 in turn
    criticals = await export(client, user, level="critical")
    lines = (await criticals.get_data()).splitlines()
    assert len(lines) == 10 and {orjson.loads(x)["level"] for x in lines} == {50}
    capped = await export(client, user, limit=7)
    assert len((await capped.get_data()).splitlines()) == 7


async def test_csv_export_has_a_header_and_quotes_awkward_messages(client, user):
    awkward = 'a "quoted", comma\nand a second line'
    body = client_body(user.name, [client_record(msg=awkward), client_record(1, msg="plain")])
    await post_logs(client, user, body)
    response = await export(client, user, format="csv")
    assert response.content_type.startswith("text/csv")
    rows = list(csv.reader(io.StringIO(await response.get_data(as_text=True))))
    assert rows[0] == list(CSV_COLUMNS)
    assert [row[CSV_COLUMNS.index("msg")] for row in rows[1:]] == ["plain", awkward]
    assert rows[1][CSV_COLUMNS.index("truncated")] == "false"
    assert rows[1][CSV_COLUMNS.index("event_at")].endswith("Z")


FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]


async def test_csv_cells_that_would_run_as_formulas_get_a_leading_quote(client, user):
    harmless = ["a=b", "1-2", " =space first", "'already quoted", ""]
    logs = [client_record(msg=m, p_description=m) for m in FORMULAS + harmless]
    await post_logs(client, user, client_body(user.name, logs, p_name="=cmd|' /C calc'!A0"))
    response = await export(client, user, format="csv")
    rows = list(csv.reader(io.StringIO(await response.get_data(as_text=True), newline="")))
    msgs = [row[CSV_COLUMNS.index("msg")] for row in rows[1:]][::-1]  # oldest first
    descriptions = [row[CSV_COLUMNS.index("p_description")] for row in rows[1:]][::-1]
    quoted = ["'" + m for m in FORMULAS] + harmless
    assert msgs == descriptions == quoted
    assert {row[CSV_COLUMNS.index("p_name")] for row in rows[1:]} == {"'=cmd|' /C calc'!A0"}
    # NDJSON carries the text as stored.
    lines = (await (await export(client, user, format="ndjson")).get_data()).splitlines()
    assert [orjson.loads(line)["msg"] for line in lines][::-1] == FORMULAS + harmless


async def test_an_empty_export_is_empty(client, user):
    assert await (await export(client, user)).get_data() == b""
    assert await (await export(client, user, format="csv")).get_data(as_text=True) == (
        ",".join(CSV_COLUMNS) + "\r\n"
    )


async def test_export_is_streamed_page_by_page(client, user):
    await post_logs(client, user, client_body(user.name, 2500))
    chunks = []
    async with asyncio.timeout(30):
        connection = client.request("/api/logs/export", headers=read_headers(user))
        async with connection:
            await connection.send_complete()
            while sum(chunk.count(b"\n") for chunk in chunks) < 2500:
                chunks.append(await connection.receive())
    # One body chunk per page of at most 1000 records: 1000 + 1000 + 500.
    assert [chunk.count(b"\n") for chunk in chunks if chunk] == [1000, 1000, 500]
