"""Pytest fixtures shared by the test files of the events API and the read API: load with
``pytest_plugins = ["support.api_fixtures"]``.

* `key`: a fresh ingest key of `user` (named ``k_<user name>``), its value in clear.
* `seeded`: `user` and another user each hold `SEED` (`support.read_api`).
"""

from __future__ import annotations

import pytest

from bot_logging_server import accounts
from support.read_api import send_seed


@pytest.fixture
async def key(storage, user):
    """A fresh ingest key of `user` (its value in clear)."""
    return (await accounts.create_key(storage, user.name, f"k_{user.name}")).value


@pytest.fixture
async def seeded(client, user, make_user):
    """`user` and another user each hold `SEED`; answers ``(user, ids, other, other_ids)``."""
    other = await make_user()
    other_ids = await send_seed(client, other)
    ids = await send_seed(client, user)
    return user, ids, other, other_ids
