"""The ``users`` command line: add, list, disable, enable, rotate, remove, set-tel-id
(CliRunner)."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys

import pytest
from click.testing import CliRunner
from support import ROOT

from bot_logging_server.cli import main
from bot_logging_server.config import build_config
from bot_logging_server.storage import make_storage
from bot_logging_server.tokens import verify_token


@pytest.fixture
def cli(database_url):
    """Run the CLI against this test's database; returns the click Result."""
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, ["--database-url", database_url, *args], catch_exceptions=False)

    return run


def _user(database_url, name):
    async def get():
        storage = make_storage(build_config({"database_url": database_url}, environ={}))
        await storage.open()
        try:
            return await storage.get_user(name)
        finally:
            await storage.close()

    return asyncio.run(get())


def test_users_add_with_password_prints_md5_of_name_and_password_once(cli, database_url):
    result = cli("users", "add", "alice_cli", "--password", "pw", "--tel-id", "-100123")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token == hashlib.md5(b"alice_clipw").hexdigest()
    stored = _user(database_url, "alice_cli")
    assert stored.tel_id == -100123
    assert token not in stored.token_hash and verify_token(token, stored.token_hash)


def test_users_add_without_password_prints_a_random_token(cli, database_url):
    result = cli("users", "add", "bob_cli")
    token = result.stdout.strip()
    assert result.exit_code == 0 and len(token) == 32 and int(token, 16) >= 0
    assert verify_token(token, _user(database_url, "bob_cli").token_hash)


def test_adding_an_existing_user_fails_with_a_clear_error(cli):
    assert cli("users", "add", "dup_cli").exit_code == 0
    result = cli("users", "add", "dup_cli")
    assert result.exit_code == 1
    assert "user 'dup_cli' exists already" in result.stderr


@pytest.mark.parametrize("name", ["has space", "x" * 65, "", "bad\udcffbyte", "ctl\x01"])
def test_invalid_user_names_are_refused(cli, name):
    result = cli("users", "add", name)
    assert result.exit_code == 2
    assert "1-64 characters, no whitespace" in result.stderr


@pytest.mark.parametrize("name", ["zw\u200bcli", "\u202eevil_cli", "soft\u00adcli"])
def test_names_with_invisible_format_characters_are_refused(cli, database_url, name):
    result = cli("users", "add", name)
    assert result.exit_code == 2
    assert "invisible format characters" in result.stderr
    assert _user(database_url, name) is None


def test_a_name_is_stored_in_nfkc_form_and_found_by_any_look_alike(cli, database_url):
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in "heidi")
    result = cli("users", "add", full_width + "_cli", "--password", "pw")
    assert result.exit_code == 0, result.output
    assert "created user 'heidi_cli'" in result.stderr
    assert result.stdout.strip() == hashlib.md5(b"heidi_clipw").hexdigest()
    assert _user(database_url, full_width + "_cli") is None
    assert cli("users", "add", "heidi_cli").exit_code == 1  # taken
    assert cli("users", "disable", full_width + "_cli").exit_code == 0
    assert _user(database_url, "heidi_cli").disabled


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tel-id", str(2**70)], "tel_id is out of range"),
        (["--tel-id", "1.5"], "'1.5' is not a valid integer"),
        (["--password", "bad\udcffbyte"], "password must be valid Unicode text"),
    ],
)
def test_invalid_tel_id_or_password_is_refused_without_a_traceback(cli, args, message):
    result = cli("users", "add", "fine_name", *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("command", ["disable", "enable", "rotate", "remove"])
def test_unknown_user_is_a_clear_error(cli, command):
    result = cli("users", command, "ghost_cli")
    assert result.exit_code == 1
    assert "no user named 'ghost_cli'" in result.stderr


def test_disable_enable_rotate_remove_change_the_user(cli, database_url):
    first = cli("users", "add", "carol_cli").stdout.strip()
    assert cli("users", "disable", "carol_cli").exit_code == 0
    assert _user(database_url, "carol_cli").disabled
    listing = cli("users", "list").stdout
    assert "carol_cli" in listing and "disabled" in listing and first not in listing
    assert cli("users", "enable", "carol_cli").exit_code == 0
    assert not _user(database_url, "carol_cli").disabled
    rotated = cli("users", "rotate", "carol_cli").stdout.strip()
    stored = _user(database_url, "carol_cli")
    assert rotated != first and verify_token(rotated, stored.token_hash)
    assert not verify_token(first, stored.token_hash)
    removed = cli("users", "remove", "carol_cli")
    assert removed.exit_code == 0 and "removed user 'carol_cli'" in removed.stdout
    assert _user(database_url, "carol_cli") is None


def test_set_tel_id_gives_an_existing_user_a_telegram_chat_for_alerts_and_clears_it(
    cli, database_url
):
    cli("users", "add", "dave_cli")
    refused = cli("alerts", "add", "dave_cli", "--channel", "telegram", "--level", "error")
    assert refused.exit_code != 0 and "has no tel_id" in refused.stderr
    result = cli("users", "set-tel-id", "dave_cli", "-100200")
    assert result.exit_code == 0 and "tel_id of 'dave_cli': -100200" in result.stdout
    assert _user(database_url, "dave_cli").tel_id == -100200
    assert "-100200" in cli("users", "list").stdout
    added = cli("alerts", "add", "dave_cli", "--channel", "telegram", "--level", "error")
    assert added.exit_code == 0, added.output
    assert cli("users", "set-tel-id", "dave_cli", "none").exit_code == 0
    assert _user(database_url, "dave_cli").tel_id is None


@pytest.mark.parametrize(
    ("value", "message"),
    [("12ab", "'12ab' is not an integer"), (str(2**70), "tel_id is out of range")],
)
def test_set_tel_id_refuses_a_bad_id_and_changes_nothing(cli, database_url, value, message):
    cli("users", "add", "erin_cli", "--tel-id", "7")
    result = cli("users", "set-tel-id", "erin_cli", value)
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.output
    assert _user(database_url, "erin_cli").tel_id == 7


def test_set_tel_id_of_an_unknown_user_is_a_clear_error(cli):
    result = cli("users", "set-tel-id", "ghost_cli", "5")
    assert result.exit_code == 1 and "no user named 'ghost_cli'" in result.stderr


def test_bad_configuration_is_a_usage_error_naming_the_setting():
    result = CliRunner().invoke(main, ["--port", "99999", "users", "list"])
    assert result.exit_code == 2
    assert "--port / LOGGER_PORT" in result.stderr


def test_unreachable_database_is_a_clear_error_not_a_traceback():
    result = CliRunner().invoke(
        main, ["--database-url", "mysql://root@127.0.0.1:1/nothing", "users", "list"]
    )
    assert result.exit_code == 1
    assert "storage: cannot connect to the database server" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["disable", "enable", "rotate", "remove"])
def test_a_name_with_a_trailing_space_never_changes_the_user_without_it(cli, database_url, command):
    cli("users", "add", f"pad_{command}")
    result = cli("users", command, f"pad_{command} ")
    assert result.exit_code == 2 and "no whitespace" in result.stderr
    assert _user(database_url, f"pad_{command}").disabled is False


def test_the_worker_entry_point_does_not_load_the_command_line():
    code = "import sys, bot_logging_server.asgi; print('bot_logging_server.cli' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
