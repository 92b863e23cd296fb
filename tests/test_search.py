"""The search language of ``q`` on ``/api/logs``, the export and the stats, on both backends.

docs/API.md, "Search syntax": words AND (each where a word of the message starts, or anywhere
with ``*``), "phrases", -exclusions, process:/logger: prefixes, pid:, level: comparisons;
wildcards and quotes are plain characters; a malformed query is a 400 naming what is wrong,
and no other user's record is ever found.
"""

from __future__ import annotations

import json

import pytest
from support import assert_error, client_body, client_record, get_logs, post_logs, read_headers

from bot_logging_server.search import MAX_TERMS, Search, SearchError, Term, parse_search
from bot_logging_server.storage import LogQuery

# (level, msg, p_name, p_description, pid): each sent alone, so ids follow this order.
SEED = [
    (10, "heartbeat ok", "web-1", "health", 100),  # 0
    (20, "user logged in", "web-2", "auth", 101),  # 1
    (30, "disk 85% full on /var", "Worker", "disk", 200),  # 2
    (40, "Payment FAILED: card declined", "worker", "billing.charge", 200),  # 3
    (40, "card was declined later", "worker", "billing", 201),  # 4
    (50, 'quota "hard" limit hit', "cron", "Billing", 300),  # 5
    (35, "file a_b.txt missing", "cron", "files", 300),  # 6
    (20, "GET http://example.test/a ok", "web-2", "http", 101),  # 7
    (40, "timeout talking to card processor", "web-1", "billing", 100),  # 8
]
ALL = list(range(len(SEED)))


async def send_seed(client, account) -> list[int]:
    """POST `SEED` as `account`, one batch per record; answer the ids in SEED order."""
    for level, msg, p_name, p_description, pid in SEED:
        record = client_record(level=level, msg=msg, p_description=p_description)
        body = client_body(account.name, [record], p_name=p_name, pid=pid)
        response = await post_logs(client, account, body)
        assert response.status_code == 200
    ids = [r["id"] for r in (await get_logs(client, account, limit=100))["logs"]]
    assert len(ids) == len(SEED)
    return ids[::-1]


@pytest.fixture
async def seeded(client, user, make_user):
    """`user` and another user each hold `SEED` (the other's first, so that its ids are
    lower); answers ``(user, ids)``."""
    await send_seed(client, await make_user())
    return user, await send_seed(client, user)


async def found(client, user, ids, **params) -> list[int]:
    """The SEED indexes ``GET /api/logs`` finds with `params`, in SEED order."""
    body = await get_logs(client, user, limit=100, **params)
    index = {record_id: i for i, record_id in enumerate(ids)}
    assert all(r["user_id"] == user.id for r in body["logs"])
    return sorted(index[r["id"]] for r in body["logs"])


SEARCHES = [
    # words: each where a word of msg starts, any letter case, AND
    ("card", [3, 4, 8]),
    ("time", [8]),
    ("TIMEOUT talk", [8]),
    ("out", []),
    ("ok", [0, 7]),
    ("art", []),
    ("example", [7]),
    ("xample", []),
    ("85", [2]),
    ("5%", []),
    ("b.txt", []),
    # *word: anywhere, inside a word too
    ("*out", [8]),
    ("*art", [0]),
    ("*xample", [7]),
    ("*5%", [2]),
    ("*b.txt", [6]),
    ("*ailed -*eclined", []),
    ("*", []),  # a lone star is the plain character "*"
    # a word starting with a character that is no letter, digit or _ matches anywhere
    ("/var", [2]),
    (".txt", [6]),
    ("://example", [7]),
    ("card declined", [3, 4]),
    ("declined card", [3, 4]),
    ("CARD Declined", [3, 4]),
    ("  card   declined  ", [3, 4]),
    # phrases
    ('"card declined"', [3]),
    ('"CARD DECLINED"', [3]),
    ('"declined card"', []),
    ('"card declined" payment', [3]),
    # exclusions
    ("-card", [0, 1, 2, 5, 6, 7]),
    ("card -timeout", [3, 4]),
    ('-"card declined"', [0, 1, 2, 4, 5, 6, 7, 8]),
    ('card -"card declined"', [4, 8]),
    ("-process:web", [2, 3, 4, 5, 6]),
    ("-level:error", [0, 1, 2, 5, 6, 7]),
    ("-pid:200 -pid:300", [0, 1, 4, 7, 8]),
    ("-", []),  # a lone minus is the plain character "-": no message has one
    # process: and logger: are prefixes of p_name / p_description, any letter case
    ("process:web", [0, 1, 7, 8]),
    ("process:web-1", [0, 8]),
    ("process:WORK", [2, 3, 4]),
    ("process:orker", []),
    ("logger:billing", [3, 4, 5, 8]),
    ('logger:"billing.c"', [3]),
    ("logger:billing.", [3]),
    ("Logger:FILES", [6]),
    # pid: exact
    ("pid:200", [2, 3]),
    ("pid:20", []),
    ("pid:+101", [1, 7]),
    # level: names or numbers, =, >=, >, <=, <
    ("level:error", [3, 4, 8]),
    ("level:40", [3, 4, 8]),
    ("level:=error", [3, 4, 8]),
    ("level:ERROR", [3, 4, 8]),
    ("level:>=warning", [2, 3, 4, 5, 6, 8]),
    ("level:>warning", [3, 4, 5, 6, 8]),
    ("level:>=35", [3, 4, 5, 6, 8]),
    ("level:<=info", [0, 1, 7]),
    ("level:<info", [0]),
    ("level:critical", [5]),
    ("level:>=critical", [5]),
    # combinations
    ('level:>=error "card declined"', [3]),
    ("level:>=warning process:worker -payment", [2, 4]),
    ("process:web level:>=error", [8]),
    ("pid:300 level:<40", [6]),
    ("logger:billing -level:critical card", [3, 4, 8]),
    # other words with a colon are plain words
    ("http://example.test/a", [7]),
    ("foo:bar", []),
    ("failed:", [3]),
    # wildcards and quotes are plain characters
    ("85%", [2]),
    ("%", [2]),
    ("_", []),  # "_" is a word character: no word of a message starts with it
    ("*_", [6]),
    ("a_b", [6]),
    ("a%b", []),
    ("ab", []),
    ("process:%", []),
    ("process:_", []),
    ("logger:bil_ing", []),
    ("|", []),
    ('"\\"hard\\""', [5]),
    ('"quota \\"hard"', [5]),
    ('"\\"soft\\""', []),
    ('""', ALL),
    ("", ALL),
]


