"""The msgspec path agrees with marshmallow on every input (docs/API.md, "Field rules").

A body of the common shape is decoded by msgspec straight into typed structs and the value
rules applied to them (`read_batch`, `Batch.rows`, and `load_batch` for a parsed
object); anything else, and any value that breaks a rule, is left to marshmallow
(`load_batch_reference`). These tests feed both the same tricky inputs, as parsed objects and
as the bytes a client sends: wherever marshmallow accepts, the msgspec path must give the
identical batch or step aside; wherever marshmallow refuses, the msgspec path must step
aside, so the 400 and its detail are marshmallow's.
"""

from __future__ import annotations

import copy
import json
import math
import random
from typing import Any

import msgspec
import pytest

from bot_logging_server.errors import BadRequest
from bot_logging_server.json_body import parse_json
from bot_logging_server.schemas import ingest
from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.ingest import (
    load_batch,
    load_batch_reference,
    read_batch,
    read_envelope,
    record_count,
)

MISSING = object()
DEFAULT = object()


def record(**overrides: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "level": 40,
        "event_at": "2020-05-05T12:22:21",
        "msg": "payment failed",
        "p_description": "billing",
    }
    for key, value in overrides.items():
        if value is MISSING:
            rec.pop(key, None)
        else:
            rec[key] = value
    return rec


def data(logs: Any = DEFAULT, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user": "alice",
        "pid": 4242,
        "p_name": "python3",
        "post_time": "2020-05-05T12:22:22",
        "logs": [record()] if logs is DEFAULT else logs,
    }
    if logs is MISSING:
        del body["logs"]
    for key, value in overrides.items():
        if value is MISSING:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def outcome(loader: Any, *args: Any) -> Any:
    try:
        return ("ok", loader(*args))
    except ValidationFailed as exc:
        return ("400", exc.detail)
    except BadRequest as exc:
        return ("400", exc.detail)


def wire_rows(data: Any, limit: int) -> Any:
    """The msgspec path alone on a parsed object: its rows, or None when it steps aside."""
    try:
        wire = msgspec.convert(copy.deepcopy(data), ingest.WireData)
    except msgspec.ValidationError:
        return None
    return ingest._wire_rows(wire, limit)


def reference_from_bytes(raw: bytes, limit: int) -> Any:
    """What the server answered before msgspec: parse, envelope, count, marshmallow."""
    username, data = read_envelope(parse_json(raw))
    return username, record_count(data), load_batch_reference(data, limit)


def msgspec_from_bytes(raw: bytes, limit: int) -> Any:
    batch = read_batch(raw, limit)
    return batch.username, batch.records, batch.rows()


def assert_agree(body: Any, limit: int = 65_536) -> None:
    # A parsed object (load_batch), and the same object as the bytes a Python client sends.
    reference = outcome(load_batch_reference, copy.deepcopy(body), limit)
    assert outcome(load_batch, copy.deepcopy(body), limit) == reference
    fast = wire_rows(body, limit)
    if reference[0] == "400":
        assert fast is None, "the msgspec path accepted what marshmallow refuses"
    elif fast is not None:
        assert fast == reference[1]
    assert_bytes_agree(json.dumps({"data": body}).encode(), limit)


def assert_bytes_agree(raw: bytes, limit: int = 65_536) -> None:
    reference = outcome(reference_from_bytes, raw, limit)
    assert outcome(msgspec_from_bytes, raw, limit) == reference
    try:
        wire = ingest._DECODE_BODY.decode(raw).data
    except (msgspec.DecodeError, RecursionError):
        return
    fast = ingest._wire_rows(wire, limit)
    if reference[0] == "400":
        assert fast is None, "the msgspec path accepted what marshmallow refuses"
    elif fast is not None:
        assert fast == reference[1][2]


LEVELS = [30, 0, 100, 101, -1, 40.0, 40.5, "40", " 40 ", "040", "4O", "Warning", "WARN", "fatal",
          "", "info ", True, False, None, [], {}, math.nan, math.inf, 1e300, 2**70,
          "٣"]  # fmt: skip
TIMES = ["2020-05-05T12:22:22", "2020-05-05 12:22:22", "2020-05-05T12:22:22Z",
         "2020-05-05T12:22:22.5+02:00", "1000-01-01T00:00:00", "1000-01-01T00:30:00+01:00",
         "9999-12-31T23:59:59.999999", "9999-12-31T23:00:00-05:00", "2020-13-01T00:00:00",
         "yesterday", "", "2020-05-05", 1588681342, None, ["2020-05-05T12:22:22"],
         "x" * 65]  # fmt: skip
MSGS = ["", "text", "a\udcffb", "é😀", 17, 1.5, True, None, [1, "two"], {"k": {"n": None}},
        math.nan, "x" * 20]  # fmt: skip
DESCRIPTIONS = [MISSING, None, "", "billing", "d" * 300, 7, ["x"], "\ud800"]
PIDS = [4242, 0, -1, 2**63 - 1, 2**63, -(2**63), True, "4242", 4242.0, None, MISSING]
NAMES = ["python3", "", "n" * 300, None, 5, MISSING, "\udcff"]


@pytest.mark.parametrize("level", LEVELS, ids=repr)
def test_levels_agree(level):
    assert_agree(data([record(level=level)]))


@pytest.mark.parametrize("stamp", TIMES, ids=repr)
def test_event_times_agree(stamp):
    assert_agree(data([record(event_at=stamp)]))


