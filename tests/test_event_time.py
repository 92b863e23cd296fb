"""Client times of usage events: every format the interfaces send, parsed into UTC; the raw
text always kept; what does not parse is None (stored, flagged), never an error."""

from __future__ import annotations

from datetime import datetime

import pytest

from bot_logging_server.schemas.events import EventTime, check_batch, check_event, parse_event_time
from bot_logging_server.storage import Event

D = datetime


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        # The Eye: %Y-%m-%d %H:%M:%S.%f (naive: UTC)
        ("2022-01-09 09:15:27.243860", D(2022, 1, 9, 9, 15, 27, 243860)),
        # Microticks: JavaScript's toISOString()
        ("2017-08-25T17:09:19.438Z", D(2017, 8, 25, 17, 9, 19, 438000)),
        # ISO 8601 with a zone, with or without its colon, lower-case t and z
        ("2022-01-09T10:15:27+01:00", D(2022, 1, 9, 9, 15, 27)),
        ("2022-01-09T04:15:27-0500", D(2022, 1, 9, 9, 15, 27)),
        ("2022-01-09t09:15:27z", D(2022, 1, 9, 9, 15, 27)),
        ("2022-01-09T09:15:27", D(2022, 1, 9, 9, 15, 27)),
        ("2022-01-09T09:15", D(2022, 1, 9, 9, 15)),
        ("2022-01-09", D(2022, 1, 9)),
        # surrounding spaces do not matter
        ("  2022-01-09T09:15:27Z ", D(2022, 1, 9, 9, 15, 27)),
        # Unix seconds and milliseconds, as JSON numbers or as strings
        (1641719727, D(2022, 1, 9, 9, 15, 27)),
        (1641719727.25, D(2022, 1, 9, 9, 15, 27, 250000)),
        (1641719727243, D(2022, 1, 9, 9, 15, 27, 243000)),
        ("1641719727", D(2022, 1, 9, 9, 15, 27)),
        ("1641719727243", D(2022, 1, 9, 9, 15, 27, 243000)),
        ("1641719727.5", D(2022, 1, 9, 9, 15, 27, 500000)),
        (0, D(1970, 1, 1)),
        (-1, D(1969, 12, 31, 23, 59, 59)),
        # the boundary: 10^11 and more is milliseconds (as seconds it would be past 5000)
        (99_999_999_999, D(5138, 11, 16, 9, 46, 39)),
        (100_000_000_000, D(1973, 3, 3, 9, 46, 40)),
    ],
    ids=repr,
)
def test_every_interfaces_format_parses_into_utc(sent, expected):
    parsed = parse_event_time(sent)
    assert parsed.at == expected
    assert parsed.raw == (sent if isinstance(sent, str) else str(sent))


@pytest.mark.parametrize(
    ("sent", "raw"),
    [
        ("yesterday", "yesterday"),
        ("", ""),
        ("2022-13-01T00:00:00", "2022-13-01T00:00:00"),
        ("0999-12-31T23:59:59Z", "0999-12-31T23:59:59Z"),
        ("9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59-01:00"),  # year 10000 in UTC
        ("Tue Aug 25 2017 17:09:19 GMT+0200", "Tue Aug 25 2017 17:09:19 GMT+0200"),
        (10**30, "1" + "0" * 30),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        ("1e5", "1e5"),
        (True, "true"),
        ({"at": 1}, '{"at": 1}'),
        ([2022, 1, 9], "[2022, 1, 9]"),
    ],
    ids=repr,
)
def test_what_does_not_parse_keeps_its_raw_text_and_no_time(sent, raw):
    assert parse_event_time(sent) == EventTime(raw, None)


def test_no_time_sent_is_not_an_invalid_time():
    assert parse_event_time(None) == EventTime(None, None)


def test_the_raw_text_is_cut_to_255_characters_and_cleaned():
    parsed = parse_event_time("x" * 1000)
    assert parsed == EventTime("x" * 255, None)
    assert parse_event_time("2022\ud800").raw == "2022\ufffd"


def test_a_batch_parses_each_events_time_as_a_lone_event_would():
    # A batch remembers the times it parsed: equal keys of other types (1, 1.0, True, "1")
    # are other times, and a time given parsed is kept.
    sent = ["1", 1, 1.0, True, "1", 1641719727, "1641719727", "x", None, "1"]
    events = [Event("api", "e", client_time=value) for value in sent]
    events.append(Event("api", "e", client_time="1", client_at=D(2020, 1, 1)))
    checked = check_batch(events)
    assert checked == [check_event(event) for event in events]
    assert [e.client_time for e in checked[:5]] == ["1", "1", "1.0", "true", "1"]
    assert checked[-1].client_at == D(2020, 1, 1)
