"""The Stats_usage WebSocket: ``ws://host/`` and ``ws://host/ws`` (and ``--stats-port``).

Browser apps open a socket, send ``{"type": "ping"}`` and then one JSON action per text
frame; every frame gets one reply frame, in order. What a frame means, what it stores and
what it answers is `bot_logging_server.stats_actions`; this module is the transport.

Who writes: the ingest key in ``?key=``; without one, the user named by
``--keyless-events-user`` when it is set. Otherwise (or for a key that is unknown or
disabled) the socket is accepted, gets one error reply (``{"result": "error", "message":
"An ingest key is required: connect with ?key=<ingest key>"}`` or ``"Unknown or disabled
ingest key"``) and is closed with code 1008 (policy violation) and the same reason: a
browser never sees why a refused handshake failed, a closed socket's reply it does. A key
disabled while its sockets are open stops them within ``--auth-cache-seconds``: the next
frames are answered that error, and the socket is closed with 1008.

Durability: a reply ``Success`` is sent only once the frame's event is committed. A
connection's frames go into its inbox as they arrive; one writer per connection takes
everything waiting (up to `MAX_BATCH` frames) and stores it with one `record_events` call,
which shares its transaction with the other connections' writers (group commit); then it
sends the replies, in order. So a burst of clicks is a few transactions, not one per frame,
and a reply costs about one commit.

Limits: a frame holds at most `MAX_FRAME_BYTES` (the HTTP server closes the socket with 1009
past it: ``bot_logging_server.server`` sets it). At most `MAX_INBOX` frames or
`MAX_INBOX_BYTES` wait in an inbox: a client that sends faster than its frames are stored for
that long stops being read, gets the replies of what was read, and is closed with 1013 (try
again later). (The framework buffers every frame it receives without a bound, so a socket
that is not read does not push back on its client: closing it is what bounds the memory.)

Closing: when the socket closes (or the client goes away), the frames already received are
still stored, the scenario is stored (``ended: "close"``) and the session is stopped. When
the server stops (SIGTERM), `close_sockets` stops reading every socket; each writer answers
what it has received, stores the scenario, and closes its socket with 1001 (going away).
`bot_logging_server.server` calls it (hypercorn's shutdown trigger, uvicorn's shutdown) in a
single process; worker processes' servers close their sockets themselves, and the app's own
shutdown (`drain_sockets`, before the storage closes) still stores what they received.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from quart import Blueprint, Quart, current_app, websocket

from bot_logging_server.events import (
    Owner,
    ValidationFailed,
    record_events,
    start_session,
    stop_session,
)
from bot_logging_server.ingest_auth import find_ingest_key, keyless_user
from bot_logging_server.schemas.values import clean_text
from bot_logging_server.stats_actions import (
    PROBLEM,
    SOURCE,
    Client,
    ConnectionState,
    Outcome,
    handle,
    reply,
)
from bot_logging_server.storage import Event, IngestKey, StorageError

__all__ = [
    "GOING_AWAY",
    "MAX_BATCH",
    "MAX_FRAME_BYTES",
    "MAX_INBOX",
    "MAX_INBOX_BYTES",
    "NO_KEY",
    "POLICY_VIOLATION",
    "TRY_AGAIN_LATER",
    "UNKNOWN_KEY",
    "bp",
    "close_sockets",
    "drain_sockets",
    "stats_socket",
]

log = logging.getLogger(__name__)
bp = Blueprint("stats_ws", __name__)

#: Close code of a socket refused for its key.
POLICY_VIOLATION = 1008
#: Close code of the sockets the stopping server closes.
GOING_AWAY = 1001
#: Close code of a socket whose client sends faster than its frames are stored.
TRY_AGAIN_LATER = 1013
#: Frames one writer stores in one call.
MAX_BATCH = 500
#: Frames, and bytes, that may wait in a connection's inbox (then it is closed with 1013).
MAX_INBOX = 5000
MAX_INBOX_BYTES = 4 * 1024 * 1024  # counted in characters for text frames
#: The largest frame (an event's data holds at most 262144 characters).
MAX_FRAME_BYTES = 1024 * 1024
#: The refusals' texts (reply message and close reason).
NO_KEY = "An ingest key is required: connect with ?key=<ingest key>"
UNKNOWN_KEY = "Unknown or disabled ingest key"
#: Seconds the stopping app waits for its sockets to finish.
_DRAIN_SECONDS = 10.0
_EXTENSION = "bot_logging_server.stats_ws"


@dataclass
class _Sockets:
    """One app's open sockets (their writers) and the signal that the app is stopping."""

    writers: set[asyncio.Task[None]] = field(default_factory=set)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def _sockets(app: Quart | None = None) -> _Sockets:
    """The sockets of `app` (default: the current app)."""
    app = app or current_app
    sockets = app.extensions.get(_EXTENSION)
    if sockets is None:
        sockets = app.extensions[_EXTENSION] = _Sockets()
    return sockets


