"""Counting logs, ``GET /api/stats``: records per level per hour (or day, or minute), newest
first, with the filters applied and times cut to the bucket; a bad bucket is 400.
"""

from __future__ import annotations

from support import assert_error, client_body, client_record, post_logs, read_headers

pytest_plugins = ["support.api_fixtures"]


async def test_bad_stats_bucket_is_400(client, user):
    response = await client.get(
        "/api/stats", query_string={"bucket": "week"}, headers=read_headers(user)
    )
    assert (await assert_error(response, 400, "BadRequest"))["detail"].startswith("query.bucket")


async def stats(client, account, **params):
    response = await client.get("/api/stats", query_string=params, headers=read_headers(account))
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


def table(body):
    return [(c["start"], c["level_name"], c["count"]) for c in body["counts"]]


async def test_stats_count_records_per_level_per_hour_newest_first(client, seeded):
    user, _, _, _ = seeded
    body = await stats(client, user)
    assert (body["bucket"], body["partial"]) == ("hour", False)
    assert table(body) == [
        ("2024-03-03T00:00:00.000000Z", "Level 35", 1),
        ("2024-03-02T09:00:00.000000Z", "ERROR", 1),
        ("2024-03-02T08:00:00.000000Z", "CRITICAL", 1),
        ("2024-03-01T11:00:00.000000Z", "ERROR", 1),
        ("2024-03-01T10:00:00.000000Z", "INFO", 1),
        ("2024-03-01T10:00:00.000000Z", "WARNING", 1),
        ("2024-03-01T09:00:00.000000Z", "DEBUG", 1),
    ]


async def test_stats_per_day_and_per_minute_with_filters(client, seeded):
    user, _, _, _ = seeded
    assert table(await stats(client, user, bucket="day", level=30)) == [
        ("2024-03-03T00:00:00.000000Z", "Level 35", 1),
        ("2024-03-02T00:00:00.000000Z", "ERROR", 1),
        ("2024-03-02T00:00:00.000000Z", "CRITICAL", 1),
        ("2024-03-01T00:00:00.000000Z", "WARNING", 1),
        ("2024-03-01T00:00:00.000000Z", "ERROR", 1),
    ]
    assert table(await stats(client, user, bucket="minute", q="payment", until="2024-03-02")) == [
        ("2024-03-01T11:00:00.000000Z", "ERROR", 1),
    ]


async def test_stats_buckets_cut_times_to_the_minute(client, user):
    times = ["2024-05-05T12:22:01.5", "2024-05-05T12:22:59.999999", "2024-05-05T12:23:00"]
    body = client_body(user.name, [client_record(level=40, event_at=t) for t in times])
    await post_logs(client, user, body)
    assert table(await stats(client, user, bucket="minute")) == [
        ("2024-05-05T12:23:00.000000Z", "ERROR", 1),
        ("2024-05-05T12:22:00.000000Z", "ERROR", 2),
    ]
