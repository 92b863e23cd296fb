"""A batch of usage events is checked as each event would be alone (`check_batch` against
`check_event`): what its events share (client times, the client) is checked once, and the
common case of each field is tested inline, with the same results and errors."""

from __future__ import annotations

import pytest

from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.events import check_batch, check_event
from bot_logging_server.storage import Event


class Text(str):
    """A str subclass: checked like a str."""


AGENT = "Browser/1 ✓"
LONG_IP = "1" * 100


def batch() -> list[Event]:
    return [
        Event("api", "click", ip="203.0.113.9", user_agent=AGENT),
        Event("api", "click", ip="203.0.113.9", user_agent=AGENT),  # equal, not the same
        Event("api", "é\ud800", category="c\udc00", page="/p\ud800", ip=LONG_IP),
        Event("api", Text("sub"), category=Text("cat"), page=Text("/x"), user_agent="a" * 2000),
        Event("eye", "n" * 255, session="s\ud800", category="", page="p" * 3000),
        Event("api", "x", data_raw='{"a":"\ud800"}', ip=LONG_IP, user_agent=AGENT),
        Event("track", "x", ip=None, user_agent=None),
    ]


def test_a_batch_is_checked_as_each_event_alone():
    events = batch()
    checked = check_batch(events)
    assert checked == [check_event(event) for event in events]
    assert checked[2].ip == "1" * 64 and checked[3].user_agent == "a" * 1024
    assert checked[2].name == "é\ufffd" and checked[4].page == "p" * 2048
    assert [type(e.name) for e in checked] == [type(check_event(e).name) for e in events]


def test_one_client_object_for_every_event_is_checked_once_and_kept_for_each():
    ip, agent = "203.0.113.9 " + "x" * 100, "ua\ud800"
    events = [Event("api", f"e{i}", ip=ip, user_agent=agent) for i in range(3)]
    events.append(Event("api", "other", ip="198.51.100.1", user_agent=None))
    events.append(Event("api", "again", ip=ip, user_agent=agent))
    checked = check_batch(events)
    assert checked == [check_event(event) for event in events]
    assert {(e.ip, e.user_agent) for e in checked[:3] + checked[4:]} == {(ip[:64], "ua\ufffd")}
    assert (checked[3].ip, checked[3].user_agent) == ("198.51.100.1", None)


@pytest.mark.parametrize(
    ("bad", "detail"),
    [
        (Event("api", 5), "events[2].name: must be a string"),  # type: ignore[arg-type]
        (Event("api", "n" * 256), "events[2].name: longer than 255 characters"),
        (Event("api", "n", category=7), "events[2].category: must be a string"),
        (Event("api", "n", page=["/"]), "events[2].page: must be a string"),
        (Event("api", "n", ip=1), "events[2].ip: must be a string"),
        (Event("api", "n", user_agent=b"ua"), "events[2].user_agent: must be a string"),
        (Event("api", "n", data_raw=3), "events[2].data_raw: must be a string of at most"),
        # The first failing field is named, in the order of a lone event's checks.
        (Event("api", 5, page=3, ip=1), "events[2].name: must be a string"),
        (Event("api", "n", page=3, ip=1), "events[2].page: must be a string"),
    ],
)
def test_the_first_bad_field_of_the_first_bad_event_is_named(bad, detail):
    good = Event("api", "fine", ip="203.0.113.9", user_agent=AGENT)
    with pytest.raises(ValidationFailed) as raised:
        check_batch([good, good, bad, Event("api", 5)])  # type: ignore[arg-type]
    assert raised.value.detail.startswith(detail)
    with pytest.raises(ValidationFailed) as alone:
        check_event(bad, "events[2]")
    assert alone.value.detail == raised.value.detail
