"""The usage-event lanes (``bot_logging_server.lanes.events``): the usual ``POST
/api/events``, ``POST /eye/collector`` and ``POST /track`` are stored below Quart and answered
exactly as their handlers answer; everything else is the handler's, in its interface's own
error shape."""

from __future__ import annotations

import json
from typing import Any

import orjson
from support import counting_quart, new_account, new_key, stored_events

from bot_logging_server.lanes import get_lanes
from bot_logging_server.storage import get_storage

EYE_EVENT = {
    "session_id": "e2085be5-9137-4e4e-80b5-f1ffddc25423",
    "category": "page interaction",
    "name": "pageview",
    "data": {"host": "www.example.com", "path": "/"},
    "timestamp": "2022-01-09 09:15:27.243860",
}
TRACK_EVENT = {
    "_v": 1,
    "timestamp": "2023-03-01T10:00:00.000Z",
    "order": 3,
    "session_id": "5b0f4d3e-6c9b-4a53-9a43-3f0c1e0b2a77",
    "page": "/pricing",
    "action": "click",
    "meta": '{"x": 10}',
    "client_context": {"referer": "https://example.com/"},
    "server_context": {},
}


def _api_events(n: int, **fields: Any) -> dict:
    return {
        "events": [
            {"session": f"s{i % 2}", "name": "click", "category": "ui", "page": "/p", **fields}
            for i in range(n)
        ]
    }


async def _send(client: Any, case: tuple, key: str, account: Any) -> Any:
    """POST one case: (path, body, headers); ``{key}``/``{token}``/``{user}`` filled in."""
    path, body, headers = case
    fill = {"key": key, "token": account.token, "user": account.name}
    path = path.format(**fill)
    headers = {"User-Agent": "lane-test", **{k: v.format(**fill) for k, v in headers.items()}}
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return await client.post(path, data=data, headers=headers)


_KEY = {"X-Ingest-Key": "{key}"}
_EYE_KEY = {"Authorization": "Token {key}"}
_EYE_USER = {"Authorization": "Token {token}", "X-User": "{user}"}
_TOKEN = {"X-User": "{user}", "X-User-Token": "{token}"}
CASES = {
    "api: a batch with a key": ("/api/events", _api_events(3), _KEY),
    "api: a batch with a key in the query": ("/api/events?key={key}", _api_events(2), {}),
    "api: a batch with a user's token": ("/api/events", _api_events(2), _TOKEN),
    "api: an empty batch": ("/api/events", {"events": []}, _KEY),
    "api: an unparsable client time is kept": (
        "/api/events",
        _api_events(1, client_time="soon"),
        _KEY,
    ),
    "api: a name too long": ("/api/events", _api_events(1, name="n" * 300), _KEY),
    "api: events not a list": ("/api/events", {"events": {}}, _KEY),
    "api: not JSON": ("/api/events", b"{", _KEY),
    "api: too many events": ("/api/events", _api_events(1001), _KEY),
    "api: a wrong key": ("/api/events", _api_events(1), {"X-Ingest-Key": "0" * 32}),
    "api: an idempotency key": ("/api/events", _api_events(1), {**_KEY, "Idempotency-Key": "i"}),
    "eye: an event with a key": ("/eye/collector", EYE_EVENT, _EYE_KEY),
    "eye: an event with a user's token": ("/eye/collector/", EYE_EVENT, _EYE_USER),
    "eye: extra fields are kept": ("/eye/collector", {**EYE_EVENT, "x": 1}, _EYE_KEY),
    "eye: no session": ("/eye/collector", {**EYE_EVENT, "session_id": ""}, _EYE_KEY),
    "eye: a name too long": ("/eye/collector", {**EYE_EVENT, "name": "n" * 300}, _EYE_KEY),
    "eye: not JSON": ("/eye/collector", b"[", _EYE_KEY),
    "eye: a token header with spaces": (
        "/eye/collector",
        EYE_EVENT,
        {"Authorization": "Token {key} x"},
    ),
    "track: an event": ("/track?key={key}", TRACK_EVENT, {}),
    "track: an event from behind a proxy": (
        "/track?key={key}",
        TRACK_EVENT,
        {"X-Real-IP": "1.2.3.4"},
    ),
    "track: a bad action": ("/track?key={key}", {**TRACK_EVENT, "action": "hover"}, {}),
    "track: a bad session": ("/track?key={key}", {**TRACK_EVENT, "session_id": "x"}, {}),
    "track: not JSON": ("/track?key={key}", b"nope", {}),
    "track: no key": ("/track", TRACK_EVENT, {}),
    "track: an unknown key": ("/track?key=" + "0" * 32, TRACK_EVENT, {}),
}


