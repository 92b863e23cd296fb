"""The word index of ``user_logs.msg``: optional, turned on and off with ``search-index``.

With it, a search over a long range finds the rows holding a rare word without reading the
others (`storage.log_search`); without it, every row of the range is read. It costs ingest:
the database splits every message into words as it is stored (measured on MariaDB with
``bench/run.py``: 15-35 % fewer records a second at 30 records x 64 connections), so it is
off until an operator turns it on.

* MySQL/MariaDB: a FULLTEXT index of ``msg`` (built without stopwords, so every word a
  search may ask for is in it). Building it rewrites ``user_logs`` (about 7 s per 2 million
  records on a 2-core machine; writes wait meanwhile).
* SQLite: an FTS5 table of the messages' words (``user_logs_words``; the messages themselves
  stay in ``user_logs``), kept by triggers on insert and delete, its words split at the
  same characters as a search (letters, digits and ``_`` make words).

A server looks for the index whenever a search could use it (one query), so an index turned
on or off while servers run is used, or no longer asked, from the next search on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from bot_logging_server.storage.base import Database

__all__ = ["WordIndex", "find_word_index", "set_word_index"]

#: The name of the lock that one process holds while it turns the index on or off.
_LOCK = "search-index"
_MYSQL_INDEX = "ft_user_logs_msg"

#: Per backend: the query answering whether the index exists and the shortest word it keeps,
#: the statements that build it and those that drop it, the clause keeping the rows whose
#: words its argument asks for, and how to ask for words.
_SPELLED: dict[str, dict] = {
    "mysql": {
        "exists": (
            "SELECT COUNT(*), @@innodb_ft_min_token_size FROM information_schema.statistics "
            "WHERE table_schema = DATABASE() AND table_name = 'user_logs' "
            f"AND index_name = '{_MYSQL_INDEX}'"
        ),
        "on": (
            "SET SESSION innodb_ft_enable_stopword = OFF",
            f"ALTER TABLE user_logs ADD FULLTEXT INDEX {_MYSQL_INDEX} (msg)",
        ),
        "off": (f"ALTER TABLE user_logs DROP INDEX {_MYSQL_INDEX}",),
        "match": "MATCH (msg) AGAINST (? IN BOOLEAN MODE)",
        "word": "+{}*",
        "joiner": " ",
    },
    "sqlite": {
        "exists": (
            "SELECT COUNT(*), 3 FROM sqlite_master WHERE type = 'table' "
            "AND name = 'user_logs_words'"
        ),
        "on": (
            "CREATE VIRTUAL TABLE user_logs_words USING fts5(msg, content = 'user_logs', "
            "content_rowid = 'id', tokenize = \"unicode61 remove_diacritics 0 tokenchars '_'\", "
            "detail = none)",
            "INSERT INTO user_logs_words (user_logs_words) VALUES ('rebuild')",
            "CREATE TRIGGER user_logs_words_insert AFTER INSERT ON user_logs BEGIN "
            "INSERT INTO user_logs_words (rowid, msg) VALUES (new.id, new.msg); END",
            "CREATE TRIGGER user_logs_words_delete AFTER DELETE ON user_logs BEGIN "
            "INSERT INTO user_logs_words (user_logs_words, rowid, msg) "
            "VALUES ('delete', old.id, old.msg); END",
        ),
        "off": (
            "DROP TRIGGER IF EXISTS user_logs_words_insert",
            "DROP TRIGGER IF EXISTS user_logs_words_delete",
            "DROP TABLE IF EXISTS user_logs_words",
        ),
        "match": "id IN (SELECT rowid FROM user_logs_words WHERE user_logs_words MATCH ?)",
        "word": '"{}"*',
        "joiner": " AND ",
    },
}


@dataclasses.dataclass(frozen=True, slots=True)
class WordIndex:
    """The word index as a search reads it.

    match: a clause keeping the rows whose ``msg`` has, for every word its one argument
        asks for (`ask`), a word starting with it.
    shortest: the fewest characters a word must have to be asked for.
    word, joiner: how `ask` spells one word, and joins them.
    """

    match: str
    shortest: int
    word: str
    joiner: str

    def ask(self, words: Sequence[str]) -> str:
        """The argument of `match` for `words` (lower-case runs of ASCII letters, digits
        and ``_``: nothing the index's query language reads as an operator)."""
        return self.joiner.join(self.word.format(word) for word in words)


async def find_word_index(db: Database) -> WordIndex | None:
    """The word index of `db`, or None when it is off (one query)."""
    spelled = _SPELLED[db.dialect.name]
    exists, shortest = (await db.fetch(spelled["exists"]))[0]
    if not exists:
        return None
    return WordIndex(spelled["match"], int(shortest), spelled["word"], spelled["joiner"])


async def set_word_index(db: Database, on: bool, wait: float = 600.0) -> bool:
    """Build (`on`) or drop the word index; whether anything changed (False when it was
    so already). One process at a time (a lock, waited for up to `wait` seconds:
    `TimeoutError` past it)."""
    spelled = _SPELLED[db.dialect.name]
    async with db.named_lock(_LOCK, wait) as got:
        if not got:
            raise TimeoutError("another process is turning the search index on or off")
        if (await find_word_index(db) is not None) == on:
            return False
        await db.alter_schema(spelled["on" if on else "off"])
        return True
