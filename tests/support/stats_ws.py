"""The Stats_usage WebSocket's tests share these: the replies byte for byte, the frames of
the original's clients, and how a test talks over a socket (`talk`, `socket`, `receive`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from support.events import stored_events

# The replies, byte for byte (Python's json.dumps, as the original wrote them).
PONG = '{"result": "success", "message": "pong", "data": {}}'
SUCCESS = '{"result": "success", "message": "Success", "data": {}}'
PROBLEM = (
    '{"result": "error", "message": "There has been a problem, maybe with the data you sent", '
    '"data": {}}'
)
MALFORMED = (
    '{"result": "error", "message": "The data you sent wasn\'t correct or well formated, '
    "'action' and 'data' expected\", \"data\": {}}"
)
NO_SESSION_VISIT = (
    '{"result": "error", "message": "Something was wrong: There is no session registered for '
    'this visit, must open a session first!", "data": {}}'
)
NO_VISIT = (
    '{"result": "error", "message": "Something was wrong: There is no visit registered, you '
    'must send a page visit first!", "data": {}}'
)
NO_SESSION_CALL = (
    '{"result": "error", "message": "Something was wrong: There is no session registered for '
    'this server call, must open a session first!", "data": {}}'
)
NO_KEY = (
    '{"result": "error", "message": "An ingest key is required: connect with '
    '?key=<ingest key>", "data": {}}'
)
UNKNOWN_KEY = '{"result": "error", "message": "Unknown or disabled ingest key", "data": {}}'


def expected(keys: str) -> str:
    return (
        '{"result": "error", "message": "The data you sent wasn\'t correct, expected '
        f'properties: {keys}", "data": {{}}}}'
    )


def unknown(name: str) -> str:
    return f'{{"result": "error", "message": "Action \'{name}\' doesn\'t exist !", "data": {{}}}}'


def action(name: str, **data: Any) -> str:
    """A frame as the original's clients build it (JSON.stringify of buildActionObject)."""
    return json.dumps({"type": "action", "action": name, "data": data})


PING = '{"type":"ping"}'
# The original's test page sends every value as a string ("session,user_id:1205,...").
SESSION = action("session", user_id="1205", site="NS-Shanghai")
HOME = action("visit", page="/Home", app="EcolEntomo", home="1")
SUBJECTS = action("visit", page="/subjects", app="ecolentomo", home="0")
SAMPLES = action("visit", page="samples", app="ecolentomo", home=0)
CLICK = action("click", loc_x="29.6587", loc_y="47.2147", el="div_test#333")


def session_reply(text: str) -> str:
    """The session key of a ``session`` reply, whose data is a JSON *string*."""
    body = json.loads(text)
    assert (body["result"], body["message"]) == ("success", "Success"), text
    assert isinstance(body["data"], str)
    assert body["data"].startswith('{"action":"session", "data":{"session":"'), body["data"]
    return json.loads(body["data"])["data"]["session"]


async def visit_home(ws: Any) -> str:
    """Open a session on `ws` and visit the home page, both answered success; the session
    key."""
    session = session_reply((await talk(ws, SESSION))[0])
    assert await talk(ws, HOME) == [SUCCESS]
    return session


async def receive(ws: Any) -> str:
    """The next frame from the server (a test fails, never hangs, when none comes)."""
    return await asyncio.wait_for(ws.receive(), 10)


async def talk(ws: Any, *frames: str | bytes) -> list[str]:
    """Send each frame and read its reply."""
    replies = []
    for frame in frames:
        await ws.send(frame)
        replies.append(await receive(ws))
    return replies


def socket(client: Any, key: str | None, path: str = "/ws") -> Any:
    query = {"key": key} if key else {}
    return client.websocket(path, query_string=query, headers={"User-Agent": "Firefox/99"})


async def events_of(storage: Any, user_id: int) -> list[tuple]:
    rows = await stored_events(storage, user_id)
    return [(r["name"], r["page"], json.loads(r["data"])) for r in rows]


def click(n: int) -> str:
    """The `n`-th click of a storm (each on its own element)."""
    return action("click", loc_x="29.66", loc_y="47.21", el=f"b{n}")
