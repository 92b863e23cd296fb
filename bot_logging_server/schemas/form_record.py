"""The form-encoded log record of Python's ``logging.handlers.HTTPHandler``.

``HTTPHandler(host, "/send_logs", method="POST", credentials=(user, token))`` POSTs each
record as ``application/x-www-form-urlencoded``: every attribute of the `logging.LogRecord`
as text (``str()`` of its value). `load_form_record` turns those fields into the `LogRow`
to store:

==============  =====================================================================
``levelno``     ``level`` (a number; over 100 is stored as 100); ``levelname`` when absent
``msg``         ``msg``, formatted with ``args`` where they can be read back (below)
``exc_text``    appended after a newline when present (the traceback, once another
                handler's formatter has rendered it); else the exception's repr from
                ``exc_info``
``stack_info``  appended after a newline when present
``created``     ``event_at`` (seconds since the epoch); absent: the receive time
``processName`` ``p_name``; ``process`` ``pid`` (``None`` is 0); ``name`` ``p_description``
==============  =====================================================================

The arguments arrive as the text of their repr (``('A-17', 3)``). Each one that is a Python
literal (strings, numbers, ``None``, booleans, and tuples, lists, dicts and sets of them)
is read back as itself; any other (``datetime.date(2024, 1, 31)``) stands for its repr text.
Then ``msg % args`` is stored, as ``getMessage`` would; a record without arguments stores
``msg`` as it is. When the arguments cannot be read back at all, or the formatting fails
(``%d`` given text), ``msg (arguments ARGS)`` is stored instead: nothing is lost. The text
is only parsed, never run, and formatting with a width or precision over 1000 (or ``*``) is
not attempted.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from bot_logging_server.schemas.base import ValidationFailed
from bot_logging_server.schemas.ingest import log_row
from bot_logging_server.schemas.values import clean_text, cut_name, parse_level
from bot_logging_server.storage import LogRow

__all__ = ["FORM_MIMETYPE", "format_message", "load_form_record"]

#: The content type HTTPHandler sends.
FORM_MIMETYPE = "application/x-www-form-urlencoded"
#: Arguments text longer than this is not parsed (stored beside the message instead).
_MAX_ARGS_CHARS = 65_536
#: The widest field width or precision a message's format may ask for.
_MAX_WIDTH = 1000
_MAX_LEVEL = 100
_CONVERSION = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.DOTALL)
_EXC_INFO = re.compile(r"\(<class '[^']*'>, (.*), <traceback object at 0x[0-9a-f]+>\)", re.DOTALL)
_ABSENT = ("", "None")


class _Repr:
    """An argument that is not a literal: its repr text, as ``%s`` and ``%r`` print it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


def _literal(text: str, node: ast.expr) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _Repr(ast.get_source_segment(text, node) or "")


def _arguments(text: str) -> tuple[object, ...] | dict[object, object] | None:
    """The arguments whose repr is `text` (a tuple, or the dict of ``%(name)s``); None when
    the text is not a tuple or a dict display."""
    if len(text) > _MAX_ARGS_CHARS:
        return None
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    source = text.strip()
    if isinstance(tree, ast.Tuple):
        return tuple(_literal(source, node) for node in tree.elts)
    if isinstance(tree, ast.Dict) and all(key is not None for key in tree.keys):
        mapping: dict[object, object] = {}
        for key, value in zip(tree.keys, tree.values, strict=True):
            name = _literal(source, key)  # type: ignore[arg-type]
            if isinstance(name, _Repr):
                return None
            try:
                mapping[name] = _literal(source, value)
            except TypeError:  # an unhashable key
                return None
        return mapping
    return None


def _formattable(msg: str) -> bool:
    """Whether `msg`'s conversions ask for nothing huge (a width or precision)."""
    for width, precision, _kind in _CONVERSION.findall(msg):
        for size in (width, precision):
            if size == "*" or (size and int(size) > _MAX_WIDTH):
                return False
    return True


def format_message(msg: str, args: str) -> str:
    """``msg % args`` where `args` (the text of the arguments' repr) can be read back;
    `msg` alone when there were no arguments; else ``msg (arguments ARGS)``."""
    if args.strip() in ("", "()", "None", "{}", "[]"):
        return msg
    arguments = _arguments(args)
    if arguments is not None and _formattable(msg):
        try:
            return msg % arguments
        except (TypeError, ValueError, KeyError, OverflowError, MemoryError):
            pass
    return f"{msg} (arguments {args})"


def _seconds(value: str) -> datetime:
    try:
        seconds = float(value)
        return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):
        raise ValidationFailed("form.created: not a time in seconds since the epoch") from None


def _level(fields: Mapping[str, str]) -> int:
    number = fields.get("levelno", "").strip()
    if number:
        if number.isascii() and number.isdigit():
            digits = number.lstrip("0") or "0"
            return _MAX_LEVEL if len(digits) > 3 else min(int(digits), _MAX_LEVEL)
        raise ValidationFailed("form.levelno: not a level number")
    name = fields.get("levelname", "")
    try:
        return parse_level(name)
    except ValueError:
        raise ValidationFailed("form.levelno: missing (and no known levelname)") from None


def _pid(value: str) -> int:
    value = value.strip()
    if value in _ABSENT:
        return 0
    if value.isascii() and value.lstrip("-").isdigit() and len(value) <= 19:
        return int(value)
    raise ValidationFailed("form.process: not a process id")


def load_form_record(
    fields: Mapping[str, str], max_msg_chars: int, received_at: datetime
) -> LogRow:
    """The `LogRow` for one HTTPHandler record; `ValidationFailed` when `fields` is not one.

    A record needs ``msg`` and ``levelno`` (or a known ``levelname``); the other fields fall
    back to defaults (see the module's table).
    """
    if "msg" not in fields:
        raise ValidationFailed("form.msg: missing (not a logging record)")
    level = _level(fields)
    msg = format_message(fields["msg"], fields.get("args", ""))
    exc_text = fields.get("exc_text", "")
    if exc_text not in _ABSENT:
        msg += "\n" + exc_text
    else:
        exception = _EXC_INFO.fullmatch(fields.get("exc_info", ""))
        if exception is not None:
            msg += "\n" + exception.group(1)
    stack = fields.get("stack_info", "")
    if stack not in _ABSENT:
        msg += "\n" + stack
    created = fields.get("created", "")
    event_at = _seconds(created) if created else received_at
    if not datetime(1000, 1, 1) <= event_at:
        raise ValidationFailed("form.created: outside 1000-01-01 .. 9999-12-31")
    return log_row(
        _pid(fields.get("process", "")),
        cut_name(fields.get("processName", "")),
        cut_name(fields.get("name", "")),
        level,
        clean_text(msg),
        event_at,
        received_at,
        max_msg_chars,
    )
