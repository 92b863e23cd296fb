"""``--event-loop``: uvloop when installed (``auto``, the default), or the one asked for."""

from __future__ import annotations

import click
import pytest

from bot_logging_server.cli import _wants_uvloop
from bot_logging_server.config import ConfigError, build_config


def test_default_is_auto_and_the_environment_can_choose():
    assert build_config({}, environ={}).event_loop == "auto"
    assert build_config({}, environ={"LOGGER_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    assert build_config({"event_loop": "UVLOOP"}, environ={}).event_loop == "uvloop"


def test_an_unknown_loop_is_refused_naming_the_setting():
    with pytest.raises(ConfigError, match="--event-loop / LOGGER_EVENT_LOOP"):
        build_config({"event_loop": "trio"}, environ={})


def test_asyncio_never_uses_uvloop_and_auto_uses_it_when_installed():
    assert _wants_uvloop("asyncio") is False
    try:
        import uvloop  # noqa: F401
    except ImportError:
        assert _wants_uvloop("auto") is False
        with pytest.raises(click.UsageError):
            _wants_uvloop("uvloop")
    else:
        assert _wants_uvloop("auto") is True
        assert _wants_uvloop("uvloop") is True
