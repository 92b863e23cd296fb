"""Which of a user's log records to read: the `LogQuery`, and how it becomes SQL.

`query_where` turns a query into the WHERE clause of ``user_logs`` (always scoped to one user,
whatever the filters), its search terms through `search_filters` and its event-time cursor
as a keyset; `answered_by_counters` says whether its stats can be summed from the counters
(`storage.counts`). `storage.logs` runs the queries.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from bot_logging_server.search import FIELDS, LEVEL_OPERATORS, Search, Term, parse_search
from bot_logging_server.storage.base import MAX_PAGE, join_filters
from bot_logging_server.storage.dialect import Dialect

__all__ = ["LOG_SORTS", "LogQuery", "answered_by_counters", "query_where", "search_filters"]

#: The orders of a user's records (`LogQuery.sort`): event time (ties by id), or arrival (id).
LOG_SORTS = ("event_at", "id")


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Which of a user's records to read, and one keyset page of them (never an OFFSET).

    Filters (all optional, combined with AND):
        min_level: ``level >= min_level``.
        since, until: ``since <= event_at < until`` (naive UTC).
        q: a `bot_logging_server.search.Search` (words and phrases of ``msg``, prefixes of
            ``p_name``/``p_description``, pid, level comparisons; see that module); a string
            given here is parsed (`SearchError`, a `ValueError`, when it is not valid).
        p_name, p_description, pid: equal to.
    Page:
        sort: ``"id"`` (arrival: the order the records were stored in, the live tail's) or
            ``"event_at"`` (event time, ties by id: what the listing shows by default).
        before_id, after_id: the keyset cursor. By id: only ``id < before_id`` /
            ``id > after_id``. By event time: with `cursor_event_at` (the event time of the
            record `before_id` / `after_id`), only ``(event_at, id) < (cursor_event_at,
            before_id)`` / ``> (cursor_event_at, after_id)``.
        cursor_event_at: see above; required with a cursor when sorting by event time.
        oldest_first: ascending instead of newest first.
        limit: 1..`MAX_PAGE` records.
    """

    min_level: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: Search | None = None
    p_name: str | None = None
    p_description: str | None = None
    pid: int | None = None
    before_id: int | None = None
    after_id: int | None = None
    oldest_first: bool = False
    limit: int = 100
    sort: str = "id"
    cursor_event_at: datetime | None = None

    def __post_init__(self) -> None:
        """Refuse a limit outside 1..`MAX_PAGE`, an unknown sort, or an event-time cursor
        without its time (programming errors, not a client's)."""
        if not 1 <= self.limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1..{MAX_PAGE}")
        if isinstance(self.q, str):
            object.__setattr__(self, "q", parse_search(self.q))
        if self.sort not in LOG_SORTS:
            raise ValueError(f"sort must be one of {LOG_SORTS}")
        cursor = self.before_id is not None or self.after_id is not None
        if self.sort == "event_at" and cursor and self.cursor_event_at is None:
            raise ValueError("an event-time cursor needs cursor_event_at")


def search_filters(dialect: Dialect, search: Search) -> list[tuple[str, tuple]]:
    """One WHERE clause and its arguments per term of `search` (see `query_where`).

    In the order a row is best checked in (`_cheap_first`). Words and phrases are
    `Dialect.holds` of ``msg`` (at the start of a word, or anywhere),
    ``process:``/``logger:`` are `Dialect.starts_with` of their column (both: any letter
    case, wildcards escaped), ``pid:`` and ``level:`` compare numbers; a negated term is
    ``NOT (...)`` (every column is NOT NULL).
    """
    filters = []
    for term in sorted(search.terms, key=_cheap_first):
        if term.field == "msg":
            clause, values = dialect.holds("msg", str(term.value), term.op == "anywhere")
        elif term.field in ("process", "logger"):
            clause, value = dialect.starts_with(FIELDS[term.field], str(term.value))
            values = (value,)
        elif term.field == "level" and term.op in LEVEL_OPERATORS:
            clause, values = f"level {term.op} ?", (term.value,)
        elif term.field == "pid":
            clause, values = "pid = ?", (term.value,)
        else:
            raise ValueError(f"not a search term: {term!r}")
        filters.append((f"NOT ({clause})" if term.negated else clause, values))
    return filters


def _cheap_first(term: Term) -> tuple[int, int]:
    """The order a row's terms are checked in (AND stops at the first false one): numbers
    and prefixes, then the message's words, longest (the likeliest to rule a row out)
    first, then the exclusions (which rule few rows out)."""
    if term.field != "msg":
        return (0, 0)
    return (2 if term.negated else 1, -len(str(term.value)))


def query_where(
    dialect: Dialect, user_id: int, query: LogQuery, with_cursor: bool = True
) -> tuple[str, list]:
    """The WHERE clause and its arguments for `query` (with its keyset cursor unless not
    `with_cursor`), always scoped to `user_id`: it starts with ``user_id = ?``."""
    optional = [
        ("level >= ?", query.min_level),
        ("event_at >= ?", None if query.since is None else dialect.encode_time(query.since)),
        ("event_at < ?", None if query.until is None else dialect.encode_time(query.until)),
        ("p_name = ?", query.p_name),
        ("p_description = ?", query.p_description),
        ("pid = ?", query.pid),
    ]
    keyset = with_cursor and query.sort == "event_at"
    if with_cursor and not keyset:
        optional += [("id < ?", query.before_id), ("id > ?", query.after_id)]
    where, args = join_filters(("user_id = ?", user_id), optional)
    for clause, values in search_filters(dialect, query.q) if query.q is not None else ():
        where, args = f"{where} AND {clause}", [*args, *values]
    if keyset and query.cursor_event_at is not None:
        clause, keyset_args = _event_keyset(
            dialect.encode_time(query.cursor_event_at), query.before_id, query.after_id
        )
        where, args = f"{where} AND {clause}", [*args, *keyset_args]
    return where, args


#: The fields of a `LogQuery` the counters can answer, and those stats ignore (the page).
_COUNTED_FIELDS = frozenset({"min_level", "since", "until"})
_PAGE_FIELDS = frozenset(
    {"before_id", "after_id", "oldest_first", "limit", "sort", "cursor_event_at"}
)


def answered_by_counters(query: LogQuery) -> bool:
    """Whether the counters can answer `query`'s stats: every filter but the level and the
    time range is unset (a filter added later is not, until it is listed above)."""
    return all(
        getattr(query, field.name) == field.default
        for field in dataclasses.fields(query)
        if field.name not in _COUNTED_FIELDS and field.name not in _PAGE_FIELDS
    )


def _event_keyset(at: object, before_id: int | None, after_id: int | None) -> tuple[str, list]:
    """The clause of an event-time page: rows after (`at`, id) in (event_at, id) order.

    ``(event_at, id) < (at, before_id)`` spelled so that both backends read it as a range of
    the (user_id, event_at, id) index (``event_at <= at``) and test the pair on its entries.
    """
    if before_id is not None:
        return "event_at <= ? AND (event_at < ? OR id < ?)", [at, at, before_id]
    return "event_at >= ? AND (event_at > ? OR id > ?)", [at, at, after_id]
