"""Ingest keys: the ``keys`` command line, how keys are stored and checked, and that a key
only ever writes events (it never reads and never writes logs)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest
from click.testing import CliRunner
from support import assert_error, client_body, post_logs

from bot_logging_server import accounts
from bot_logging_server.auth import Authenticator
from bot_logging_server.cli import main
from bot_logging_server.config import build_config
from bot_logging_server.errors import Forbidden
from bot_logging_server.storage import KeyExists, KeyNotFound, UserNotFound, make_storage
from bot_logging_server.tokens import verify_token


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cli(database_url):
    """Run the CLI against this test's database; returns the click Result."""
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, ["--database-url", database_url, *args], catch_exceptions=False)

    return run


def stored_keys(database_url: str) -> list[tuple]:
    async def read():
        storage = make_storage(build_config({"database_url": database_url}, environ={}))
        await storage.open()
        try:
            rows = await storage.db.fetch(
                "SELECT name, lookup, key_hash, disabled FROM ingest_keys ORDER BY id"
            )
            return [tuple(row) for row in rows]
        finally:
            await storage.close()

    return asyncio.run(read())


# -- the command line ---------------------------------------------------------------------


def test_keys_add_prints_a_new_key_once_and_stores_only_its_hash(cli, database_url):
    user, name = unique("kuser"), unique("site")
    assert cli("users", "add", user).exit_code == 0
    result = cli("keys", "add", user, name)
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert len(key) == 32 and int(key, 16) >= 0 and key == key.lower()
    assert name in result.stderr and key not in result.stderr
    (row,) = [r for r in stored_keys(database_url) if r[0] == name]
    assert row[1] == hashlib.sha256(key.encode()).hexdigest()[:16]
    assert row[2].startswith("scrypt$") and key not in row[2] and verify_token(key, row[2])
    assert cli("keys", "add", user, unique("site")).stdout.strip() != key


def test_keys_list_shows_names_owners_and_states_never_keys(cli):
    alice, bob = unique("alice"), unique("bob")
    cli("users", "add", alice)
    cli("users", "add", bob)
    a_key = cli("keys", "add", alice, f"{alice}_k").stdout.strip()
    cli("keys", "add", bob, f"{bob}_k")
    cli("keys", "disable", f"{bob}_k")
    everything = cli("keys", "list").stdout
    assert f"{alice}_k" in everything and f"{bob}_k" in everything and a_key not in everything
    mine = cli("keys", "list", alice).stdout
    assert f"{alice}_k" in mine and f"{bob}_k" not in mine and "active" in mine
    assert "disabled" in cli("keys", "list", bob).stdout


def test_key_names_are_unique_across_users(cli):
    alice, bob, name = unique("alice"), unique("bob"), unique("shared")
    cli("users", "add", alice)
    cli("users", "add", bob)
    assert cli("keys", "add", alice, name).exit_code == 0
    result = cli("keys", "add", bob, name)
    assert result.exit_code == 1 and f"key '{name}' exists already" in result.stderr


def test_disable_enable_remove_change_the_key(cli, database_url):
    user, name = unique("kuser"), unique("site")
    cli("users", "add", user)
    cli("keys", "add", user, name)

    def disabled() -> list:
        return [bool(r[3]) for r in stored_keys(database_url) if r[0] == name]

    assert cli("keys", "disable", name).stdout.strip() == f"disabled key '{name}'"
    assert disabled() == [True]
    assert cli("keys", "enable", name).exit_code == 0
    assert disabled() == [False]
    assert cli("keys", "remove", name).stdout.strip() == f"removed key '{name}'"
    assert disabled() == []


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["keys", "add", "ghost_user_k", "some_key"], "no user named 'ghost_user_k'"),
        (["keys", "list", "ghost_user_k"], "no user named 'ghost_user_k'"),
        (["keys", "disable", "ghost_key"], "no key named 'ghost_key'"),
        (["keys", "enable", "ghost_key"], "no key named 'ghost_key'"),
        (["keys", "remove", "ghost_key"], "no key named 'ghost_key'"),
    ],
    ids=lambda value: " ".join(value[:2]) if isinstance(value, list) else None,
)
def test_unknown_users_and_keys_are_clear_errors(cli, args, error):
    result = cli(*args)
    assert result.exit_code == 1 and error in result.stderr


@pytest.mark.parametrize("name", ["has space", "k" * 65, "", "trailing ", "ctl\x01"])
def test_invalid_key_names_are_refused(cli, name):
    user = unique("kuser")
    cli("users", "add", user)
    for args in (["keys", "add", user, name], ["keys", "disable", name]):
        result = cli(*args)
        assert result.exit_code == 2 and "key name must be 1-64 characters" in result.stderr


# -- checking keys ------------------------------------------------------------------------


@pytest.fixture
def authenticator(storage) -> Authenticator:
    return Authenticator(storage, cache_seconds=0.5)


async def test_a_key_authenticates_as_itself_and_its_owner(storage, user, authenticator):
    new = await accounts.create_key(storage, user.name, unique("site"))
    found = await authenticator.authenticate_key(new.value)
    assert (found.id, found.user_id, found.username) == (new.key.id, user.id, user.name)
    assert (await authenticator.authenticate_key(f" {new.value.upper()} ")).id == new.key.id


