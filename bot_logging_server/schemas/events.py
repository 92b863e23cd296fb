"""Usage events: the client's time in every format the interfaces send, and the rules every
event of the common model follows before it is stored.

Time (`parse_event_time`): ISO 8601 with or without a zone (``T`` or space, any fraction,
``Z``; naive means UTC), which covers the Eye's ``%Y-%m-%d %H:%M:%S.%f``, and Unix time in
seconds or milliseconds (a JSON number or a string of digits, with a fraction or not; a
magnitude of 10^11 or more is milliseconds: as seconds it would be past the year 5000).
The result is the raw text as sent and the moment in naive UTC, or None when it does not
parse: such an event is stored all the same, flagged by its null time, never refused.

Event rules (`check_event`), each failure a `ValidationFailed` naming the field:

* ``source`` one of `SOURCES`; ``name`` a string of at most 255 characters; ``category``
  null or the same; ``session`` null or 1-64 characters (a key is an identity: never cut);
* ``data`` any JSON value (integers within 64 bits, at most 255 levels deep) whose text is at
  most `MAX_DATA_CHARS` characters; ``data_raw``
  null or a string as long; ``sequence`` null or a 64-bit integer;
* cut, never refused (descriptive text from headers and URLs): ``page`` to 2048 characters,
  ``ip`` to 64, ``user_agent`` to 1024, the raw client time to 255;
* lone UTF-16 surrogates (legal in JSON escapes, not storable) become U+FFFD everywhere.

A session started explicitly (`check_session`) follows the same rules for its source, key,
attributes (as ``data``), client time, IP and user agent.

The native API's wire (its body and query strings) is in
`bot_logging_server.schemas.events_api`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import orjson

from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.values import BIGINT, clean_text, parse_timestamp
from bot_logging_server.storage import Event

__all__ = [
    "MAX_DATA_CHARS",
    "MAX_NAME_CHARS",
    "MAX_PAGE_CHARS",
    "MAX_SESSION_CHARS",
    "SOURCES",
    "EventTime",
    "SessionStart",
    "check_batch",
    "check_event",
    "check_session",
    "parse_event_time",
]

#: The interfaces events come through (``Event.source``).
SOURCES = ("eye", "microticks", "track", "stats", "api")
#: ``name`` and ``category`` hold at most this many characters.
MAX_NAME_CHARS = 255
#: A session key holds 1 to this many characters.
MAX_SESSION_CHARS = 64
#: ``data`` as JSON text, and ``data_raw``, hold at most this many characters.
MAX_DATA_CHARS = 262_144
#: ``page`` is cut to this many characters (and a filter by page is at most as long).
MAX_PAGE_CHARS = 2048
_IP_CHARS, _AGENT_CHARS, _RAW_TIME_CHARS = 64, 1024, 255
#: A Unix time of this magnitude or more is in milliseconds.
_MILLISECONDS_FROM = Decimal(10) ** 11
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_EPOCH = datetime(1970, 1, 1)
_MIN, _MAX = datetime(1000, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999)


class EventTime(NamedTuple):
    """A client time: `raw` as sent (None: none sent) and `at`, naive UTC or None when it
    did not parse."""

    raw: str | None
    at: datetime | None


def _unix(number: Decimal) -> datetime | None:
    """Unix seconds, or milliseconds from `_MILLISECONDS_FROM` on, as naive UTC."""
    if not number.is_finite():
        return None
    if abs(number) >= _MILLISECONDS_FROM:
        number /= 1000
    try:
        moment = _EPOCH + timedelta(microseconds=int(number.scaleb(6).to_integral_value()))
    except (OverflowError, InvalidOperation):
        return None
    return moment if _MIN <= moment <= _MAX else None


def _parse_text(text: str) -> datetime | None:
    text = text.strip()
    if _NUMBER.fullmatch(text):
        return _unix(Decimal(text)) if len(text) <= 40 else None
    try:
        return parse_timestamp(text)
    except ValueError:
        return None


def parse_event_time(value: object) -> EventTime:
    """A client's time as sent (`value`: a string, a JSON number, anything) and parsed.

    None is "no time sent": ``EventTime(None, None)``. A string is kept as it is (cut to 255
    characters); a number or any other JSON value is kept as its JSON text. The parsed
    moment is None for anything that is not a time in years 1000..9999.
    """
    if value is None:
        return EventTime(None, None)
    if isinstance(value, str):
        return EventTime(clean_text(value[:_RAW_TIME_CHARS]), _parse_text(value))
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            raw = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            raw = repr(value)
        return EventTime(clean_text(raw[:_RAW_TIME_CHARS]), None)
    raw = json.dumps(value)  # 1641719727, 1641719727.243, NaN
    try:
        at = _unix(Decimal(raw)) if isinstance(value, int) else _unix(Decimal(repr(value)))
    except InvalidOperation:
        at = None
    return EventTime(raw[:_RAW_TIME_CHARS], at)


def _name(value: Any, where: str, field: str, required: bool) -> str | None:
    """A name (`where`.`field` in an error): a string of at most `MAX_NAME_CHARS`."""
    if value is None and not required:
        return None
    if type(value) is not str and not isinstance(value, str):
        raise ValidationFailed(f"{where}{field}: must be a string")
    if len(value) > MAX_NAME_CHARS:
        raise ValidationFailed(f"{where}{field}: longer than {MAX_NAME_CHARS} characters")
    return value if value.isascii() else clean_text(value)


def _cut(value: Any, where: str, field: str, chars: int) -> str | None:
    """A string cut to `chars` (`where`.`field` in an error), or None."""
    if value is None:
        return None
    if type(value) is not str and not isinstance(value, str):
        raise ValidationFailed(f"{where}{field}: must be a string")
    if len(value) > chars:
        value = value[:chars]
    return value if value.isascii() else clean_text(value)


def _data(value: Any, field: str) -> Any:
    """`value` if its JSON text is storable; surrogates replaced (then it is re-read)."""
    if value is None:
        return None
    try:
        # Most data: orjson writes it (so it has no lone surrogate, fits 64-bit integers
        # and 255 levels), and its UTF-8 is short enough: no character count needed.
        if len(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)) <= MAX_DATA_CHARS:
            return value
    except TypeError:
        pass  # the checks below name what is wrong, or clean it
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except RecursionError:
        raise ValidationFailed(f"{field}: nested too deeply") from None
    except (TypeError, ValueError):
        raise ValidationFailed(f"{field}: not a JSON value") from None
    if len(text) > MAX_DATA_CHARS:
        raise ValidationFailed(f"{field}: longer than {MAX_DATA_CHARS} characters as JSON")
    cleaned = clean_text(text)
    if cleaned is not text:
        value = json.loads(cleaned)
    try:
        # The answers are written by orjson, which refuses integers past 64 bits and more
        # than 255 levels of nesting: such data could be stored but never read back.
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        if "ecursion" in str(exc):
            raise ValidationFailed(f"{field}: nested too deeply") from None
        if "Integer" in str(exc):
            raise ValidationFailed(f"{field}: integers must fit in 64 bits") from None
        raise ValidationFailed(f"{field}: not a JSON value") from None
    return value


def check_event(event: Event, where: str = "event") -> Event:
    """`event` as it will be stored: checked, cleaned, and its client time parsed.

    `where` prefixes the field in an error (``events[3]`` gives ``events[3].name: ...``).
    ``client_at`` is parsed from ``client_time`` unless given. Raises `ValidationFailed`.
    """
    return _checked(event, where, None)


def check_batch(events: Sequence[Event], prefix: str = "events") -> list[Event]:
    """Every event of a batch as `check_event` gives it; an error names the first failing
    event's field (``events[3].name: ...``, `prefix` first).

    Cheaper than a `check_event` per event: what several events of the batch share is
    checked once (a client time, when the client stamps a batch once; the client's IP and
    user agent, one per request), and an event's field name is written only when it fails.
    """
    shared = _Shared()
    checked: list[Event] = []
    try:
        for event in events:
            checked.append(_checked(event, "", shared))
    except ValidationFailed as exc:
        raise ValidationFailed(f"{prefix}[{len(checked)}]{exc.detail}") from None
    return checked


class _Shared:
    """What the events of one batch share, checked once: client times by their text, and
    the last client (IP and user agent objects as sent, and as checked)."""

    __slots__ = ("agent", "client", "ip", "times")

    def __init__(self) -> None:
        self.times: dict[str, EventTime] = {}
        self.ip: object = None
        self.agent: object = None
        self.client: tuple[str | None, str | None] = (None, None)


#: `SOURCES`, for a quick membership test.
_SOURCE_SET = frozenset(SOURCES)


def _checked(event: Event, where: str, shared: _Shared | None) -> Event:
    """`check_event`; with `shared`, what a batch's events share is checked once.

    The common case of each text field (a plain ASCII string within its length) is tested
    inline; anything else goes through `_name` / `_cut`, which clean, cut or refuse it.
    """
    if event.source not in _SOURCE_SET:
        raise ValidationFailed(f"{where}.source: must be one of {', '.join(SOURCES)}")
    session = event.session
    if session is not None:
        if not isinstance(session, str):
            raise ValidationFailed(f"{where}.session: must be a string")
        if not 1 <= len(session) <= MAX_SESSION_CHARS:
            raise ValidationFailed(f"{where}.session: must be 1-{MAX_SESSION_CHARS} characters")
        session = clean_text(session)
    sequence = event.sequence
    if sequence is not None and (
        isinstance(sequence, bool)
        or not isinstance(sequence, int)
        or not -BIGINT <= sequence < BIGINT
    ):
        raise ValidationFailed(f"{where}.sequence: must be a 64-bit integer")
    data_raw = event.data_raw
    if data_raw is not None:
        if not isinstance(data_raw, str) or len(data_raw) > MAX_DATA_CHARS:
            raise ValidationFailed(
                f"{where}.data_raw: must be a string of at most {MAX_DATA_CHARS}"
            )
        data_raw = clean_text(data_raw)
    client_time, client_at = None, event.client_at
    sent = event.client_time
    if sent is not None:
        # Only text is remembered: 1, 1.0 and True are equal keys but different times.
        if shared is not None and type(sent) is str:
            parsed = shared.times.get(sent)
            if parsed is None:
                parsed = shared.times[sent] = parse_event_time(sent)
        else:
            parsed = parse_event_time(sent)
        client_time, client_at = parsed.raw, client_at or parsed.at
    name = event.name
    if type(name) is not str or len(name) > MAX_NAME_CHARS or not name.isascii():
        name = _name(name, where, ".name", True)
    category = event.category
    if category is not None and (
        type(category) is not str or len(category) > MAX_NAME_CHARS or not category.isascii()
    ):
        category = _name(category, where, ".category", False)
    page = event.page
    if page is not None and (
        type(page) is not str or len(page) > MAX_PAGE_CHARS or not page.isascii()
    ):
        page = _cut(page, where, ".page", MAX_PAGE_CHARS)
    data = _data(event.data, f"{where}.data")
    ip, agent = event.ip, event.user_agent
    if shared is not None and ip is shared.ip and agent is shared.agent:
        ip, agent = shared.client
    else:
        client = (
            _cut(ip, where, ".ip", _IP_CHARS),
            _cut(agent, where, ".user_agent", _AGENT_CHARS),
        )
        if shared is not None:
            shared.ip, shared.agent, shared.client = ip, agent, client
        ip, agent = client
    # Built field by field (not a copy with changes): this runs for every event stored.
    return Event(
        event.source,
        name,  # type: ignore[arg-type]
        session,
        category,
        page,
        data,
        data_raw,
        client_time,
        client_at,
        sequence,
        ip,
        agent,
    )


class SessionStart(NamedTuple):
    """A session's opening, checked (see `check_session`)."""

    source: str
    key: str
    attributes: Any
    client: EventTime
    ip: str | None
    user_agent: str | None


def check_session(
    source: str,
    key: str,
    attributes: Any = None,
    client_time: Any = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SessionStart:
    """The fields of a session to open, checked and cleaned as `check_event` does; raise
    `ValidationFailed` naming ``source``, ``key`` or ``attributes``."""
    if source not in SOURCES:
        raise ValidationFailed(f"source: must be one of {', '.join(SOURCES)}")
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_SESSION_CHARS:
        raise ValidationFailed(f"key: must be 1-{MAX_SESSION_CHARS} characters")
    return SessionStart(
        source,
        clean_text(key),
        _data(attributes, "attributes"),
        parse_event_time(client_time),
        _cut(ip, "", "ip", _IP_CHARS),
        _cut(user_agent, "", "user_agent", _AGENT_CHARS),
    )