def close_sockets(app: Quart) -> None:
    """Start closing every socket of `app` (call it when shutdown begins): each stops
    reading, answers and stores what it received, and closes with 1001."""
    _sockets(app).stopping.set()


async def drain_sockets(app: Quart, timeout: float = _DRAIN_SECONDS) -> None:
    """`close_sockets`, then wait (up to `timeout` seconds) until every socket is done."""
    sockets = _sockets(app)
    sockets.stopping.set()
    if sockets.writers:
        await asyncio.wait(set(sockets.writers), timeout=timeout)


@bp.while_app_serving
async def _drain_before_storage_closes() -> AsyncIterator[None]:
    """A fresh registry while the app serves; when it stops, a safety net for servers that
    never call `close_sockets` (worker processes): the app's own shutdown waits for the
    sockets before storage closes."""
    current_app.extensions[_EXTENSION] = _Sockets()
    yield
    await drain_sockets(current_app)


def _client() -> Client:
    """The socket's client: ``X-Real-IP`` (set by a proxy) or the peer; the user agent."""
    ip = websocket.headers.get("X-Real-IP", "").strip() or websocket.remote_addr or None
    agent = websocket.headers.get("User-Agent")
    return Client(ip, None if agent is None else clean_text(agent))


async def _owner(key: str | None) -> Owner | str:
    """Who the socket writes for, or the refusal's text."""
    if key:
        found = await find_ingest_key(key)
        return found if found is not None and found.active else UNKNOWN_KEY
    user = await keyless_user()
    return user if user is not None else NO_KEY


