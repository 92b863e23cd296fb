"""Configuration: flags, then environment, then defaults; errors name the setting, not secrets."""

from __future__ import annotations

import os

import pytest

from bot_logging_server.config import ConfigError, DatabaseURL, build_config


def test_no_credentials_means_sqlite_in_the_working_directory():
    config = build_config({}, environ={})
    assert config.database.scheme == "sqlite"
    assert config.database.path == os.path.abspath("bot_logging.db")
    assert (config.host, config.port, config.workers) == ("127.0.0.1", 5000, 1)


def test_the_originals_four_flags_select_mysql():
    config = build_config(
        {"host": "0.0.0.0", "port": 5001, "db_user": "logger", "db_password": "pw"}, environ={}
    )
    assert (config.host, config.port) == ("0.0.0.0", 5001)
    assert config.database == DatabaseURL(
        scheme="mysql",
        host="127.0.0.1",
        port=3306,
        user="logger",
        password="pw",
        name="bot_logging",
    )


def test_environment_fills_what_flags_do_not_and_flags_win():
    environ = {
        "LOGGER_DB_USER": "envuser",
        "LOGGER_DB_PASSWORD": "envpw",
        "LOGGER_DB_HOST": "db.example",
        "LOGGER_DB_PORT": "3307",
        "LOGGER_DB_NAME": "logs",
        "LOGGER_PORT": "6000",
    }
    config = build_config({"port": 7000, "db_name": "flagdb"}, environ=environ)
    assert config.port == 7000
    assert (config.database.user, config.database.password) == ("envuser", "envpw")
    assert (config.database.host, config.database.port) == ("db.example", 3307)
    assert config.database.name == "flagdb"


def test_database_url_wins_over_the_other_database_options():
    config = build_config(
        {"database_url": "mysql://u:p%40ss@h:3310/d", "db_user": "other"}, environ={}
    )
    assert (config.database.user, config.database.password) == ("u", "p@ss")
    assert (config.database.host, config.database.port, config.database.name) == ("h", 3310, "d")


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///rel/logs.db", os.path.abspath("rel/logs.db")),
        ("sqlite:////tmp/x.db", "/tmp/x.db"),
    ],
)
def test_sqlite_urls_are_relative_with_three_slashes_absolute_with_four(url, path):
    assert build_config({"database_url": url}, environ={}).database.path == path


def test_describe_names_backend_and_listen_url_but_never_the_password():
    config = build_config(
        {"db_user": "logger", "db_password": "hunter2secret", "port": 5005}, environ={}
    )
    line = config.describe()
    assert "mysql" in line and "127.0.0.1:3306/bot_logging" in line
    assert "http://127.0.0.1:5005" in line
    assert "hunter2secret" not in line and "***" in line


@pytest.mark.parametrize(
    ("flags", "environ", "named"),
    [
        ({"port": "eighty"}, {}, "--port / LOGGER_PORT"),
        ({}, {"LOGGER_PORT": "70000"}, "--port / LOGGER_PORT"),
        ({}, {"LOGGER_MAX_RECORDS": "0"}, "--max-records / LOGGER_MAX_RECORDS"),
        ({}, {"LOGGER_AUTH_CACHE_SECONDS": "9"}, "--auth-cache-seconds"),
        ({"database_url": "postgres://x@y/z"}, {}, "database URL"),
        ({"database_url": "mysql://hostonly"}, {}, "database URL"),
        ({}, {"LOGGER_LOG_LEVEL": "chatty"}, "--log-level"),
    ],
)
def test_bad_values_are_errors_naming_the_setting(flags, environ, named):
    with pytest.raises(ConfigError, match=named.replace("/", ".").replace("-", ".")):
        build_config(flags, environ)


def test_a_bad_database_url_error_never_repeats_the_url():
    with pytest.raises(ConfigError) as caught:
        build_config({"database_url": "mysql://user:topsecret@:notaport/db"}, environ={})
    assert "topsecret" not in str(caught.value)