@pytest.mark.parametrize(("q", "expected"), SEARCHES, ids=[s[0] or "empty" for s in SEARCHES])
async def test_the_search_language_finds_exactly_the_matching_records(client, seeded, q, expected):
    user, ids = seeded
    assert await found(client, user, ids, q=q) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "card", "p_description": "billing"}, [4, 8]),
        ({"q": "process:web", "level": 40}, [8]),
        ({"q": "level:<=warning", "level": "info"}, [1, 2, 7]),
        ({"q": "-card", "pid": 300}, [5, 6]),
        ({"q": "logger:billing", "p_name": "worker"}, [3, 4]),
    ],
)
async def test_search_combines_with_the_separate_filters_by_and(client, seeded, params, expected):
    user, ids = seeded
    assert await found(client, user, ids, **params) == expected


async def test_the_export_and_the_stats_search_the_same_way(client, seeded):
    user, ids = seeded
    q = 'level:>=error "card declined"'
    export = await client.get("/api/logs/export", query_string={"q": q}, headers=read_headers(user))
    assert export.status_code == 200
    lines = (await export.get_data(as_text=True)).splitlines()
    assert [json.loads(line)["id"] for line in lines] == [ids[3]]
    stats = await client.get(
        "/api/stats",
        query_string={"q": "card -timeout", "bucket": "day"},
        headers=read_headers(user),
    )
    assert stats.status_code == 200
    counts = (await stats.get_json())["counts"]
    assert [(c["level"], c["count"]) for c in counts] == [(40, 2)]


async def test_a_search_pages_like_any_filter(client, seeded):
    user, ids = seeded
    first = await get_logs(client, user, q="level:>=warning -disk", limit=3)
    second = await get_logs(client, user, q="level:>=warning -disk", cursor=first["next_cursor"])
    listed = [r["id"] for r in first["logs"] + second["logs"]]
    assert listed == [ids[i] for i in (8, 6, 5, 4, 3)]


MALFORMED = [
    ('"card declined', "unclosed quote"),
    ('card -"declined', "unclosed quote"),
    ('process:"web', "unclosed quote"),
    ("level:loud", "level:loud: not a level"),
    ("level:>=", "level:>=: not a level"),
    ("level:101", "level:101: not a level"),
    ("level:=>error", "level:=>error: not a level"),
    ("level:", "level: needs a value"),
    ("process:", "process: needs a value"),
    ("logger:", "logger: needs a value"),
    ("pid:abc", "pid:abc: the pid must be an integer"),
    ("pid:1.5", "pid:1.5: the pid must be an integer"),
    ("pid:9223372036854775808", "the pid must be an integer"),
    ("pid:", "pid: needs a value"),
    (" ".join(f"w{i}" for i in range(MAX_TERMS + 1)), f"too many terms: at most {MAX_TERMS}"),
    ("x" * 1001, "longer than 1000 characters"),
]


@pytest.mark.parametrize(("q", "problem"), MALFORMED, ids=[m[1][:30] for m in MALFORMED])
@pytest.mark.parametrize("path", ["/api/logs", "/api/logs/export", "/api/stats", "/api/tail"])
async def test_a_malformed_search_is_a_400_saying_what_is_wrong(client, user, path, q, problem):
    response = await client.get(path, query_string={"q": q}, headers=read_headers(user))
    body = await assert_error(response, 400, "BadRequest")
    assert body["detail"].startswith("query.q: ")
    assert problem.lower() in body["detail"].lower()


async def test_as_many_terms_as_allowed_are_accepted(client, seeded):
    user, ids = seeded
    q = " ".join(["card"] * MAX_TERMS)
    assert await found(client, user, ids, q=q) == [3, 4, 8]


def test_a_query_parses_into_typed_terms():
    assert parse_search('level:>=Warning -"a \\"b\\"" process:"my bot" pid:-7 x:y') == Search(
        (
            Term("level", 30, ">="),
            Term("msg", 'a "b"', "word", negated=True),
            Term("process", "my bot", "prefix"),
            Term("pid", -7),
            Term("msg", "x:y", "word"),
        )
    )
    assert LogQuery(q="card").q == Search((Term("msg", "card", "word"),))
    assert parse_search("*time -*out *") == Search(
        (
            Term("msg", "time", "anywhere"),
            Term("msg", "out", "anywhere", negated=True),
            Term("msg", "*", "word"),
        )
    )
    with pytest.raises(SearchError):
        LogQuery(q='"open')
