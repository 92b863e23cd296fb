"""A TCP proxy in front of MariaDB that a test can cut and restore: a database outage on demand.

`TCPProxy` listens on a free local port and forwards every connection to the target. `cut()`
closes every forwarded connection (the server's pool sees "lost connection") and stops
listening (new connections are refused), as a database restart or a network failure would;
`restore()` listens again on the same port. `freeze()` is the nastier outage: connections are
accepted and kept open but nothing is forwarded any more (a partition, a hung server), so only
timeouts can save the client; `thaw()` drops those connections and forwards again.
`ThreadedProxy` runs a `TCPProxy` on an event loop of its own, for tests that have none.

In front of the HTTP server instead, `drop_answers(n)` makes the next `n` connections lose
their answer: the request goes through, and when the first byte of the answer comes back the
client's connection is reset instead. The server answers only after its commit, so this is
the connection lost between COMMIT and the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class TCPProxy:
    """Forward 127.0.0.1:`port` to `target_host`:`target_port` until cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        #: Answers dropped so far (`drop_answers`).
        self.dropped_answers = 0
        self._drop_next = 0
        self._thawed = asyncio.Event()
        self._thawed.set()

    async def start(self) -> TCPProxy:
        """Listen (on a free port the first time, then on the same port)."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._handle, sock=sock)
        return self

    def drop_answers(self, connections: int = 1) -> None:
        """Reset the next `connections` connections when their answer starts to come back."""
        self._drop_next = connections

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        drop = self._drop_next > 0
        if drop:
            self._drop_next -= 1
        self._writers.add(writer)
        await self._thawed.wait()
        if writer.transport.is_closing():
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer)),
            asyncio.ensure_future(
                self._drop(up_reader, writer) if drop else self._pump(up_reader, writer)
            ),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
                self._tasks.discard(task)
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if not self._thawed.is_set():
                    continue  # frozen: swallow everything
                writer.write(data)
                await writer.drain()

    async def _drop(self, up_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Wait for the answer's first byte, then reset the client's connection."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            if await up_reader.read(1):
                self.dropped_answers += 1
            writer.transport.abort()

    async def freeze(self) -> None:
        """Keep accepting and holding connections, but forward nothing."""
        self._thawed.clear()
        await asyncio.sleep(0)

    async def thaw(self) -> None:
        """Drop every connection that lived through the freeze and forward again."""
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        self._thawed.set()
        await asyncio.sleep(0)

    async def cut(self) -> None:
        """Refuse new connections and close every open one (both sides)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for w in list(self._writers):
            # abort: no graceful FIN handshake, like a database process that died.
            w.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()
        await asyncio.sleep(0)

    async def restore(self) -> None:
        """Accept connections again, on the same port."""
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        """Cut and forget everything."""
        self._thawed.set()
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


class ThreadedProxy:
    """A `TCPProxy` on its own event loop in a thread, for tests without an event loop."""

    def __init__(self, host: str, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = self._run(TCPProxy(host, port).start())

    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        return self.proxy.port

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(15)

    def cut(self) -> None:
        """`TCPProxy.cut`."""
        self._run(self.proxy.cut())

    def restore(self) -> None:
        """`TCPProxy.restore`."""
        self._run(self.proxy.restore())

    def close(self) -> None:
        """Close the proxy, stop its loop and thread."""
        self._run(self.proxy.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
