"""The Stats_usage WebSocket actions: one text frame in, its reply and its events out.

`handle` reads one frame of a connection, updates that connection's `ConnectionState`
(its session, its last visit, its scenario) and returns an `Outcome`: the reply frame, the
events to store first, and the session to open. It writes nothing and awaits nothing; the
transport (`bot_logging_server.blueprints.stats_ws`) stores what the outcome asks for and
only then sends the reply. A frame that is refused changes nothing.

The wire, as the original server and its browser clients use it (``type`` is not checked)::

    {"type": "action", "action": "session", "data": {"user_id": 1205, "site": "NS-Shanghai"}}
    {"type": "action", "action": "visit", "data": {"page": "/home", "app": "ecol", "home": 1}}
    {"type": "action", "action": "click", "data": {"loc_x": "29.66", "loc_y": "47.21",
                                                   "el": "div.main>div_test#333"}}
    {"type": "action", "action": "serverCall", "data": {"infos": "GET /api/x"}}
    {"type": "ping"}

Every reply is ``{"result": "success"|"error", "message": str, "data": any}``, written as
Python's ``json.dumps`` writes it (as the original did). ``session`` answers with ``data``
a JSON *string* ``{"action":"session", "data":{"session":"<uuid4>"}}`` (its clients parse it).

Values: ``user_id`` an integer or a string of digits (``"12"``); ``site`` a string (a
number is taken as its text); ``page`` and ``app`` strings (``page`` loses one leading
``/``, both are lower-cased); ``home`` 0/1, true/false, or those as strings; ``loc_x`` and
``loc_y`` numbers or numeric strings (``"29.66"``); ``el`` a string; ``infos`` any JSON
value; ``session`` (serverCall) a string or an integer. A value outside these rules answers
`PROBLEM` and stores nothing (the original stored nothing either, but answered success).

Stored (source ``stats``, times are the server's receive time):

* ``session``: a session (key = the uuid4) with attributes ``{"site", "user_id"}``;
* ``visit``: event ``visit``, page = the page, data ``{"page", "app", "home"}``;
* ``click``: event ``click``, page = the last visit's page, data ``{"loc_x", "loc_y", "el",
  "app"}`` (numbers, as floats);
* ``serverCall``: event ``serverCall``, data ``{"infos"}``, in the ``session`` named by the
  frame, else the connection's;
* the scenario: event ``scenario``, data ``{"app", "path": [page, ...], "ended"}``: the pages
  visited in one app, consecutive repeats collapsed. It ends (and is stored) when a home page
  is visited with two pages or more in the path (it then starts again from that home page,
  ``ended: "home"``), when a page of another app is visited (``"app"``), when the connection
  opens another session (``"session"``), when it reaches `MAX_PATH` pages (``"length"``) and
  when the socket closes (``"close"``: `ConnectionState.end_scenario`).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.events import check_event, check_session
from bot_logging_server.schemas.values import BIGINT
from bot_logging_server.storage import Event

__all__ = [
    "MALFORMED",
    "MAX_PATH",
    "PONG",
    "PROBLEM",
    "SOURCE",
    "SUCCESS",
    "Client",
    "ConnectionState",
    "NewSession",
    "Outcome",
    "Visit",
    "handle",
    "reply",
    "session_reply",
]

#: The events' and sessions' source.
SOURCE = "stats"
#: A scenario holds at most this many pages; a longer path is stored in parts.
MAX_PATH = 100
#: Characters of a page kept in a scenario's path.
_PATH_PAGE_CHARS = 256
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def reply(success: bool, message: str, data: Any = None) -> str:
    """One reply frame: ``{"result", "message", "data"}`` (``data`` defaults to ``{}``)."""
    body = {"result": "success" if success else "error", "message": message}
    body["data"] = {} if data is None else data
    return json.dumps(body)


def session_reply(key: str) -> str:
    """The answer to ``session``: its data is a JSON *string*, as the original sends it."""
    return reply(True, "Success", '{"action":"session", "data":{"session":"' + key + '"}}')


#: A frame stored.
SUCCESS = reply(True, "Success")
#: The answer to ``{"type": "ping"}``.
PONG = reply(True, "pong")
#: Not JSON, a value of the wrong kind, or it could not be stored.
PROBLEM = reply(False, "There has been a problem, maybe with the data you sent")
#: No ``action`` or no ``data``.
MALFORMED = reply(
    False, "The data you sent wasn't correct or well formated, 'action' and 'data' expected"
)
_NO_SESSION_VISIT = reply(
    False,
    "Something was wrong: There is no session registered for this visit, "
    "must open a session first!",
)
_NO_VISIT = reply(
    False, "Something was wrong: There is no visit registered, you must send a page visit first!"
)
_NO_SESSION_CALL = reply(
    False,
    "Something was wrong: There is no session registered for this server call, "
    "must open a session first!",
)


@dataclass(frozen=True, slots=True)
class Client:
    """Who is connected: IP and user agent, recorded on every event and session."""

    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class Visit:
    """The last page visited on a connection."""

    page: str
    app: str
    home: bool


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session to open (source `SOURCE`) before the reply is sent."""

    key: str
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one frame asks for: `events` stored (in order), then `session` opened (the
    previous one, `ends`, stopped first), then `reply` sent."""

    reply: str
    events: tuple[Event, ...] = ()
    session: NewSession | None = None
    ends: str | None = None

    @property
    def writes(self) -> bool:
        """Whether the reply waits for storage."""
        return bool(self.events) or self.session is not None


@dataclass(slots=True)
class ConnectionState:
    """One connection's session key, last visit and scenario (the app and its path)."""

    session: str | None = None
    visit: Visit | None = None
    app: str | None = None
    path: list[str] = field(default_factory=list)

    def copy(self) -> ConnectionState:
        """An independent copy (to go back to when a write fails)."""
        return ConnectionState(self.session, self.visit, self.app, list(self.path))

    def end_scenario(self, ended: str, client: Client) -> list[Event]:
        """End the scenario: its ``scenario`` event (none when the path is empty)."""
        path, app = self.path, self.app
        self.path, self.app = [], None
        if not path or self.session is None:
            return []
        data = {"app": app, "path": path, "ended": ended}
        try:
            return [_checked(Event(SOURCE, "scenario", session=self.session, data=data), client)]
        except _Refused:  # an app name too long to store: its visits were refused already
            return []


