"""A search over a long range reads its newest rows one by one and, with the word index on
(``search-index on``: MySQL's FULLTEXT index of ``msg``, SQLite's FTS5 table), looks the rest
up in it: the answers are those of reading every row.

`bot_logging_server.storage.log_search` reads a window of ``WINDOW`` rows first, and looks
the rest up when the range holds ``MIN_ROWS`` rows or more; here both are made small, so
that a few hundred records take every path, and every answer is compared with the same
request read row by row at once.
"""

from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest
from click.testing import CliRunner
from support import get_logs, read_headers

from bot_logging_server.cli import main
from bot_logging_server.search import parse_search
from bot_logging_server.storage import LogQuery, log_search, make_storage
from bot_logging_server.storage.base import LogRow, utc_now
from bot_logging_server.storage.search_index import find_word_index

#: Words around the edges of the index: inside other words, after ', _, -, / and letters
#: outside ASCII, digits, stopwords, short words.
WORDS = [
    "order", "reorder", "orders", "time", "timeout", "runtime", "o'brien", "a_bcd", "x-ray",
    "éorder", "CamelCase", "disk/sda", "12345", "123456", "payment", "failed", "the", "for",
    "ok", "a", "über", "naïve", "ID-42", "user@example.test", "%done", "50%",
]  # fmt: skip
QUERIES = [
    "order", "reorder", "*order", "orders", "time", "*time", "runtime", "o'brien", "brien",
    "a_bcd", "bcd", "*bcd", "x-ray", "ray", "camel", "CAMELCASE", "case", "12345", "123456",
    '"payment failed"', '"failed payment"', "order -time", "*ime *out", "disk/sda", "sda",
    "the order", "for", "über", "ber", "naïve", "id-42", "example.test", "%done", "done",
    "50%", "order time payment", "-order", "*orde -*eorder", "level:>=error order",
]  # fmt: skip
PARAMS = [{}, {"order": "asc"}, {"sort": "id"}, {"sort": "id", "order": "asc"}, {"level": "error"}]


async def store_random(storage, owner, rng: random.Random, batches: int) -> None:
    """`batches` batches of 30 records of random `WORDS` for `owner`, their event times
    shuffled over three days (arrival order is not time order)."""
    now = utc_now()
    for _ in range(batches):
        rows = []
        for _ in range(30):
            msg = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
            at = now - timedelta(minutes=rng.randint(0, 3 * 24 * 60))
            level = rng.choice([10, 20, 30, 40, 50])
            rows.append(LogRow(1, "proc", "log", level, msg, False, len(msg), at, at))
        await storage.insert_logs(owner.id, rows, now)


@pytest.fixture
async def seeded(storage, user, make_user):
    """300 records for `user` and for another user; the word index is turned on half way
    (it indexes what is stored already, then each record as it is stored), and 60 of the
    user's records are deleted by retention afterwards."""
    rng = random.Random(11)
    other = await make_user()
    await storage.set_search_index(False)  # a MySQL test database outlives one test
    for owner in (other, user):
        await store_random(storage, owner, rng, 5)
    assert await storage.set_search_index(True)
    for owner in (other, user):
        await store_random(storage, owner, rng, 5)
    gone = await storage.ids_up_to(user.id, 10**18, 60)
    assert await storage.delete_log_ids(user.id, gone) == 60
    return user


#: How a search is read: (WINDOW, MIN_ROWS) of `log_search`.
READS = {
    "every row at once": (10**9, 10**9),
    "a window, then the rest row by row": (7, 10**9),
    "a window, then the rest through the index": (7, 20),
}


def read_as(monkeypatch, how: str) -> None:
    """Searches are read `how` (one of `READS`); the stats read the rest unless half the
    window matches."""
    window, min_rows = READS[how]
    monkeypatch.setattr(log_search, "WINDOW", window)
    monkeypatch.setattr(log_search, "MIN_ROWS", min_rows)
    monkeypatch.setattr(log_search, "COMMON_SHARE", 0.5)


async def every_page(client, user, params) -> list[int]:
    """The ids of every page of ``GET /api/logs`` with `params`, following the cursors."""
    ids, cursor = [], None
    while True:
        page = {"cursor": cursor} if cursor else {}
        body = await get_logs(client, user, limit=6, **params, **page)
        ids += [r["id"] for r in body["logs"]]
        cursor = body.get("next_cursor")
        if not cursor or not body["logs"]:
            return ids


