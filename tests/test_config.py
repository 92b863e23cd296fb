"""Configuration: flags, then environment, then defaults; errors name the setting, not secrets.

The table-driven tests walk `SETTINGS`, so a new setting is checked without a new test.
"""

from __future__ import annotations

import os

import pytest

from bot_logging_server.config import (
    SETTINGS,
    ConfigError,
    DatabaseURL,
    HostPort,
    Setting,
    build_config,
)

#: The settings that make up the database URL, and the `DatabaseURL` part each fills.
DATABASE_PARTS = {
    "db_user": "user",
    "db_password": "password",
    "db_host": "host",
    "db_port": "port",
    "db_name": "name",
}


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


def _two_values(setting: Setting) -> tuple[object, object]:
    """Two valid values of `setting`, both different from its default."""
    if setting.name == "database_url":
        return "mysql://envu:envpw@envhost:1111/envdb", "sqlite:////tmp/flag.db"
    if setting.choices:
        others = [c for c in setting.choices if c != setting.default]
        return others[0], others[-1]
    if setting.range_or_choices:
        low, high = setting.range_or_choices
        values = [v for v in (low, high, (low + high) // 2) if v != setting.default]
        return setting.kind(values[0]), setting.kind(values[1])
    return f"env-{setting.name}", f"flag-{setting.name}"


def _read_back(setting: Setting, config) -> object:
    if setting.name == "database_url":
        return config.database
    if setting.name in DATABASE_PARTS:
        return getattr(config.database, DATABASE_PARTS[setting.name])
    return getattr(config, setting.name)


def _expected(setting: Setting, value: object) -> object:
    if setting.name == "database_url":
        return DatabaseURL.parse(str(value))
    return value


def _base(setting: Setting) -> dict[str, object]:
    """Flags under which `setting` is read: a database user for the MySQL parts."""
    return {"db_user": "u"} if setting.name in DATABASE_PARTS.keys() - {"db_user"} else {}


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_has_its_default(setting):
    value = _read_back(setting, build_config(_base(setting), {}))
    if setting.name in ("database_url", "db_user"):
        assert build_config({}, {}).database.scheme == "sqlite"  # neither: SQLite
    elif setting.name == "db_password":
        assert value == ""
    else:
        assert value == setting.default and type(value) is type(setting.default)


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_read_from_its_environment_and_its_flag_wins(setting):
    from_env, from_flag = _two_values(setting)
    environ = {setting.env: str(from_env).upper() if setting.choices else str(from_env)}
    config = build_config(_base(setting), environ)
    assert _read_back(setting, config) == _expected(setting, from_env)
    config = build_config({**_base(setting), setting.name: from_flag}, environ)
    assert _read_back(setting, config) == _expected(setting, from_flag)


RANGED = [s for s in SETTINGS if s.kind is not str and s.range_or_choices]


@pytest.mark.parametrize("setting", RANGED, ids=lambda s: s.name)
def test_every_number_outside_its_range_is_an_error_naming_flag_and_environment(setting):
    low, high = setting.range_or_choices
    for bad in (low - 1, high + 1, "many"):
        with pytest.raises(ConfigError) as caught:
            build_config({"db_user": "u", setting.name: bad}, {})
        assert str(caught.value).startswith(f"{setting.flag} / {setting.env}: ")


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.choices], ids=lambda s: s.name)
def test_every_choice_setting_refuses_anything_else_naming_flag_and_environment(setting):
    with pytest.raises(ConfigError, match=f"^{setting.flag} / {setting.env}: "):
        build_config({}, {setting.env: "none-of-these"})


def test_database_settings_are_not_read_when_the_database_is_sqlite():
    config = build_config({}, environ={"LOGGER_DB_PORT": "not-a-port", "LOGGER_DB_NAME": ""})
    assert config.database.scheme == "sqlite"


def test_the_config_repr_never_shows_a_secret():
    config = build_config(
        {"api_key": "key-topsecret", "database_url": "mysql://u:pw-topsecret@h:3306/d"}, {}
    )
    assert config.api_key == "key-topsecret" and config.database.password == "pw-topsecret"
    assert "topsecret" not in repr(config) and "api_key=***" in repr(config)
    assert "topsecret" not in repr(config.database)


# -- several database hosts (a Galera cluster) ------------------------------------------------


def test_db_host_takes_a_list_of_nodes_and_the_port_fills_the_ones_without():
    config = build_config(
        {"db_user": "u", "db_host": "db1:3307, db2,db3:3309", "db_port": 4000}, environ={}
    )
    assert config.database.hosts == (
        HostPort("db1", 3307),
        HostPort("db2", 4000),
        HostPort("db3", 3309),
    )
    assert (config.database.host, config.database.port) == ("db1", 3307)


def test_a_url_takes_a_list_of_nodes_and_prints_them_all_without_the_password():
    url = DatabaseURL.parse("mysql://u:p%40ss@h1:3306,h2:3307,[::1]/logs")
    assert url.hosts == (HostPort("h1", 3306), HostPort("h2", 3307), HostPort("::1", 3306))
    assert (url.user, url.password, url.name) == ("u", "p@ss", "logs")
    assert url.masked() == "mysql://u:***@h1:3306,h2:3307,[::1]:3306/logs"
    line = build_config({"database_url": "mysql://u:p%40ss@h1:3306,h2:3307/logs"}, {}).describe()
    assert "h1:3306,h2:3307/logs" in line and "p@ss" not in line


def test_one_host_is_a_list_of_one():
    url = DatabaseURL(scheme="mysql", host="h", port=3310, user="u", name="d")
    assert url.hosts == (HostPort("h", 3310),)
    assert url == DatabaseURL.parse("mysql://u@h:3310/d")


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ({"db_user": "u", "db_host": "db1,,db2"}, "--db-host / LOGGER_DB_HOST: database hosts"),
        ({"db_user": "u", "db_host": "db1:x"}, "--db-host / LOGGER_DB_HOST: database hosts"),
        ({"db_user": "u", "db_host": "db1,db1"}, "--db-host / LOGGER_DB_HOST: database hosts"),
        ({"database_url": "mysql://u:topsecret@h1:3306,h1:3306/d"}, "database URL: the hosts"),
        ({"database_url": "mysql://u:topsecret@h1:99999/d"}, "database URL: the hosts"),
    ],
    ids=["empty-entry", "bad-port", "twice", "url-twice", "url-port-too-big"],
)
def test_a_bad_host_list_is_an_error_naming_the_setting_never_the_password(flags, named):
    with pytest.raises(ConfigError, match=named.replace("/", ".")) as caught:
        build_config(flags, environ={})
    assert "topsecret" not in str(caught.value)