def _comparable(rows: list[dict]) -> list[dict]:
    """Stored events without what differs between two owners and two moments."""
    out = []
    for row in rows:
        row = {k: v for k, v in row.items() if k not in ("id", "ingest_key_id", "user_id")}
        row.pop("clock_skew_ms")
        data = json.loads(row["data"]) if isinstance(row["data"], str) else row["data"]
        if isinstance(data, dict) and "server_context" in data:
            data["server_context"].pop("received_at", None)
        row["data"] = data
        out.append(row)
    return out


async def test_every_answer_and_every_stored_event_is_the_handlers(make_app):
    """Each case is sent once through the lanes and once to Quart alone, by an owner whose
    key and token were verified before: same status, headers, body and stored events."""
    async with make_app() as app:
        storage = get_storage(app.app)
        client = app.test_client()
        lanes = get_lanes(app.app)
        for name, case in CASES.items():
            seen = []
            for enabled in (True, False):
                lanes.enabled = enabled
                account = await new_account(storage)
                key = await new_key(storage, account.id)
                for warm in (CASES["api: a batch with a key"], CASES["api: an empty batch"]):
                    assert (await _send(client, warm, key, account)).status_code == 200
                warm = ("/api/events", {"events": []}, _TOKEN)
                assert (await _send(client, warm, key, account)).status_code == 200
                before = len(await stored_events(storage, account.id))
                response = await _send(client, case, key, account)
                headers = sorted(
                    (k.lower(), v) for k, v in response.headers.items() if k.lower() != "date"
                )
                rows = (await stored_events(storage, account.id))[before:]
                seen.append(
                    (response.status_code, headers, await response.get_data(), _comparable(rows))
                )
            lanes.enabled = True
            assert seen[0][:3] == seen[1][:3], name
            assert seen[0][3] == seen[1][3], name


async def _writer(app: Any) -> tuple[Any, Any, Any, str]:
    """The app's storage and a client, and a new account with an ingest key."""
    storage = get_storage(app.app)
    account = await new_account(storage)
    return storage, app.test_client(), account, await new_key(storage, account.id)


async def test_a_verified_writer_is_served_without_quart(make_app):
    async with make_app() as app:
        _, client, account, key = await _writer(app)
        handled = counting_quart(app)
        for case in ("api: a batch with a key", "eye: an event with a key", "track: an event"):
            first = await _send(client, CASES[case], key, account)
            assert first.status_code == 200
        assert len(handled) == 1  # the first request verified the key, in its handler
        for case in ("api: a batch with a key", "eye: an event with a key", "track: an event"):
            assert (await _send(client, CASES[case], key, account)).status_code == 200
        assert len(handled) == 1
        eye = await _send(client, CASES["eye: an event with a key"], key, account)
        assert await eye.get_data() == (
            b'"Session with session_id:e2085be5-9137-4e4e-80b5-f1ffddc25423 updated!"'
        )
        refused = await _send(client, CASES["track: a bad action"], key, account)
        assert refused.status_code == 422 and len(handled) == 2


async def test_a_disabled_key_is_not_served_by_a_lane(make_app):
    from bot_logging_server import accounts

    async with make_app() as app:
        storage, client, account, key = await _writer(app)
        assert (await _send(client, CASES["track: an event"], key, account)).status_code == 200
        (stored,) = await storage.list_keys(account.id)
        await accounts.set_key_disabled(storage, stored.name, True)
        refused = await _send(client, CASES["track: an event"], key, account)
        assert refused.status_code == 401
        assert len(await stored_events(storage, account.id)) == 1
