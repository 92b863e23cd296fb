"""The event wire interfaces (The Eye, Microticks, tracker): ingest keys made straight in
storage, and the stored rows read back with SQL of their own."""

from __future__ import annotations

import uuid
from typing import Any

from bot_logging_server.storage import Storage
from bot_logging_server.tokens import hash_token, key_lookup, random_token


async def new_key(storage: Storage, user_id: int, disabled: bool = False) -> str:
    """Create an ingest key for `user_id` (a unique name) and return its value in clear."""
    value = random_token()
    name = f"k_{uuid.uuid4().hex[:10]}"
    await storage.create_key(user_id, name, key_lookup(value), hash_token(value))
    if disabled:
        await storage.set_key_disabled(name, True)
    return value


async def key_name(storage: Storage, user_id: int) -> str:
    """The name of `user_id`'s only key."""
    (key,) = await storage.list_keys(user_id)
    return key.name


_EVENT_COLUMNS = (
    "e.id, e.source, s.session_key, e.category, e.name, e.page, e.data, e.data_raw, "
    "e.client_time, e.client_at, e.clock_skew_ms, e.sequence, e.ip, e.user_agent, "
    "e.ingest_key_id, e.user_id"
)


async def stored_events(storage: Storage, user_id: int | None = None) -> list[dict[str, Any]]:
    """Every stored event (of `user_id` only, when given), oldest first, as dicts keyed by
    column (``session_key`` is the session's key), read with SQL of their own."""
    where, args = ("WHERE e.user_id = ?", (user_id,)) if user_id is not None else ("", ())
    rows = await storage.db.fetch(
        f"SELECT {_EVENT_COLUMNS} FROM events e LEFT JOIN sessions s ON s.id = e.session_id "
        f"{where} ORDER BY e.id",
        args,
    )
    names = [c.strip().split(".")[1] for c in _EVENT_COLUMNS.split(",")]
    out = []
    for row in rows:
        item = dict(zip(names, row, strict=True))
        if isinstance(item["session_key"], bytes):
            item["session_key"] = item["session_key"].decode()
        out.append(item)
    return out


async def count_rows(storage: Storage, table: str, user_id: int) -> int:
    """How many rows of `table` (``events`` or ``sessions``) `user_id` owns. (The MySQL
    database is shared by the tests of a run: counts are per user, and every test has its
    own users.)"""
    assert table in {"events", "sessions"}
    rows = await storage.db.fetch(f"SELECT COUNT(*) FROM {table} WHERE user_id = ?", (user_id,))
    return int(rows[0][0])


def no_leak(text: str) -> None:
    """No traceback and no SQL in an answer."""
    for word in ("Traceback", "SELECT", "INSERT", "UPDATE "):
        assert word not in text
