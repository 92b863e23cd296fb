"""Documentation policy: pydoc is our reference, the README names every flag."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import subprocess
import sys

import click
import click.testing
import pytest
from support import ROOT

import bot_logging_server
from bot_logging_server.cli import main
from bot_logging_server.config import SECRETS, SETTINGS, Setting


def _modules():
    yield bot_logging_server
    for info in pkgutil.walk_packages(bot_logging_server.__path__, "bot_logging_server."):
        yield importlib.import_module(info.name)


def test_every_public_module_class_and_function_has_a_docstring():
    missing = []
    for module in _modules():
        if not (module.__doc__ or "").strip():
            missing.append(module.__name__)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(obj) or inspect.isfunction(obj):
                if not (obj.__doc__ or "").strip():
                    missing.append(f"{module.__name__}.{name}")
                if inspect.isclass(obj):
                    for attr, member in vars(obj).items():
                        if attr.startswith("_") or not inspect.isfunction(member):
                            continue
                        if not (member.__doc__ or "").strip():
                            missing.append(f"{module.__name__}.{name}.{attr}")
    assert missing == []


def test_pydoc_renders_the_package_page():
    result = subprocess.run(
        [sys.executable, "-m", "pydoc", "bot_logging_server"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0
    assert "create_app" in result.stdout and "/send_logs" in result.stdout


def _commands(command: click.Command, path: str = ""):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, f"{path} {name}".strip())


def test_every_cli_option_has_help():
    for path, command in _commands(main):
        assert (command.help or "").strip(), f"command {path!r} has no help"
        for param in command.params:
            if isinstance(param, click.Option):
                assert (param.help or "").strip(), f"{path} {param.opts} has no help"


def test_the_server_options_are_exactly_the_settings_table_in_its_order():
    flags = [param.opts[0] for param in main.params if isinstance(param, click.Option)]
    assert flags == [s.flag for s in SETTINGS]


def _readme_flag_table() -> dict[str, list[str]]:
    """The README's flag table: flag -> [environment, default, meaning] (cells as written)."""
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        if re.match(r"\| `--[a-z-]+` \|", line):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def _readme_default(setting: Setting) -> str:
    """How the README writes a default: ``2`` for 2.0, nothing when unset."""
    if setting.default is None:
        return ""
    if isinstance(setting.default, float):
        return f"`{setting.default:g}`"
    return f"`{setting.default}`"


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.flag)
def test_the_readme_flag_table_has_every_setting_with_its_env_and_default(setting):
    rows = _readme_flag_table()
    assert setting.flag in rows, f"{setting.flag} is not in the README's flag table"
    env, default, meaning = rows[setting.flag]
    assert env == f"`{setting.env}`"
    if setting.default is None:
        assert default == ""
    else:
        assert default.split(" ")[0] == _readme_default(setting)
    assert meaning


def test_the_readme_flag_table_has_no_flag_the_server_does_not_have():
    assert sorted(_readme_flag_table()) == sorted(s.flag for s in SETTINGS)


def test_help_shows_no_secret_defaults(monkeypatch):
    for setting in SETTINGS:
        if setting.name in SECRETS:
            monkeypatch.setenv(setting.env, f"envsecret-{setting.name}")
    result = click.testing.CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "envsecret" not in result.output


def test_secrets_are_the_password_the_api_key_the_database_url_and_the_bot_token():
    assert frozenset({"db_password", "api_key", "database_url", "telegram_token"}) == SECRETS
    secret = Setting("x_token", "LOGGER_X_TOKEN", "shown-nowhere", str, None, "A token.", True)
    assert "shown-nowhere" not in secret.option_help()


def test_readme_first_screen_has_the_run_and_test_commands():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:40])
    assert "python3 app.py" in first_screen
    assert re.search(r"python3 -m pytest", first_screen)
    assert "curl" in first_screen and "send_logs" in first_screen


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"```sh\n(.*pytest.*)\n```", readme).group(1)
    assert command in (ROOT / ".ci" / "run").read_text()


def test_setup_py_takes_the_version_from_the_package():
    result = subprocess.run(
        [sys.executable, "setup.py", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == bot_logging_server.__version__


API_DOC = ROOT / "docs" / "API.md"


def _routes() -> list[str]:
    """Every ``METHOD /path`` the app serves, /create_user on, werkzeug's ``<x>`` as ``{x}``."""
    from bot_logging_server import create_app
    from bot_logging_server.config import build_config

    config = build_config({"database_url": "sqlite:///unused.db", "api_key": "k"}, environ={})
    app = create_app(config)  # builds the URL map; opens nothing
    routes = []
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        routes += [f"{method} {path}" for method in rule.methods - {"HEAD", "OPTIONS"}]
    return sorted(routes)


def test_the_api_document_names_every_route_of_the_app():
    text = API_DOC.read_text()
    routes = _routes()
    assert "POST /create_user" in routes and "POST //send_logs" in routes
    # "GET /api/logs" must be named on its own, not only as the start of "/api/logs/export".
    missing = [r for r in routes if not re.search(re.escape(r) + r"(?![\w/{}.-])", text)]
    assert missing == [], f"docs/API.md does not document {missing}"


def test_no_file_points_at_documents_outside_the_repository_or_at_issue_numbers():
    outside = re.compile("(CONTRACT|EVENTS)" + r"\.md|[Ii]ssue \d+")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout.splitlines()
    offenders = []
    for path in (ROOT / name for name in listed):
        if path.suffix not in {".py", ".md", ".js", ".html"} or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if outside.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert offenders == [], f"point these at docs/API.md: {offenders}"
