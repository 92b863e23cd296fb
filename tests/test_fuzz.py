"""Bad input never hurts: property-based requests against ``/send_logs``, on both backends.

Whatever arrives (random JSON, a wrong type or a missing key at any path of a real batch,
huge and deeply nested values, invalid UTF-8, odd headers and content types), the answer is
one of the contract's statuses in its JSON shape, never a 500 and never HTML; the batch is
written whole (200, ``added`` rows more) or not at all; and the server still serves afterwards.
Every string field also keeps SQL and HTML metacharacters, NUL, emoji and right-to-left text
verbatim.

Examples per property: ``FUZZ_EXAMPLES`` (default 40, for CI). The full run::

    FUZZ_EXAMPLES=5000 python -m pytest -q tests/test_fuzz.py
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import CLIENT_PATH, client_body, client_headers, recent_logs

from bot_logging_server import create_app
from bot_logging_server.accounts import create_user
from bot_logging_server.config import build_config
from bot_logging_server.storage import Storage, get_storage

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
MAX_RECORDS = 20
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
ANSWERS = {
    200: "Logs added successfully",
    400: "BadRequest",
    403: "Forbidden",
    413: "PayloadTooLarge",
}


@dataclass
class Target:
    """A started app on its own event loop, with one user: what every example is sent to."""

    loop: asyncio.AbstractEventLoop
    client: Any
    storage: Storage
    name: str
    token: str
    user_id: int
    examples: int = 0

    def run(self, coro: Any) -> Any:
        """Run `coro` on the app's loop."""
        return self.loop.run_until_complete(coro)

    def send(
        self, body: bytes, headers: dict[str, str] | None = None, logs: int | None = None
    ) -> int:
        """POST `body`; check the answer's shape and that the batch is whole or absent.

        `logs` is how many records a 200 must add (None: unknown). Returns the status.
        """
        self.examples += 1
        return self.run(self._send(body, headers or client_headers(self.token), logs))

    async def _send(self, body: bytes, headers: dict[str, str], logs: int | None) -> int:
        before = await self.storage.count_logs(self.user_id)
        response = await self.client.post(CLIENT_PATH, data=body, headers=headers)
        status = response.status_code
        text = await response.get_data(as_text=True)
        assert status in ANSWERS, (status, text[:300])
        assert response.content_type == "application/json", text[:300]
        payload = json.loads(text)
        assert payload["code"] == status and payload["message"] == ANSWERS[status], payload
        after = await self.storage.count_logs(self.user_id)
        if status == 200:
            assert after - before == payload["added"], (before, after, payload)
            if logs is not None:
                assert payload["added"] == logs
        else:
            assert after == before, f"a refused batch wrote {after - before} rows"
        return status


@pytest.fixture
def target(database_url: str) -> Iterator[Target]:
    """The app on `database_url` (both backends), entered on a loop of its own.

    hypothesis drives plain functions, so the app gets its own event loop instead of
    pytest-asyncio's; the same app serves every example, as a real server would.
    """
    config = build_config(
        {"database_url": database_url, "max_records": MAX_RECORDS, "max_msg_chars": 1000},
        environ={},
    )
    app = create_app(config)
    loop = asyncio.new_event_loop()
    context = app.test_app()
    test_app = loop.run_until_complete(context.__aenter__())
    try:
        storage = get_storage(app)
        new = loop.run_until_complete(create_user(storage, f"fz_{uuid.uuid4().hex[:8]}"))
        found = Target(loop, test_app.test_client(), storage, new.user.username, new.token, 0)
        found.user_id = new.user.id
        yield found
        # The server stays up: a plain batch still works after everything it was sent.
        assert found.send(json.dumps(client_body(found.name, 2)).encode(), logs=2) == 200
        print(f"\n{found.examples} fuzz requests on {config.database.scheme}")
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()


