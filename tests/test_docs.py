"""Documentation policy: pydoc is our reference, the README names every flag."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import click
import click.testing

import bot_logging_server
from bot_logging_server.cli import main

ROOT = Path(__file__).resolve().parents[1]


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


def test_every_cli_option_has_help_and_every_server_flag_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for path, command in _commands(main):
        assert (command.help or "").strip(), f"command {path!r} has no help"
        for param in command.params:
            if isinstance(param, click.Option):
                assert (param.help or "").strip(), f"{path} {param.opts} has no help"
                if command is main:
                    for opt in param.opts:
                        assert f"`{opt}`" in readme, f"{opt} is not in the README"


def test_help_shows_no_secret_defaults(monkeypatch):
    monkeypatch.setenv("LOGGER_DB_PASSWORD", "envsecretpw")
    monkeypatch.setenv("LOGGER_API_KEY", "envsecretkey")
    result = click.testing.CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "envsecret" not in result.output


def test_readme_first_screen_has_the_run_and_test_commands():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:40])
    assert "python3 app.py" in first_screen
    assert re.search(r"python3 -m pytest", first_screen)
    assert "curl" in first_screen and "send_logs" in first_screen


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"```sh\n(.*pytest.*)\n```", readme).group(1)
    assert command in (ROOT / ".ci" / "run").read_text()


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
    skip = {".git", ".venv", "venv", "build", "dist", "node_modules", ".pytest_cache"}
    offenders = []
    for path in ROOT.rglob("*"):
        if path.suffix not in {".py", ".md", ".js", ".html"} or skip & set(path.parts):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if outside.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert offenders == [], f"point these at docs/API.md: {offenders}"