@pytest.mark.parametrize("stamp", TIMES, ids=repr)
def test_post_times_agree(stamp):
    assert_agree(data(post_time=stamp))


@pytest.mark.parametrize("msg", MSGS, ids=lambda m: repr(m)[:20])
def test_messages_agree_including_the_cut(msg):
    assert_agree(data([record(msg=msg)]))
    assert_agree(data([record(msg=msg)]), limit=3)


@pytest.mark.parametrize("description", DESCRIPTIONS, ids=repr)
def test_descriptions_agree(description):
    assert_agree(data([record(p_description=description)]))


@pytest.mark.parametrize("pid", PIDS, ids=repr)
def test_pids_agree(pid):
    assert_agree(data(pid=pid))


@pytest.mark.parametrize("name", NAMES, ids=repr)
def test_process_names_agree(name):
    assert_agree(data(p_name=name))


@pytest.mark.parametrize(
    "body",
    [
        data(logs=[]),
        data(logs=MISSING),
        data(logs=None),
        data(logs={"0": record()}),
        data(logs="[]"),
        data(logs=[record(), "not an object"]),
        data(logs=[record(), None]),
        data(logs=[record(level=MISSING)]),
        data(logs=[record(msg=MISSING)]),
        data(logs=[record(event_at=MISSING)]),
        data(logs=[record(extra=1, nested={"a": [1]})], future=True),
        data(user=5),
        data(user=MISSING),
        data(user="\udcffbob"),
    ],
    ids=lambda b: repr(b)[:60],
)
def test_shapes_agree(body):
    assert_agree(body)


def test_the_common_shape_takes_the_msgspec_path():
    body = data([record(level=(30, 40, 50)[i % 3], msg=f"m {i}") for i in range(1000)])
    raw = json.dumps({"data": body}).encode()
    batch = read_batch(raw, 65_536)
    assert batch.wire is not None
    fast = ingest._wire_rows(batch.wire, 65_536)
    assert fast is not None
    assert fast == load_batch_reference(body, 65_536)
    assert wire_rows(body, 65_536) == fast


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def raw_body(msg: bytes = b'"m"', extra: bytes = b"", level: bytes = b"40") -> bytes:
    return (
        b'{"data": {"user": "alice", "pid": 4242, "p_name": "python3", '
        b'"post_time": "2020-05-05T12:22:22", "logs": [{"level": ' + level + b", "
        b'"event_at": "2020-05-05T12:22:21", "msg": ' + msg + b"}]" + extra + b"}}"
    )


BODIES = {
    # Integers past 64 bits: orjson reads them as floats, msgspec exactly.
    "msg-2**64": raw_body(str(2**64).encode()),
    "msg-2**64-1": raw_body(str(2**64 - 1).encode()),
    "msg--2**63-1": raw_body(str(-(2**63) - 1).encode()),
    "msg--2**63": raw_body(str(-(2**63)).encode()),
    "msg-nested-2**70": raw_body(b'[1, {"n": ' + str(2**70).encode() + b"}]"),
    "level-2**70": raw_body(level=str(2**70).encode()),
    "pid-2**70": raw_body(extra=b', "pid": ' + str(2**70).encode()),
    "msg-1E400": raw_body(b"1E400"),
    "msg-NaN": raw_body(b"NaN"),
    "msg-minus-zero": raw_body(b"-0"),
    "msg-long-fraction": raw_body(b"0.1000000000000000055511151231257827021181583404541015625"),
    "msg-nested-900": raw_body(nested(900)),
    "msg-nested-1100": raw_body(nested(1100)),
    "unknown-nested-1100": raw_body(extra=b', "future": ' + nested(1100)),
    "unknown-NaN": raw_body(extra=b', "future": NaN'),
    "msg-lone-surrogate": raw_body(b'"a\\udcffb"'),
    "msg-twice": raw_body(b'"first", "msg": "second"'),
    "user-twice": raw_body(extra=b', "user": "bob"'),
    "user-twice-second-a-number": raw_body(extra=b', "user": 5'),
    "data-twice": b'{"data": {"user": "alice"}, "data": {"user": "bob", "logs": []}}',
    "data-twice-second-a-number": b'{"data": {"user": "alice", "logs": []}, "data": 5}',
    "byte-order-mark": b"\xef\xbb\xbf" + raw_body(),
    "surrounding-whitespace": b" \n" + raw_body() + b"\n ",
    "trailing-garbage": raw_body() + b" x",
    "invalid-utf8": raw_body(b'"\xff"'),
    "array": b"[]",
    "empty": b"",
}


@pytest.mark.parametrize("raw", BODIES.values(), ids=BODIES.keys())
def test_bodies_as_sent_agree(raw):
    assert_bytes_agree(raw)


def test_random_mixtures_agree():
    rng = random.Random(20261123)
    fields = {
        "level": LEVELS,
        "event_at": TIMES,
        "msg": MSGS,
        "p_description": DESCRIPTIONS,
    }
    for _ in range(300):
        logs = []
        for _ in range(rng.randint(0, 6)):
            # Mostly valid records, sometimes one odd field.
            odd = {k: rng.choice(v) for k, v in fields.items() if rng.random() < 0.2}
            logs.append(record(**odd))
        top = {}
        if rng.random() < 0.2:
            top["pid"] = rng.choice(PIDS)
        if rng.random() < 0.2:
            top["p_name"] = rng.choice(NAMES)
        if rng.random() < 0.1:
            top["post_time"] = rng.choice(TIMES)
        assert_agree(data(logs, **top), limit=rng.choice([3, 65_536]))