# -- strategies ----------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
NASTY_TEXT = st.lists(
    st.sampled_from(
        [
            *"'\";`\\%_<>&/*-#=()",
            *("\x00", "\u202e", "\u200f", "שלום", "مرحبا", "😀", "🏳️\u200d🌈"),
            *("'; DROP TABLE user_logs; --", "<script>alert(1)</script>", "\\N", "NULL"),
        ]
    )
    | st.characters(codec="utf-8"),
    max_size=60,
).map("".join)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys and indexes) inside `value`, the root excluded."""
    found = []
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return found
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@st.composite
def mutated_batches(draw: st.DrawFn) -> tuple[dict, bool]:
    """A real client batch with one path replaced by a random value or removed."""
    body = client_body("placeholder", draw(st.integers(0, 5)))
    path = draw(st.sampled_from([(), *_paths(body)]))
    mutated = copy.deepcopy(body)
    if not path:
        return draw(JSON_VALUES), True
    parent = mutated
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()):
        parent[path[-1]] = draw(JSON_VALUES)
    elif isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent.pop(path[-1])
    return mutated, path[:2] == ("data", "user")


def _deep(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


# -- properties ----------------------------------------------------------------------------


def test_a_wrong_type_or_missing_key_at_any_path_is_refused_whole_or_stored_whole(target):
    @FUZZ
    @given(mutated_batches())
    def check(case: tuple[dict, bool]) -> None:
        body, touches_user = case
        if isinstance(body, dict) and isinstance(body.get("data"), dict) and not touches_user:
            body["data"]["user"] = target.name
        logs = None
        data = body.get("data") if isinstance(body, dict) else None
        if isinstance(data, dict) and isinstance(data.get("logs"), list):
            logs = len(data["logs"])
        target.send(_dumps(body), logs=logs)

    check()


def test_random_bytes_and_random_json_never_fail_the_server(target):
    @FUZZ
    @given(st.binary(max_size=300) | JSON_VALUES.map(_dumps))
    def check(raw: bytes) -> None:
        assert target.send(raw) in (400, 403)

    check()


def test_invalid_utf8_inside_a_valid_batch_is_a_400(target):
    @FUZZ
    @given(
        st.integers(0, 2**16),
        st.binary(min_size=1, max_size=4).filter(lambda b: not _is_utf8(b)),
    )
    def check(where: int, junk: bytes) -> None:
        raw = _dumps(client_body(target.name, 3))
        strings = [i for i in range(len(raw)) if raw[i : i + 1] == b'"']
        cut = strings[where % len(strings)] + 1  # just inside a string
        assert target.send(raw[:cut] + junk + raw[cut:]) == 400

    check()


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_deeply_nested_values_are_stored_or_refused_never_a_500(target):
    @FUZZ
    @given(
        st.integers(1, 3000)
        | st.sampled_from([254, 255, 256, 900, 999, 1000, 1022, 1023, 1024, 1025])
        | st.integers(1, 100_000),
        st.sampled_from(["list", "dict"]),
        st.sampled_from(["msg", "body", "level", "data"]),
    )
    def check(depth: int, kind: str, where: str) -> None:
        nested = _deep(depth, kind)
        if where == "body":
            raw = nested.encode()
        else:
            body = _dumps(client_body(target.name, 1))
            marker = {"msg": b'"message 0"', "level": b"30", "data": b'"python3"'}[where]
            raw = body.replace(marker, nested.encode(), 1)
        status = target.send(raw)
        if where == "level" or where == "body":
            assert status == 400
        elif where == "msg" and depth <= 200:
            assert status == 200  # reasonable nesting is just a message

    check()


def test_huge_values_are_cut_refused_or_stored_never_a_500(target):
    @FUZZ
    @given(
        st.sampled_from(["msg", "p_name", "p_description", "user", "pid", "event_at", "logs"]),
        st.integers(0, 300_000),
    )
    def check(field: str, size: int) -> None:
        body = client_body(target.name, 2)
        data = body["data"]
        if field == "pid":
            data["pid"] = 10 ** min(size, 4000)
        elif field == "logs":
            data["logs"] = [data["logs"][0]] * min(size, MAX_RECORDS * 3)
        elif field in ("msg", "p_description"):
            for record in data["logs"]:
                record[field] = "x" * size
        else:
            data[field] = "y" * size
        status = target.send(_dumps(body))
        if field in ("msg", "p_description", "p_name"):
            assert status == 200  # long text is cut, never refused (docs/API.md)
        if field == "logs":
            assert status == (200 if min(size, MAX_RECORDS * 3) <= MAX_RECORDS else 413)

    check()


HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=60,
)


def test_odd_headers_and_content_types_never_fail_the_server(target):
    @FUZZ
    @given(
        st.one_of(
            st.just("application/json"),
            st.sampled_from(
                [
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data; boundary=x",
                    "application/json; charset=latin-1",
                    "",
                ]
            ),
            HEADER_TEXT,
        ),
        st.one_of(st.none(), st.just("good"), HEADER_TEXT, st.text("0123456789abcdefABCDEF ")),
        st.dictionaries(
            st.from_regex(r"X-[A-Za-z]{1,10}", fullmatch=True), HEADER_TEXT, max_size=3
        ),
    )
    def check(content_type: str, token: str | None, extra: dict[str, str]) -> None:
        headers = {"Content-Type": content_type, **extra}
        if token == "good":
            headers["X-User-Token"] = target.token
        elif token is not None:
            headers["X-User-Token"] = token
        status = target.send(_dumps(client_body(target.name, 2)), headers, logs=2)
        assert status == (200 if token == "good" else 403)

    check()


def test_every_string_field_keeps_metacharacters_nul_emoji_and_rtl_verbatim(target):
    @FUZZ
    @given(NASTY_TEXT, NASTY_TEXT.map(lambda t: t[:255]), NASTY_TEXT.map(lambda t: t[:255]))
    def check(msg: str, p_name: str, p_description: str) -> None:
        record = {"level": 40, "msg": msg, "event_at": "2020-05-05T12:22:22"}
        record["p_description"] = p_description
        body = client_body(target.name, [record], p_name=p_name)
        assert target.send(json.dumps(body).encode(), logs=1) == 200
        (row,) = target.run(recent_logs(target.storage, target.user_id, 1))
        assert (row.msg, row.p_name, row.p_description) == (msg, p_name, p_description)

    check()


@pytest.mark.parametrize(
    "name",
    ["o'reilly\";--", "<b>&amp;</b>", "😀🏳️\u200d🌈", "שלום_עולם", "%_\\N", "a" * 64],
    ids=["sql", "html", "emoji", "rtl", "like-wildcards", "64 chars"],
)
async def test_user_names_with_metacharacters_work_and_match_exactly(
    client, storage, make_user, name
):
    from support import assert_added, assert_error, post_logs

    user = await make_user(name=name)
    await assert_added(await post_logs(client, user, client_body(name, 2)), 2)
    other = name[:-1] + ("_" if name[-1] != "_" else "%")
    await assert_error(await post_logs(client, user, client_body(other, 1)), 403, "Forbidden")
    assert await storage.count_logs(user.id) == 2
