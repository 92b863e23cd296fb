"""The tracker demo (docs/EVENTS-INTERFACES.md): ``POST /track``, its pydantic-style 422s,
``null`` answers, ``server_context`` from the request, keys and the keyless user, on both
backends."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from support import count_rows, new_key, no_leak, stored_events

from bot_logging_server.config import build_config

SESSION = "5b0f4d3e-6c9b-4a53-9a43-3f0c1e0b2a77"
# The tracker page's body, byte for byte (JSON.stringify: no spaces; `_v`; meta a string).
CLIENT_BODY = (
    b'{"_v":1,"timestamp":"2023-03-01T10:00:00.000Z","order":3,'
    b'"session_id":"5b0f4d3e-6c9b-4a53-9a43-3f0c1e0b2a77","page":"/pricing","action":"click",'
    b'"meta":"{\\"x\\":10,\\"y\\":20,\\"el\\":\\"button#buy\\"}",'
    b'"client_context":{"referer":"https://example.com/","language":"en-US"},'
    b'"server_context":{}}'
)
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"


def body(**changes) -> dict:
    doc = json.loads(CLIENT_BODY)
    for name, value in changes.items():
        if value is ...:
            doc.pop(name)
        else:
            doc[name] = value
    return doc


async def send(client, key: str | None, payload=CLIENT_BODY, **headers):
    if not isinstance(payload, bytes):
        payload = json.dumps(payload).encode()
    path = "/track" if key is None else f"/track?key={key}"
    return await client.post(
        path, data=payload, headers={"Content-Type": "application/json", **headers}
    )


async def answer(response) -> object:
    text = await response.get_data(as_text=True)
    no_leak(text)
    assert response.content_type == "application/json", text
    return json.loads(text)


# -- the client's own request ---------------------------------------------------------------


async def test_the_clients_request_is_answered_null_and_stored_whole(client, storage, user):
    key = await new_key(storage, user.id)
    response = await send(client, key, **{"User-Agent": BROWSER, "X-Real-IP": "203.0.113.9"})
    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert await response.get_data() == b"null"
    (row,) = await stored_events(storage, user.id)
    assert (row["source"], row["name"], row["session_key"], row["page"]) == (
        "track",
        "click",
        SESSION,
        "/pricing",
    )
    assert row["sequence"] == 3 and row["client_time"] == "2023-03-01T10:00:00.000Z"
    assert storage.db.dialect.decode_time(row["client_at"]) == datetime(2023, 3, 1, 10)
    assert (row["ip"], row["user_agent"]) == ("203.0.113.9", BROWSER)
    assert row["data_raw"] == '{"x":10,"y":20,"el":"button#buy"}'
    data = json.loads(row["data"])
    received = data["server_context"].pop("received_at")
    assert abs(datetime.fromisoformat(received.rstrip("Z")) - datetime.utcnow()) < timedelta(
        minutes=1
    )
    assert data == {
        "_v": 1,
        "timestamp": "2023-03-01T10:00:00.000Z",
        "order": 3,
        "session_id": SESSION,
        "page": "/pricing",
        "action": "click",
        "meta": {"x": 10, "y": 20, "el": "button#buy"},
        "client_context": {"referer": "https://example.com/", "language": "en-US"},
        "server_context": {"client_ip": "203.0.113.9", "user_agent": BROWSER},
    }


async def test_server_context_is_the_servers_own_whatever_the_client_claims(client, storage, user):
    key = await new_key(storage, user.id)
    claimed = {"client_ip": "1.1.1.1", "user_agent": "fake", "received_at": "never", "k": "v"}
    await send(client, key, body(server_context=claimed), **{"User-Agent": BROWSER})
    (row,) = await stored_events(storage, user.id)
    server = json.loads(row["data"])["server_context"]
    assert server["client_ip"] == "<local>"  # the peer, without X-Real-IP
    assert server["user_agent"] == BROWSER and server["received_at"] != "never"
    assert server["k"] == "v"


async def test_a_missing_user_agent_is_accepted(client, storage, user):
    key = await new_key(storage, user.id)
    response = await client.post(f"/track?key={key}", data=CLIENT_BODY, headers={"User-Agent": ""})
    assert response.status_code == 200


async def test_optional_fields_may_be_left_out_and_unknown_ones_are_ignored(client, storage, user):
    key = await new_key(storage, user.id)
    minimal = body(page=..., meta=..., client_context=..., server_context=..., extra=1)
    response = await send(client, key, minimal)
    assert response.status_code == 200 and await answer(response) is None
    (row,) = await stored_events(storage, user.id)
    data = json.loads(row["data"])
    assert "extra" not in data and data["page"] is None and data["meta"] is None
    assert data["client_context"] == {} and row["data_raw"] is None


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1677664800, datetime(2023, 3, 1, 10)),
        (1677664800000, datetime(2023, 3, 1, 10)),
        ("1677664800", datetime(2023, 3, 1, 10)),
        ("2023-03-01T11:00:00+01:00", datetime(2023, 3, 1, 10)),
        ("2023-03-01 10:00:00", datetime(2023, 3, 1, 10)),
    ],
)
async def test_iso_and_unix_timestamps_are_accepted(client, storage, user, timestamp, expected):
    key = await new_key(storage, user.id)
    response = await send(client, key, body(timestamp=timestamp))
    assert response.status_code == 200
    (row,) = await stored_events(storage, user.id)
    assert storage.db.dialect.decode_time(row["client_at"]) == expected


async def test_lax_integers_and_uuids_as_pydantic_took_them(client, storage, user):
    key = await new_key(storage, user.id)
    upper = "{" + SESSION.upper() + "}"
    response = await send(client, key, body(_v="2", order=4.0, session_id=upper, page=7))
    assert response.status_code == 200
    (row,) = await stored_events(storage, user.id)
    assert row["session_key"] == SESSION and row["sequence"] == 4 and row["page"] == "7"


# -- validation: pydantic's 422, nothing written --------------------------------------------


def problem(loc, msg, type_, **ctx) -> dict:
    item = {"loc": ["body", *loc], "msg": msg, "type": type_}
    if ctx:
        item["ctx"] = ctx
    return item


MISSING = "field required", "value_error.missing"
NOT_INT = "value is not a valid integer", "type_error.integer"
NOT_STR = "str type expected", "type_error.str"
NOT_DICT = "value is not a valid dict", "type_error.dict"
ACTION_MSG = "unexpected value; permitted: 'load', 'scroll', 'click'"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(b"{nope", [problem([], "invalid JSON", "value_error.jsondecode")], id="json"),
        pytest.param(b"", [problem([], "invalid JSON", "value_error.jsondecode")], id="empty"),
        pytest.param(b"[]", [problem([], *NOT_DICT)], id="list"),
        pytest.param(body(_v=...), [problem(["_v"], *MISSING)], id="no-v"),
        pytest.param(body(_v=None), [problem(["_v"], *MISSING)], id="null-v"),
        pytest.param(body(_v="one"), [problem(["_v"], *NOT_INT)], id="text-v"),
        pytest.param(body(_v=True), [problem(["_v"], *NOT_INT)], id="bool-v"),
        pytest.param(body(_v=1.5), [problem(["_v"], *NOT_INT)], id="fraction-v"),
        pytest.param(
            body(_v=0),
            [
                problem(
                    ["_v"],
                    "ensure this value is greater than 0",
                    "value_error.number.not_gt",
                    limit_value=0,
                )
            ],
            id="zero-v",
        ),
        pytest.param(body(_v=2**63), [problem(["_v"], *NOT_INT)], id="huge-v"),
        pytest.param(body(order=...), [problem(["order"], *MISSING)], id="no-order"),
        pytest.param(body(order=[1]), [problem(["order"], *NOT_INT)], id="list-order"),
        pytest.param(body(order=-(10**30)), [problem(["order"], *NOT_INT)], id="huge-order"),
        pytest.param(body(timestamp=...), [problem(["timestamp"], *MISSING)], id="no-time"),
        pytest.param(
            body(timestamp="soon"),
            [problem(["timestamp"], "invalid datetime format", "value_error.datetime")],
            id="bad-time",
        ),
        pytest.param(
            body(timestamp={"t": 1}),
            [
                problem(
                    ["timestamp"],
                    "invalid type; expected datetime, string, bytes, int or float",
                    "type_error",
                )
            ],
            id="object-time",
        ),
        pytest.param(body(session_id=...), [problem(["session_id"], *MISSING)], id="no-session"),
        pytest.param(
            body(session_id="abc"),
            [problem(["session_id"], "value is not a valid uuid", "type_error.uuid")],
            id="bad-uuid",
        ),
        pytest.param(
            body(session_id=12),
            [problem(["session_id"], "value is not a valid uuid", "type_error.uuid")],
            id="number-uuid",
        ),
        pytest.param(body(page={"p": 1}), [problem(["page"], *NOT_STR)], id="object-page"),
        pytest.param(body(action=...), [problem(["action"], *MISSING)], id="no-action"),
        pytest.param(
            body(action="hover"),
            [
                problem(
                    ["action"],
                    ACTION_MSG,
                    "value_error.const",
                    given="hover",
                    permitted=["load", "scroll", "click"],
                )
            ],
            id="bad-action",
        ),
        pytest.param(body(meta={"x": 1}), [problem(["meta"], *NOT_STR)], id="object-meta"),
        pytest.param(
            body(client_context="ref"), [problem(["client_context"], *NOT_DICT)], id="str-client"
        ),
        pytest.param(
            body(client_context={"referer": ["a"]}),
            [problem(["client_context", "referer"], *NOT_STR)],
            id="list-referer",
        ),
        pytest.param(
            body(server_context=[]), [problem(["server_context"], *NOT_DICT)], id="list-server"
        ),
        pytest.param(
            {},
            [
                problem(["_v"], *MISSING),
                problem(["order"], *MISSING),
                problem(["timestamp"], *MISSING),
                problem(["session_id"], *MISSING),
                problem(["action"], *MISSING),
            ],
            id="empty-object-lists-every-missing-field",
        ),
        pytest.param(
            body(meta="m" * 262_145),
            [problem(["meta"], "must be a string of at most 262144", "value_error")],
            id="huge-meta",
        ),
        pytest.param(
            body(page="p", client_context={"big": "b" * 262_144}),
            [problem([], "longer than 262144 characters as JSON", "value_error")],
            id="huge-document",
        ),
    ],
)
async def test_bad_input_on_every_field_is_a_422_detail_list_and_writes_nothing(
    client, storage, user, payload, expected
):
    key = await new_key(storage, user.id)
    response = await send(client, key, payload)
    assert response.status_code == 422
    assert await answer(response) == {"detail": expected}
    assert await count_rows(storage, "events", user.id) == 0
    assert await count_rows(storage, "sessions", user.id) == 0


# -- who writes ------------------------------------------------------------------------------


def key_refused(msg: str) -> dict:
    return {"detail": [{"loc": ["query", "key"], "msg": msg, "type": "value_error.key"}]}


async def test_without_a_key_and_without_the_keyless_option_it_is_a_401(client, storage, user):
    response = await send(client, None)
    assert response.status_code == 401
    assert await answer(response) == key_refused("an ingest key is required")
    assert await count_rows(storage, "events", user.id) == 0


@pytest.mark.parametrize("disabled", [False, True], ids=["unknown", "disabled"])
async def test_an_unknown_or_disabled_key_is_a_401(client, storage, user, disabled):
    key = await new_key(storage, user.id, disabled=True) if disabled else "0" * 32
    response = await send(client, key)
    assert response.status_code == 401
    assert await answer(response) == key_refused("unknown or disabled ingest key")
    assert await count_rows(storage, "events", user.id) == 0


async def test_the_keyless_option_stores_keyless_events_for_its_user(make_app, make_user):
    from support import new_account

    from bot_logging_server.storage import get_storage

    async with make_app() as first:
        owner = await new_account(get_storage(first.app))
    async with make_app(keyless_events_user=owner.name) as app:
        storage = get_storage(app.app)
        client = app.test_client()
        response = await send(client, None)
        assert response.status_code == 200
        assert [r["name"] for r in await stored_events(storage, owner.id)] == ["click"]
        # A key given is still checked: a bad one is refused, not sent to the keyless user.
        response = await send(client, "0" * 32)
        assert response.status_code == 401
        await storage.set_disabled(owner.name, True)
        response = await send(client, None)
        assert response.status_code == 401
        assert await count_rows(storage, "events", owner.id) == 1


async def test_the_keyless_option_naming_no_user_refuses(make_app):
    async with make_app(keyless_events_user="nobody-by-that-name") as app:
        response = await send(app.test_client(), None)
        assert response.status_code == 401


def test_the_keyless_option_comes_from_the_flag_or_the_environment():
    assert build_config({}, environ={}).keyless_events_user is None
    env = {"LOGGER_KEYLESS_EVENTS_USER": "web"}
    assert build_config({}, environ=env).keyless_events_user == "web"
    assert build_config({"keyless_events_user": "site"}, environ=env).keyless_events_user == "site"


async def test_a_key_writes_only_for_its_owner(client, storage, make_user):
    alice, bob = await make_user(), await make_user()
    await send(client, await new_key(storage, alice.id), body(page="/alice"))
    await send(client, await new_key(storage, bob.id), body(page="/bob"))
    assert [r["page"] for r in await stored_events(storage, alice.id)] == ["/alice"]
    assert [r["page"] for r in await stored_events(storage, bob.id)] == ["/bob"]


async def test_reading_is_not_an_endpoint_here(client, storage, user):
    key = await new_key(storage, user.id)
    response = await client.get(f"/track?key={key}")
    assert response.status_code == 405


# -- CORS --------------------------------------------------------------------------------------


async def test_preflight_and_answers_allow_any_origin(client):
    response = await client.open(
        "/track",
        method="OPTIONS",
        headers={
            "Origin": "https://demo.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Headers"] == "content-type"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    refused = await send(client, None)
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == "*"


ODD_VALUES = [
    None,
    True,
    0,
    -1,
    1.5,
    1e308,
    -(2**70),
    "",
    " ",
    "x" * 3000,
    "\x00",
    "\ud800",
    "naïve 😀",
    [],
    {},
    [1, {"a": None}],
    {"referer": 7},
    "2023-02-30T25:61:61Z",
]
FIELDS = [
    "_v",
    "timestamp",
    "order",
    "session_id",
    "page",
    "action",
    "meta",
    "client_context",
    "server_context",
    "unknown",
]


@pytest.mark.parametrize("field", FIELDS)
async def test_no_value_of_any_field_gives_a_500(client, storage, user, field):
    key = await new_key(storage, user.id)
    for value in ODD_VALUES:
        response = await send(client, key, body(**{field: value}))
        assert response.status_code in (200, 422), (field, value)
        await answer(response)
