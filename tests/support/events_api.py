"""The native usage-events API through the app's test client: `post_events` (``POST
/api/events``, with an ingest key or other headers), `read_json` (a read path as an account,
answering 200) and `assert_events_added` (the answer of a batch added)."""

from __future__ import annotations

from support.client import read_headers

EVENTS_ADDED = {"code": 200, "message": "Events added successfully"}


async def post_events(client, body, key=None, headers=None, **kwargs):
    """``POST /api/events`` with `body` as JSON, `key` as ``X-Ingest-Key`` (if any) and
    `headers`; answer the response."""
    sent = {"X-Ingest-Key": key} if key else {}
    return await client.post(
        "/api/events", json=body, headers={**sent, **(headers or {})}, **kwargs
    )


async def read_json(client, path, account, **params):
    """``GET path`` as `account` with `params`; assert 200 and answer the JSON."""
    response = await client.get(path, query_string=params, headers=read_headers(account))
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


async def assert_events_added(response, added):
    """`response` is the JSON answer of a batch of which `added` events were added."""
    assert response.status_code == 200, await response.get_data(as_text=True)
    assert response.content_type == "application/json"
    assert await response.get_json() == {**EVENTS_ADDED, "added": added}
