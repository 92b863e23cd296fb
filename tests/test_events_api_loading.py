"""Loading a batch of usage events: the common case, loaded without the schema
(`load_events`), loads as the schema alone loads it (`load_events_reference`), checked
property-based on arbitrary and near-valid events, and an event one past any limit is
refused by both loaders.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.events_api import load_events, load_events_reference

_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=300)
    | st.sampled_from(["", "s", "click", "x" * 64, "x" * 65, "y" * 255, "y" * 256])
)
_EVENT_LIKE = (
    st.dictionaries(
        st.sampled_from(["name", "session", "category", "page", "data", "time", "sequence", "x"]),
        _VALUES | st.dictionaries(st.text(max_size=5), _VALUES, max_size=3),
    )
    | _VALUES
)


#: Events near the rules' edges: each field missing, valid, at its limit, or one past it.
_NEAR_VALID = st.fixed_dictionaries(
    {"name": st.sampled_from(["click", "a", "y" * 255, "y" * 256, "", 5, None])},
    optional={
        "session": st.sampled_from([None, "s", "x" * 64, "x" * 65, "", 7]),
        "category": st.sampled_from([None, "c", "y" * 255, "y" * 256, "", False]),
        "page": st.sampled_from([None, "/", "p" * 5000, "", 3]),
        "data": _VALUES | st.dictionaries(st.text(max_size=5), _VALUES, max_size=3),
        "time": _VALUES,
        "sequence": st.sampled_from(
            [None, 0, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, True, 1.0, "1"]
        ),
        "x": _VALUES,
    },
)


_EDGES = [
    {"name": "y" * 256},
    {"name": "c", "session": ""},
    {"name": "c", "session": "x" * 65},
    {"name": "c", "category": "y" * 256},
    {"name": "c", "page": 3},
    {"name": "c", "sequence": 2**63},
    {"name": "c", "sequence": -(2**63) - 1},
    {"name": "c", "sequence": True},
    {"name": "c", "sequence": 1.0},
]


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(_NEAR_VALID, max_size=3) | st.lists(_EVENT_LIKE, max_size=4))
@example([{"name": "y" * 255, "session": "x" * 64, "sequence": 2**63 - 1}])
def test_events_load_as_the_schema_alone_loads_them(events):
    def outcome(loader) -> object:
        try:
            return loader(copy.deepcopy(events), "192.0.2.1", "agent")
        except ValidationFailed as exc:
            return exc.detail

    assert outcome(load_events) == outcome(load_events_reference)


@pytest.mark.parametrize("event", _EDGES, ids=lambda e: str(e)[:40])
def test_an_event_one_past_a_limit_is_refused_by_both_loaders(event):
    for loader in (load_events, load_events_reference):
        with pytest.raises(ValidationFailed):
            loader([event])
