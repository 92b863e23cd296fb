"""Suggesting names, ``GET /api/suggest``: a user's own distinct process or logger names
starting with a prefix (wildcards are plain characters), sorted, at most twenty; a bad
query is 400 and the user's token is needed.
"""

from __future__ import annotations

import pytest
from support import assert_error, client_body, client_record, post_logs, read_headers


async def suggest(client, account, **params):
    """``GET /api/suggest`` as `account`; answer the response."""
    return await client.get("/api/suggest", query_string=params, headers=read_headers(account))


async def send_names(client, account, names: list[tuple[str, str]]) -> None:
    """One record per (p_name, p_description) in `names`, as `account`."""
    for p_name, p_description in names:
        record = client_record(p_description=p_description)
        response = await post_logs(
            client, account, client_body(account.name, [record], p_name=p_name)
        )
        assert response.status_code == 200


async def test_suggest_answers_own_distinct_names_starting_with_the_prefix_sorted(
    client, user, make_user
):
    other = await make_user()
    await send_names(client, other, [("web-other", "billing-other"), ("webhook", "bills")])
    names = [("web-2", "billing"), ("Web-1", "auth"), ("web-2", "Billing.charge"), ("cron", "a_b")]
    await send_names(client, user, names)
    answer = await suggest(client, user, field="process", prefix="WEB")
    assert answer.status_code == 200
    assert await answer.get_json() == {"field": "process", "values": ["Web-1", "web-2"]}
    loggers = await (await suggest(client, user, field="logger", prefix="bil")).get_json()
    assert loggers["values"] == ["billing", "Billing.charge"]
    everything = await (await suggest(client, user, field="process")).get_json()
    assert everything["values"] == ["cron", "Web-1", "web-2"]
    # Wildcards are plain characters.
    for prefix, expected in [("a_", ["a_b"]), ("_", []), ("%", []), ("a%", [])]:
        found = await (await suggest(client, user, field="logger", prefix=prefix)).get_json()
        assert found["values"] == expected, prefix
    # The other user's names are never suggested, and theirs are theirs.
    theirs = await (await suggest(client, other, field="process", prefix="web")).get_json()
    assert theirs["values"] == ["web-other", "webhook"]


async def test_suggest_answers_at_most_twenty_values(client, user):
    names = [(f"proc-{i:02}", "x") for i in range(25)]
    records = [client_record(p_description=f"logger-{i:02}") for i in range(25)]
    await post_logs(client, user, client_body(user.name, records))
    await send_names(client, user, names)
    answer = await (await suggest(client, user, field="logger", prefix="LOGGER-")).get_json()
    assert answer["values"] == [f"logger-{i:02}" for i in range(20)]


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({}, "query.field: missing data for required field"),
        ({"field": "msg"}, "query.field: must be one of: process, logger"),
        ({"field": "process", "prefix": "x" * 256}, "query.prefix: longer than maximum length 255"),
    ],
)
async def test_suggest_refuses_a_bad_query(client, user, params, detail):
    body = await assert_error(await suggest(client, user, **params), 400, "BadRequest")
    assert body["detail"].lower() == detail.lower()


async def test_suggest_needs_the_users_token(client, user):
    response = await client.get(
        "/api/suggest",
        query_string={"field": "process"},
        headers={"X-User": user.name, "X-User-Token": "0" * 32},
    )
    await assert_error(response, 403, "Forbidden")
