"""A loopback TCP proxy for one directed pair of peers, that can cut or stall the link.

Peer A's ``--peer`` names the proxy's port; the proxy forwards each
connection to peer B's current address (B listens on a fresh port after
every restart, so the target is set by the runner). Three modes:

* ``pass``: bytes flow both ways;
* ``drop``: every open connection is aborted (RST) and new ones are accepted
  and aborted at once, as a cut cable or a firewall would;
* ``hold``: nothing is forwarded, either way, on old or new connections;
  up to ``HOLD_LIMIT`` bytes per direction wait in the proxy, then TCP's own
  backpressure stalls the sender. The sessions above notice by their
  heartbeat (a peer silent for 5 s is dead) unless the hold ends first.

``heal`` returns to ``pass`` and delivers what was held.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import deque

LOOPBACK = "127.0.0.1"
CHUNK = 65536
HOLD_LIMIT = 1 << 20
CONNECT_S = 2.0


class Mode(enum.Enum):
    PASS = "pass"
    DROP = "drop"
    HOLD = "hold"


class _Direction:
    """One direction of one connection: a reader fills ``buf``, a writer empties it."""

    def __init__(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        self.src = src
        self.dst = dst
        self.buf: deque[bytes] = deque()
        self.size = 0
        self.eof = False
        self.has_data = asyncio.Event()
        self.space = asyncio.Event()
        self.space.set()

    async def read_forever(self) -> None:
        while True:
            data = await self.src.read(CHUNK)
            if not data:
                self.eof = True
                self.has_data.set()
                return
            self.buf.append(data)
            self.size += len(data)
            self.has_data.set()
            if self.size >= HOLD_LIMIT:
                self.space.clear()
                await self.space.wait()

    async def write_forever(self, flowing: asyncio.Event) -> None:
        while True:
            await flowing.wait()
            await self.has_data.wait()
            if not flowing.is_set():
                continue  # held again between the two waits
            if self.buf:
                self.dst.write(b"".join(self.buf))
                self.buf.clear()
                self.size = 0
                self.space.set()
            if self.eof:
                return
            self.has_data.clear()
            await self.dst.drain()


class _Connection:
    def __init__(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.writers = (client[1], upstream[1])
        self.directions = (_Direction(client[0], upstream[1]), _Direction(upstream[0], client[1]))

    async def run(self, flowing: asyncio.Event) -> None:
        """Until either side ends (its end delivered), or the proxy aborts us."""
        tasks = [asyncio.ensure_future(d.read_forever()) for d in self.directions]
        tasks += [asyncio.ensure_future(d.write_forever(flowing)) for d in self.directions]
        writers = tasks[2:]
        try:
            await asyncio.wait(writers, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self.abort()
            raise
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.close()

    def abort(self) -> None:
        for writer in self.writers:
            writer.transport.abort()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


class LinkProxy:
    """``127.0.0.1:port`` forwarding to ``target``; see the module docstring for the modes."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.target: tuple[str, int] | None = None
        self.mode = Mode.PASS
        self.port = 0
        self.accepted = 0
        self.refused = 0
        self.aborted = 0
        self.held = 0
        """Connections open when a hold began."""
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, LOOPBACK, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._forward(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = self.target
        if self.mode is Mode.DROP or target is None:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            upstream = await asyncio.wait_for(asyncio.open_connection(*target), CONNECT_S)
        except (OSError, TimeoutError):
            self.refused += 1  # the peer is down: the dialler sees the connection end
            writer.transport.abort()
            return
        if self.dropping():  # cut while we were connecting
            upstream[1].transport.abort()
            writer.transport.abort()
            return
        self.accepted += 1
        connection = _Connection((reader, writer), upstream)
        self._connections.add(connection)
        try:
            await connection.run(self._flowing)
        except (ConnectionError, OSError):
            connection.abort()
        finally:
            self._connections.discard(connection)

    def dropping(self) -> bool:
        return self.mode is Mode.DROP

    def drop(self) -> None:
        self.mode = Mode.DROP
        self.aborted += len(self._connections)
        self._flowing.set()  # let held writers wake and find their sockets gone
        for connection in list(self._connections):
            connection.abort()

    def hold(self) -> None:
        self.mode = Mode.HOLD
        self.held += len(self._connections)
        self._flowing.clear()

    def heal(self) -> None:
        self.mode = Mode.PASS
        self._flowing.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=CONNECT_S)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), CONNECT_S)