async def stats(client, user, q) -> list:
    response = await client.get(
        "/api/stats", query_string={"q": q, "bucket": "hour"}, headers=read_headers(user)
    )
    assert response.status_code == 200
    return (await response.get_json())["counts"]


@pytest.mark.parametrize("q", QUERIES)
async def test_a_long_search_finds_what_reading_every_row_finds(client, seeded, monkeypatch, q):
    answers = {}
    for how in READS:
        read_as(monkeypatch, how)
        pages = [await every_page(client, seeded, {"q": q, **p}) for p in PARAMS]
        answers[how] = (pages, await stats(client, seeded, q))
    first = answers.pop("every row at once")
    assert answers == dict.fromkeys(answers, first)


async def test_a_long_search_looks_its_words_up_in_the_index(storage, seeded, backend, monkeypatch):
    read_as(monkeypatch, "a window, then the rest through the index")
    query = LogQuery(q="O'Brien *xray ab order the 12345", sort="event_at")
    index = await find_word_index(storage.db)
    assert index is not None
    plan = await log_search.plan_search(storage.db, seeded.id, query, "", index)
    assert plan is not None
    asked = {"mysql": "+brien* +order* +12345*", "sqlite": '"brien"* AND "order"* AND "12345"*'}
    assert plan.index[1] == asked[backend]  # "the": a stopword
    rest, _, indexed = await plan.read_rest(storage.db)
    assert indexed and rest.endswith(plan.index[0])
    # The index holds every word stored after it was turned on, and none of a deleted row.
    rows = await storage.db.fetch("SELECT id, msg FROM user_logs WHERE user_id = ?", (seeded.id,))
    expected = {i for i, msg in rows if "payment" in msg.split() and "failed" in msg.split()}
    found = await storage.db.fetch(
        f"SELECT id FROM user_logs WHERE {plan.index[0]}", (index.ask(["payment", "failed"]),)
    )
    assert expected and expected <= {i for (i,) in found}
    read_as(monkeypatch, "a window, then the rest row by row")
    plan = await log_search.plan_search(storage.db, seeded.id, query, "", index)
    assert plan is not None and (await plan.read_rest(storage.db))[2] is False


async def test_with_the_index_off_every_row_is_read_and_finds_the_same(
    client, storage, seeded, monkeypatch
):
    read_as(monkeypatch, "a window, then the rest through the index")
    before = [await every_page(client, seeded, {"q": q}) for q in QUERIES[:12]]
    assert await storage.set_search_index(False)
    assert not await storage.set_search_index(False)
    assert await find_word_index(storage.db) is None
    assert await storage.search_index_on() is False
    assert [await every_page(client, seeded, {"q": q}) for q in QUERIES[:12]] == before


def test_the_words_asked_of_the_index_start_words_of_every_match():
    def words(q: str) -> list[str]:
        return log_search.index_words(parse_search(q), 3)

    assert words("order time") == ["order", "time"]
    assert words("ORDER order") == ["order"]
    assert words("*order x-ray disk/sda") == ["ray", "disk", "sda"]  # *: may start in a word
    assert words("-order o'brien") == ["brien"]  # no exclusion, no short word
    assert words('"payment failed" level:error process:web') == ["payment", "failed"]
    assert words("über naïve 10.0.0.1 a of") == []  # not ASCII, too short, stopwords
    assert words("x" * 84 + " " + "y" * 85) == ["x" * 84]


async def test_an_index_turned_off_by_another_process_is_no_longer_asked(
    client, seeded, make_config, monkeypatch
):
    read_as(monkeypatch, "a window, then the rest through the index")
    before = await every_page(client, seeded, {"q": "order"})
    other = make_storage(make_config())  # another server's or the command line's storage
    await other.open()
    try:
        assert await other.set_search_index(False)
    finally:
        await other.close()
    assert await every_page(client, seeded, {"q": "order"}) == before


def test_the_command_line_turns_the_index_on_and_off_and_says_whether_it_is_on(database_url):
    def run(*args: str):
        return CliRunner().invoke(
            main, ["--database-url", database_url, "search-index", *args], catch_exceptions=False
        )

    run("off")
    assert run().stdout.startswith("search index: off (")
    built = run("on")
    assert built.exit_code == 0 and re.search(
        r"^search index: on \(.*\); built in \d", built.stdout
    )
    assert run("on").stdout.startswith("search index: on already")
    assert run("status").stdout.startswith("search index: on (")
    assert re.search(r"; dropped in \d", run("off").stdout)
    assert run("sideways").exit_code == 2
