"""The search language of ``q`` (every read endpoint), parsed in one place.

``q`` is a list of terms separated by spaces, combined with AND:

* ``word``: ``msg`` holds the word at the start of one of its words, in any letter case
  (``time`` finds "Timeout" and "time-out", not "runtime"; a word is a run of letters,
  digits and ``_``); the search word may go on past a word of the message (``disk/sda``);
* ``*word``: ``msg`` holds the word anywhere, inside a word too (``*time`` finds
  "runtime"; slower: no index can answer it);
* ``"a phrase"``: ``msg`` holds the phrase, starting at the start of a word (``\\"`` and
  ``\\\\`` inside it are a quote and a backslash);
* ``process:web``, ``logger:billing``: ``p_name`` / ``p_description`` starts with the value
  (any letter case; the value may be quoted: ``process:"my bot"``);
* ``pid:4242``: ``pid`` is this integer;
* ``level:error``, ``level:>=warning`` (also ``>``, ``<=``, ``<``, ``=``): compares ``level``
  with a name (debug, info, warning, error, critical...) or a number 0-100;
* ``-`` before any term excludes what it matches (``-heartbeat``, ``-"disk full"``,
  ``-process:cron``).

A word that is not one of these fields (``http://host``, ``key:value``) is a plain word.
A word or phrase that starts with a character that is not a letter, digit or ``_``
(``/var``, ``%``) matches wherever it occurs. `parse_search` answers a `Search`, or raises
`SearchError` (a 400) for an unclosed quote, a field without a value, a bad level or pid, or
more than `MAX_TERMS` terms. Wildcards (``%``, ``_``) are plain characters: the SQL
(`bot_logging_server.storage.log_query`) escapes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot_logging_server.schemas.values import BIGINT, parse_level

__all__ = [
    "FIELDS",
    "LEVEL_OPERATORS",
    "MAX_TERMS",
    "Search",
    "SearchError",
    "Term",
    "parse_search",
]

#: The most terms one ``q`` may hold (each is one more condition on every row read).
MAX_TERMS = 16
#: ``field:`` prefixes, and the column each matches (``msg`` is a plain word or phrase).
FIELDS = {"process": "p_name", "logger": "p_description", "pid": "pid", "level": "level"}
#: The comparisons ``level:`` takes (none: ``=``).
LEVEL_OPERATORS = (">=", "<=", ">", "<", "=")

_FIELD_RE = re.compile(r"(process|logger|pid|level):", re.IGNORECASE)
_PID_RE = re.compile(r"[+-]?[0-9]{1,19}")
_EXAMPLES = {"process": "web", "logger": "billing", "pid": "4242", "level": ">=warning"}


class SearchError(ValueError):
    """A ``q`` that is not a valid search; its text says what is wrong, for ``detail``."""


@dataclass(frozen=True, slots=True)
class Term:
    """One condition of a search.

    field: ``msg`` (holds `value`: at the start of a word when `op` is ``"word"``, anywhere
    when it is ``"anywhere"``), ``process``/``logger`` (starts with `value`), ``pid``
    (equals `value`) or ``level`` (compares with `value` by `op`).
    """

    field: str
    value: str | int
    op: str = "="
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Search:
    """A parsed ``q``: every term must hold (an empty search matches everything)."""

    terms: tuple[Term, ...]


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The phrase opened by the quote at `start`, and the index after its closing quote."""
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            chars.append(text[i + 1])
            i += 2
        elif char == '"':
            return "".join(chars), i + 1
        else:
            chars.append(char)
            i += 1
    raise SearchError('unclosed quote: end the phrase with "')


def _word(text: str, start: int) -> tuple[str, int]:
    """The characters from `start` to the next space, and the index after them."""
    end = start
    while end < len(text) and not text[end].isspace():
        end += 1
    return text[start:end], end


def _field_term(field: str, value: str, negated: bool) -> Term:
    """The term ``field:value``; `SearchError` when the value does not fit the field."""
    if value == "":
        raise SearchError(f"{field}: needs a value, e.g. {field}:{_EXAMPLES[field]}")
    if field == "pid":
        if not _PID_RE.fullmatch(value) or not -BIGINT <= int(value) < BIGINT:
            raise SearchError(f"pid:{value[:40]}: the pid must be an integer")
        return Term("pid", int(value), negated=negated)
    if field == "level":
        op = next((o for o in LEVEL_OPERATORS if value.startswith(o)), "")
        rest, op = value[len(op) :], op or "="
        try:
            level = parse_level(rest)
        except ValueError:
            raise SearchError(
                f"level:{value[:40]}: not a level (a name: debug, info, warning, error, "
                "critical; or a number 0-100; after >=, >, <= or < if you like)"
            ) from None
        return Term("level", level, op, negated)
    return Term(field, value, "prefix", negated)


def parse_search(text: str) -> Search:
    """Parse ``q`` into a `Search`; raise `SearchError` saying what is wrong."""
    terms: list[Term] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        negated = text[i] == "-" and i + 1 < len(text) and not text[i + 1].isspace()
        if negated:
            i += 1
        field = _FIELD_RE.match(text, i)
        if text[i] == '"':
            value, i = _quoted(text, i)
            if value == "":
                continue  # "" holds no condition
            term = Term("msg", value, "word", negated)
        elif field is not None:
            name = field.group(1).lower()
            i = field.end()
            if i < len(text) and text[i] == '"':
                value, i = _quoted(text, i)
            else:
                value, i = _word(text, i)
            term = _field_term(name, value, negated)
        else:
            value, i = _word(text, i)
            anywhere = len(value) > 1 and value.startswith("*")
            op = "anywhere" if anywhere else "word"
            term = Term("msg", value[1:] if anywhere else value, op, negated)
        terms.append(term)
        if len(terms) > MAX_TERMS:
            raise SearchError(f"too many terms: at most {MAX_TERMS}")
    return Search(tuple(terms))
