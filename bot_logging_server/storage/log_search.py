"""A text search of a user's logs over a long range: the newest rows read, the rest looked up.

Reading every row of a range to find a rare word takes seconds at a million records. With
the word index of ``msg`` turned on (`storage.search_index`), a search over more than
`WINDOW` rows is read in two parts, in the page's own order:

1. the first `WINDOW` rows of the range, row by row, as any search (a common word fills the
   page there, in milliseconds);
2. only when they hold less than a page (or, for the stats, when the words are rare in
   them), the rest of the range: through the index when the range holds `MIN_ROWS` rows or
   more (only the rows holding a word that starts with each indexed word of the search,
   `index_words`, are read, and each is then checked by the same clauses as in part 1),
   else row by row.

The index only narrows what is read, never what matches: every word of a search must start a
word of the message (`bot_logging_server.search`), which the index can tell. So both parts
answer what a read of every row would, and a search with no indexable word (only words
shorter than the index keeps, or words matched anywhere) reads every row, as before.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from bot_logging_server.search import Search
from bot_logging_server.storage.base import Database
from bot_logging_server.storage.log_query import LogQuery, query_where
from bot_logging_server.storage.search_index import WordIndex

__all__ = ["MIN_ROWS", "WINDOW", "SearchPlan", "common_in_window", "index_words", "plan_search"]

#: The rows a search reads one by one before it looks the rest up in the word index.
WINDOW = 20_000
#: A range of fewer rows than this is read row by row (a few hundred milliseconds at most).
MIN_ROWS = 100_000
#: In the stats, words found in more than this share of the window's rows are counted
#: row by row over the whole range (the index reads every row holding a common word).
COMMON_SHARE = 0.005

#: The longest word MySQL's FULLTEXT index keeps (``innodb_ft_max_token_size``'s default).
_MAX_INDEX_WORD = 84
#: InnoDB's default stopwords: an index built with them on keeps none of these words, so a
#: search never asks the index for them (step 10 of the migrations builds it without).
_STOPWORD_TEXT = (
    "a about an are as at be by com de en for from how i in is it la of on or that the this to "
    "was what when where who will with und www"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD_RUN = re.compile(r"\w+")


def common_in_window(found: int) -> bool:
    """Whether `found` rows matching in the window make the words common (`COMMON_SHARE`):
    then the stats count row by row over the whole range."""
    return found > COMMON_SHARE * WINDOW


def index_words(search: Search, shortest: int) -> list[str]:
    """The words to ask the word index for `search`: a message matching it has a word
    starting with each (none when no term has one).

    A word is a run of word characters of a positive ``msg`` term, ASCII, lower-cased,
    between `shortest` and 84 characters, and no stopword. Each one starts a word of every
    matching message: a term starts where a word does, and each later run follows a non-word
    character. The first run of a term matched anywhere does not, and is left out.
    """
    words: list[str] = []
    for term in search.terms:
        if term.field != "msg" or term.negated:
            continue
        for run in _WORD_RUN.finditer(str(term.value)):
            word = run.group().lower()
            if run.start() == 0 and term.op == "anywhere":
                continue
            fits = word.isascii() and shortest <= len(word) <= _MAX_INDEX_WORD
            if fits and word not in _STOPWORDS:
                words.append(word)
    return list(dict.fromkeys(words))


@dataclasses.dataclass(frozen=True, slots=True)
class SearchPlan:
    """A search read in two parts (`plan_search`).

    window: the clause keeping the first `WINDOW` rows of the range in the page's order,
        and its arguments.
    rest: the clause keeping the rows after them, and its arguments.
    index: the word index's clause and its argument (`WordIndex.ask`).
    probe: a query (and its arguments) answering a row when the range holds `MIN_ROWS`
        rows or more (on the range's index alone).
    """

    window: tuple[str, list]
    rest: tuple[str, list]
    index: tuple[str, str]
    probe: tuple[str, list]

    async def read_rest(self, db: Database) -> tuple[str, list, bool]:
        """The clause and arguments that keep the rest, and whether it is read through the
        word index: when the range holds `MIN_ROWS` rows or more (the rest is then read
        without an index hint, which would keep the planner off the word index)."""
        clause, args = self.rest
        sql, probe_args = self.probe
        if not await db.fetch(sql, probe_args):
            return clause, args, False
        match, words = self.index
        return f"{clause} AND {match}", [*args, words], True


async def plan_search(
    db: Database, user_id: int, query: LogQuery, hint: str, index: WordIndex
) -> SearchPlan | None:
    """The two-part read of `query` (see the module) with the word `index`, or None when it
    is read row by row: no indexable word, a range of no more than `WINDOW` rows, or arrival
    order over a time range (whose rows no index holds in that order).

    `hint` pins the range's index; the window's end is found on that index alone.
    """
    dialect = db.dialect
    words = index_words(query.q, index.shortest) if query.q is not None else []
    by_time = query.sort == "event_at"
    if not words or not (by_time or (query.since is None and query.until is None)):
        return None
    bare = dataclasses.replace(
        query, q=None, min_level=None, p_name=None, p_description=None, pid=None
    )
    where, args = query_where(dialect, user_id, bare)
    direction = "ASC" if query.oldest_first else "DESC"
    columns = "event_at, id" if by_time else "id"
    order = f"event_at {direction}, id {direction}" if by_time else f"id {direction}"
    nth = f"SELECT {columns} FROM user_logs {hint} WHERE {where} ORDER BY {order} LIMIT 1 OFFSET ?"
    end = await db.fetch(nth, (*args, WINDOW - 1))
    if not end:
        return None
    window, rest = _split(end[0], by_time, query.oldest_first)
    match = (index.match, index.ask(words))
    return SearchPlan(window, rest, match, (nth, [*args, MIN_ROWS - 1]))


def _split(end: Sequence, by_time: bool, oldest_first: bool) -> tuple[tuple, tuple]:
    """The clauses (and arguments) of the rows up to `end` in the page's order, and of the
    rows after it; `end` is the window's last row: (event_at, id), or (id,)."""
    keep, skip = ("<", ">") if oldest_first else (">", "<")
    if not by_time:
        (last,) = end
        return (f"id {keep}= ?", [last]), (f"id {skip} ?", [last])
    at, last = end
    window = f"event_at {keep}= ? AND (event_at {keep} ? OR id {keep}= ?)"
    rest = f"event_at {skip}= ? AND (event_at {skip} ? OR id {skip} ?)"
    return (window, [at, at, last]), (rest, [at, at, last])