@pytest.mark.parametrize(
    "key",
    [None, "", "0" * 32, "g" * 32, "0" * 31, "0" * 33],
    ids=["missing", "empty", "unknown", "not-hex", "short", "long"],
)
async def test_an_unknown_or_malformed_key_is_refused(storage, user, authenticator, key):
    await accounts.create_key(storage, user.name, unique("site"))
    assert await authenticator.find_key(key) is None
    with pytest.raises(Forbidden):
        await authenticator.authenticate_key(key)


async def test_a_users_token_is_not_a_key(storage, user, authenticator):
    assert await authenticator.find_key(user.token) is None


@pytest.mark.parametrize("change", ["disable key", "remove key", "disable user", "remove user"])
async def test_a_change_in_this_process_takes_effect_at_once(storage, user, authenticator, change):
    new = await accounts.create_key(storage, user.name, unique("site"))
    await authenticator.authenticate_key(new.value)  # verified and cached
    thing, what = change.split()
    if (thing, what) == ("disable", "key"):
        await accounts.set_key_disabled(storage, new.key.name, True)
    elif (thing, what) == ("remove", "key"):
        await accounts.remove_key(storage, new.key.name)
    elif thing == "disable":
        await accounts.set_disabled(storage, user.name, True)
    else:
        await accounts.remove_user(storage, user.name)
    with pytest.raises(Forbidden):
        await authenticator.authenticate_key(new.value)
    found = await authenticator.find_key(new.value)
    assert found is None if thing == "remove" else not found.active
    if (thing, what) == ("disable", "key"):
        await accounts.set_key_disabled(storage, new.key.name, False)
        assert (await authenticator.authenticate_key(new.value)).active


async def test_a_change_from_another_process_takes_effect_within_the_cache_time(
    storage, user, authenticator
):
    new = await accounts.create_key(storage, user.name, unique("site"))
    await authenticator.authenticate_key(new.value)
    # Straight to storage: this process's change counter does not move (as for a CLI run
    # in another process).
    await storage.set_key_disabled(new.key.name, True)
    await asyncio.sleep(0.6)
    with pytest.raises(Forbidden):
        await authenticator.authenticate_key(new.value)


async def test_concurrent_checks_of_one_key_share_one_hash(storage, user, authenticator):
    new = await accounts.create_key(storage, user.name, unique("site"))
    calls = []
    verify = authenticator._verify

    async def counting(token, stored):
        calls.append(stored)
        return await verify(token, stored)

    authenticator._verify = counting  # type: ignore[method-assign]
    found = await asyncio.gather(*(authenticator.authenticate_key(new.value) for _ in range(20)))
    assert {k.id for k in found} == {new.key.id} and len(calls) == 1


async def test_key_management_refuses_bad_names_and_unknown_owners(storage, user):
    with pytest.raises(ValueError, match="key name must be"):
        await accounts.create_key(storage, user.name, "bad name")
    with pytest.raises(UserNotFound):
        await accounts.create_key(storage, unique("ghost"), unique("site"))
    name = unique("site")
    await accounts.create_key(storage, user.name, name)
    with pytest.raises(KeyExists):
        await accounts.create_key(storage, user.name, name)
    for change in (
        accounts.set_key_disabled(storage, unique("ghost"), True),
        accounts.remove_key(storage, unique("ghost")),
    ):
        with pytest.raises(KeyNotFound):
            await change


# -- a key only writes events -------------------------------------------------------------


async def test_a_key_never_reads_logs(client, storage, user):
    new = await accounts.create_key(storage, user.name, unique("site"))
    for headers in (
        {"X-User": user.name, "X-User-Token": new.value},
        {"X-User": user.name, "Authorization": f"Bearer {new.value}"},
        {"X-User": user.name, "X-Ingest-Key": new.value},
    ):
        for path in ("/api/logs", "/api/stats", "/api/logs/export"):
            await assert_error(await client.get(path, headers=headers), 403, "Forbidden")
    response = await client.get(f"/api/logs?key={new.value}", headers={"X-User": user.name})
    await assert_error(response, 403, "Forbidden")


async def test_a_key_never_writes_logs(client, storage, user):
    new = await accounts.create_key(storage, user.name, unique("site"))
    response = await post_logs(client, user, client_body(user.name, 2), token=new.value)
    await assert_error(response, 403, "Forbidden")
    response = await client.post(
        f"/send_logs?key={new.value}",
        json=client_body(user.name, 2),
        headers={"X-Ingest-Key": new.value},
    )
    await assert_error(response, 403, "Forbidden")
    assert await storage.count_logs(user.id) == 0


async def test_removing_a_user_frees_the_names_of_their_keys(storage, make_user):
    alice, bob = await make_user(), await make_user()
    name = unique("site")
    await accounts.create_key(storage, alice.name, name)
    await accounts.remove_user(storage, alice.name)
    assert (await accounts.create_key(storage, bob.name, name)).key.user_id == bob.id
