"""``--event-loop``: uvloop when installed (``auto``, the default), or the one asked for.

And the served app's loop keeps connections cancelled at shutdown out of the error log.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot_logging_server.config import ConfigError, build_config
from bot_logging_server.server import serving_app, wants_uvloop


def test_default_is_auto_and_the_environment_can_choose():
    assert build_config({}, environ={}).event_loop == "auto"
    assert build_config({}, environ={"LOGGER_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    assert build_config({"event_loop": "UVLOOP"}, environ={}).event_loop == "uvloop"


def test_an_unknown_loop_is_refused_naming_the_setting():
    with pytest.raises(ConfigError, match="--event-loop / LOGGER_EVENT_LOOP"):
        build_config({"event_loop": "trio"}, environ={})


def test_asyncio_never_uses_uvloop_and_auto_uses_it_when_installed():
    assert wants_uvloop("asyncio") is False
    try:
        import uvloop  # noqa: F401
    except ImportError:
        assert wants_uvloop("auto") is False
        with pytest.raises(ConfigError, match="--event-loop uvloop"):
            wants_uvloop("uvloop")
    else:
        assert wants_uvloop("auto") is True
        assert wants_uvloop("uvloop") is True


async def test_a_served_app_logs_no_error_for_a_connection_cancelled_at_shutdown(tmp_path, caplog):
    config = build_config({"database_url": f"sqlite:///{tmp_path / 'logs.db'}"}, environ={})
    loop = asyncio.get_running_loop()
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        async with serving_app(config).test_app():
            loop.call_exception_handler(
                {"message": "Exception in callback", "exception": asyncio.CancelledError()}
            )
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
            # Anything else is still reported, as asyncio would.
            loop.call_exception_handler({"message": "boom", "exception": RuntimeError("x")})
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["boom"]