class _Connection:
    """One socket: its inbox, its state, and the writer that stores and answers."""

    def __init__(self, owner: Owner, key: str | None, client: Client) -> None:
        self.owner = owner
        self.key = key
        self.client = client
        self.state = ConnectionState()
        self.inbox: list[str | bytes] = []
        self.arrived = asyncio.Event()
        self.waiting_bytes = 0
        self.reading = True
        self.overflowed = False
        self.refused = False
        self.answered = 0  # replies sent so far
        self.gone = False  # the client can no longer be sent anything

    async def read(self) -> None:
        """Move frames into the inbox until the socket closes (this task is then cancelled)
        or the inbox overflows (this task returns)."""
        while True:
            frame = await websocket.receive()
            self.inbox.append(frame)
            self.waiting_bytes += len(frame)
            self.arrived.set()
            if len(self.inbox) > MAX_INBOX or self.waiting_bytes > MAX_INBOX_BYTES:
                self.overflowed = True
                return

    def end_of_input(self) -> None:
        """No frame will arrive any more: the writer finishes what is there and ends."""
        self.reading = False
        self.arrived.set()

    async def write(self, stopping: asyncio.Event) -> None:
        """Answer the inbox in batches until the input ends; then close the connection."""
        try:
            while not self.refused:
                if not self.inbox:
                    if not self.reading:
                        break
                    self.arrived.clear()
                    await self.arrived.wait()
                    continue
                frames = self.inbox[:MAX_BATCH]
                del self.inbox[:MAX_BATCH]
                self.waiting_bytes -= sum(len(frame) for frame in frames)
                answered = self.answered
                try:
                    await self._answer(frames)
                except Exception:  # a bug: logged, and every frame still gets its reply
                    log.exception("stats socket: frames not handled")
                    await self._send([PROBLEM] * (len(frames) - (self.answered - answered)))
            if not self.refused:
                await self._close_session("close")
        finally:
            if self.refused:
                await self._close(POLICY_VIOLATION, UNKNOWN_KEY)
            elif self.overflowed:
                await self._close(TRY_AGAIN_LATER, "too many frames waiting")
            elif stopping.is_set():
                await self._close(GOING_AWAY, "server stopping")

    async def _current_owner(self) -> Owner | None:
        """The owner, its key read again (cached for ``--auth-cache-seconds``): None once
        the key was disabled or removed."""
        if not isinstance(self.owner, IngestKey):
            return self.owner
        try:
            found = await find_ingest_key(self.key)
        except StorageError:  # the database is away: the key was valid, writing will tell
            return self.owner
        return found if found is not None and found.active else None

    async def _answer(self, frames: list[str | bytes]) -> None:
        """Handle `frames` in order; store each run of events with one call, then reply."""
        owner = await self._current_owner()
        if owner is None:
            self.refused = True
            await self._send([reply(False, UNKNOWN_KEY)] * len(frames))
            return
        self.owner = owner
        before = self.state.copy()
        run: list[Outcome] = []
        for frame in frames:
            previous = self.state.copy()
            outcome = handle(frame, self.state, self.client)
            if outcome.session is None:
                run.append(outcome)
                continue
            # A new session: what came before is stored first, then the session opened.
            await self._commit(run, before)
            run = []
            await self._open(outcome, previous)
            before = self.state.copy()
        await self._commit(run, before)

    async def _store(self, events: list[Event]) -> bool:
        """Store `events` (True), or log why they could not be (False)."""
        if not events:
            return True
        try:
            await record_events(self.owner, events)
        except (StorageError, ValidationFailed) as exc:
            log.warning("stats socket: %d events not stored: %s", len(events), exc)
            return False
        return True

    async def _commit(self, run: list[Outcome], before: ConnectionState) -> None:
        """Store the events of `run` in one call; reply to each frame (after the commit)."""
        if not run:
            return
        if await self._store([event for outcome in run for event in outcome.events]):
            await self._send([outcome.reply for outcome in run])
            return
        self.state = before  # nothing of the run was stored: as if it never came
        await self._send([PROBLEM if outcome.writes else outcome.reply for outcome in run])

    async def _open(self, outcome: Outcome, previous: ConnectionState) -> None:
        """Store the previous session's scenario, stop it, open the new one; then reply.
        `previous` is the state before the frame (kept when nothing could be stored)."""
        assert outcome.session is not None
        if not await self._store(list(outcome.events)):
            self.state = previous
            await self._send([PROBLEM])
            return
        if outcome.ends is not None:
            await self._stop(outcome.ends)
        try:
            await start_session(
                self.owner,
                SOURCE,
                key=outcome.session.key,
                attributes=outcome.session.attributes,
                ip=self.client.ip,
                user_agent=self.client.user_agent,
            )
        except (StorageError, ValidationFailed) as exc:
            log.warning("stats socket: session not opened: %s", exc)
            self.state.session = None
            await self._send([PROBLEM])
            return
        await self._send([outcome.reply])

    async def _stop(self, key: str) -> None:
        try:
            await stop_session(SOURCE, key, owner=self.owner)
        except StorageError as exc:
            log.warning("stats socket: session not stopped: %s", exc)

    async def _close_session(self, ended: str) -> None:
        """Store the scenario and stop the session: the socket is closing."""
        await self._store(self.state.end_scenario(ended, self.client))
        if self.state.session is not None:
            await self._stop(self.state.session)

    async def _send(self, replies: list[str]) -> None:
        """Send `replies` in order; a client that went away gets nothing more."""
        for text in replies:
            if self.gone:
                return
            try:
                await websocket.send(text)
            except Exception:  # the client went away: nothing more to send it
                self.gone = True
            self.answered += 1

    async def _close(self, code: int, reason: str) -> None:
        if self.gone:
            return
        self.gone = True
        with contextlib.suppress(Exception):
            await websocket.close(code, reason)


@bp.websocket("/")
@bp.websocket("/ws")
async def stats_socket() -> None:
    """One Stats_usage connection: refuse it (1008) or read it until it closes."""
    sockets = _sockets()
    key = websocket.args.get("key")
    owner = await _owner(key)
    await websocket.accept()
    if isinstance(owner, str):
        await websocket.send(reply(False, owner))
        await websocket.close(POLICY_VIOLATION, owner)
        return
    if sockets.stopping.is_set():
        await websocket.close(GOING_AWAY, "server stopping")
        return
    connection = _Connection(owner, key, _client())
    writer = asyncio.ensure_future(connection.write(sockets.stopping))
    sockets.writers.add(writer)
    writer.add_done_callback(sockets.writers.discard)
    reader = asyncio.ensure_future(connection.read())
    stopping = asyncio.ensure_future(sockets.stopping.wait())
    try:
        # Ends when the inbox overflows (the reader returns), the writer refuses the key, or
        # the server stops; the client going away cancels this task instead.
        await asyncio.wait({reader, writer, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reader, stopping):
            task.cancel()
        connection.end_of_input()
        # Shielded: a second cancellation must not stop the writer storing what it has.
        await asyncio.shield(writer)
        if reader.done() and not reader.cancelled() and reader.exception() is not None:
            log.error("stats socket: reading failed", exc_info=reader.exception())