class _Refused(Exception):
    """The frame is answered `reply` (an error); nothing changes."""

    def __init__(self, answer: str) -> None:
        super().__init__(answer)
        self.answer = answer


def _checked(event: Event, client: Client) -> Event:
    """`event` with the client's IP and agent, checked as storage will check it; a value
    storage would refuse (too long) answers `PROBLEM`."""
    try:
        with_client = msgspec.structs.replace(event, ip=client.ip, user_agent=client.user_agent)
        return check_event(with_client)
    except ValidationFailed:
        raise _Refused(PROBLEM) from None


def _require(data: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """`data` when it is an object holding every key; else the "expected properties" error."""
    if not isinstance(data, dict) or any(key not in data for key in keys):
        raise _Refused(
            reply(False, "The data you sent wasn't correct, expected properties: " + ",".join(keys))
        )
    return data


def _integer(value: Any) -> int:
    """An integer, an integral float or a string of digits (``"12"``), as a 64-bit int."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    elif isinstance(value, str):
        text = value.strip()
        digits = text.removeprefix("-").removeprefix("+")
        if digits.isascii() and digits.isdigit() and len(text) < 21:
            value = int(text)
    if isinstance(value, bool) or not isinstance(value, int) or not -BIGINT <= value < BIGINT:
        raise _Refused(PROBLEM)
    return value


def _number(value: Any) -> float:
    """A finite number, or a string holding one (``"29.66"``)."""
    if isinstance(value, str) and len(value) < 64 and _NUMBER.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Refused(PROBLEM)
    number = float(value)
    if not math.isfinite(number):
        raise _Refused(PROBLEM)
    return number


def _text(value: Any) -> str:
    """A string, or a number as its text."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _Refused(PROBLEM)


_FLAGS = {"0": False, "1": True, "false": False, "true": True}


def _flag(value: Any) -> bool:
    """``home``: 0/1, a boolean, or one of those as a string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _FLAGS:
        return _FLAGS[value.strip().lower()]
    raise _Refused(PROBLEM)


# -- the actions ------------------------------------------------------------------------


def _session(data: Any, state: ConnectionState, client: Client) -> Outcome:
    data = _require(data, ("user_id", "site"))
    attributes = {"site": _text(data["site"]), "user_id": _integer(data["user_id"])}
    key = str(uuid.uuid4())
    try:
        check_session(SOURCE, key, attributes)
    except ValidationFailed:
        raise _Refused(PROBLEM) from None
    ends = state.session
    events = state.end_scenario("session", client)
    state.session = key
    return Outcome(session_reply(key), tuple(events), NewSession(key, attributes), ends)


def _visit(data: Any, state: ConnectionState, client: Client) -> Outcome:
    if state.session is None:
        raise _Refused(_NO_SESSION_VISIT)
    data = _require(data, ("page", "app", "home"))
    page, app, home = data["page"], data["app"], _flag(data["home"])
    if not isinstance(page, str) or not page or not isinstance(app, str):
        raise _Refused(PROBLEM)
    page, app = page.removeprefix("/").lower(), app.lower()
    body = {"page": page, "app": app, "home": home}
    visit = _checked(Event(SOURCE, "visit", session=state.session, page=page, data=body), client)
    events = []
    if state.path and state.app != app:
        events += state.end_scenario("app", client)
    elif home and len(state.path) > 1:
        events += state.end_scenario("home", client)
    elif len(state.path) >= MAX_PATH:
        events += state.end_scenario("length", client)
    entry = page[:_PATH_PAGE_CHARS]
    if not state.path or state.path[-1] != entry:
        state.path.append(entry)
        state.app = app
    state.visit = Visit(page, app, home)
    return Outcome(SUCCESS, (*events, visit))


def _click(data: Any, state: ConnectionState, client: Client) -> Outcome:
    data = _require(data, ("loc_x", "loc_y", "el"))
    visit = state.visit
    if visit is None:
        raise _Refused(_NO_VISIT)
    body = {
        "loc_x": _number(data["loc_x"]),
        "loc_y": _number(data["loc_y"]),
        "el": _text(data["el"]),
        "app": visit.app,
    }
    event = Event(SOURCE, "click", session=state.session, page=visit.page, data=body)
    return Outcome(SUCCESS, (_checked(event, client),))


def _server_call(data: Any, state: ConnectionState, client: Client) -> Outcome:
    data = _require(data, ("infos",))
    named = data.get("session")
    session = state.session if named is None else _text(named)
    if session is None:
        raise _Refused(_NO_SESSION_CALL)
    event = Event(SOURCE, "serverCall", session=session, data={"infos": data["infos"]})
    return Outcome(SUCCESS, (_checked(event, client),))


_ACTIONS: dict[str, Callable[[Any, ConnectionState, Client], Outcome]] = {
    "session": _session,
    "visit": _visit,
    "click": _click,
    "serverCall": _server_call,
}


def _message(frame: str | bytes) -> Any:
    """The frame's JSON value; `PROBLEM` when it is not JSON (or not UTF-8)."""
    try:
        text = frame.decode("utf-8") if isinstance(frame, bytes) else frame
        return json.loads(text)
    except (ValueError, RecursionError):
        raise _Refused(PROBLEM) from None


def handle(frame: str | bytes, state: ConnectionState, client: Client) -> Outcome:
    """Read one frame of a connection in `state` (updated unless the frame is refused).

    Checks, in the original's order: JSON (else `PROBLEM`); ``{"type": "ping"}`` without an
    action (`PONG`); an ``action`` and a ``data``, neither null (else `MALFORMED`);
    ``echo`` (``"Echoing"``, the message as data); a known action (else ``Action '<x>'
    doesn't exist !``); then the action's own rules (see the module's docstring).
    """
    try:
        message = _message(frame)
        if isinstance(message, dict) and message.get("type") == "ping" and "action" not in message:
            return Outcome(PONG)
        if message is None:
            return Outcome(MALFORMED)
        if not isinstance(message, dict):
            return Outcome(PROBLEM)
        action, data = message.get("action"), message.get("data")
        if action is None or data is None:
            return Outcome(MALFORMED)
        if action == "echo":
            return Outcome(reply(True, "Echoing", message))
        if not isinstance(action, str):
            return Outcome(PROBLEM)
        run = _ACTIONS.get(action)
        if run is None:
            return Outcome(reply(False, f"Action '{action}' doesn't exist !"))
        return run(data, state, client)
    except _Refused as refused:
        return Outcome(refused.answer)
