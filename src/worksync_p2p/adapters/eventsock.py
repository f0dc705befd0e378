"""The local event bus: item changes as JSON lines on a Unix socket.

The socket lives in ``.worksync/`` (mode 0700), so only the workspace's owner
can subscribe. An event is written to each socket subscriber as it is
published, before the change is committed to the store: the file (or the
peer's update) it describes is already where it will stay, and a crash before
the commit is repaired from the file at the next start. A subscriber that
stops reading is dropped once ``MAX_BEHIND_BYTES`` wait for it, rather than
allowed to grow the daemon's memory or stall others. In-process subscribers
(``subscribe``) get a bounded queue instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SOCKET_NAME = "events.sock"
CONTROL_NAME = "control.sock"
MAX_REQUEST_BYTES = 64 * 1024
QUEUE_MAX = 1024
MAX_BEHIND_BYTES = 1024 * 1024
UNIX_PATH_MAX = 107
RECV_BYTES = 4096
CLOSE_WAIT_S = 1.0  # sun_path is 108 bytes with its NUL


Command = Callable[[dict[str, Any]], dict[str, Any]]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[bytes | None]] = set()
        self._writers: dict[asyncio.StreamWriter, asyncio.Event] = {}
        self.command: Command | None = None
        """Answers control requests (``revoke``, ``peers``) from the local CLI."""

    def publish(self, event: dict[str, Any]) -> None:
        line = (json.dumps(event, ensure_ascii=False) + "\n").encode()
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(line)
            except asyncio.QueueFull:
                log.warning("an event subscriber fell %d events behind; dropped it", QUEUE_MAX)
                self._subscribers.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)
        for writer in list(self._writers):
            self._write(writer, line)

    def _write(self, writer: asyncio.StreamWriter, line: bytes) -> None:
        if writer.is_closing():
            self.detach(writer)  # the subscriber went away
            return
        writer.write(line)  # sent at once while the socket has room
        if writer.transport.get_write_buffer_size() > MAX_BEHIND_BYTES:
            log.warning("an event subscriber fell %d bytes behind; dropped it", MAX_BEHIND_BYTES)
            self.detach(writer)

    def attach(self, writer: asyncio.StreamWriter) -> asyncio.Event:
        """Write each event to ``writer``; the returned event is set once it is dropped."""
        gone = asyncio.Event()
        self._writers[writer] = gone
        return gone

    def detach(self, writer: asyncio.StreamWriter) -> None:
        gone = self._writers.pop(writer, None)
        if gone is not None:
            gone.set()

    def close(self) -> None:
        """End every subscription (the daemon is stopping)."""
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._subscribers.clear()
        for writer in list(self._writers):
            self.detach(writer)

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_MAX)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes | None]) -> None:
        self._subscribers.discard(queue)


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME


def control_path(state_dir: Path) -> Path:
    return state_dir / CONTROL_NAME


@contextlib.asynccontextmanager
async def serve_events(state_dir: Path, bus: EventBus) -> AsyncIterator[Path | None]:
    """Serve the bus (and the control socket) until the block exits.

    Yields the event socket's path, None when the folder's path is too long for
    a Unix socket.
    """
    path, control = socket_path(state_dir), control_path(state_dir)
    if len(os.fsencode(control)) > UNIX_PATH_MAX:
        log.warning("%s: path too long for a Unix socket; `events` is unavailable", path)
        yield None
        return
    _remove(path, control)  # left by a daemon that died; the daemon lock says we own it now
    handlers: set[asyncio.Task[None]] = set()

    def tracked(
        serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            try:
                await serve(reader, writer)
            finally:
                handlers.discard(task)

        return handle

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _stream(bus, reader, writer)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _answer(bus, reader, writer)

    servers = [
        await asyncio.start_unix_server(tracked(stream), path=str(path)),
        await asyncio.start_unix_server(
            tracked(answer), path=str(control), limit=MAX_REQUEST_BYTES
        ),
    ]
    try:
        yield path
    finally:
        for server in servers:
            server.close()
        bus.close()
        # Let subscribers see the end of the stream instead of a cancelled task.
        if handlers:
            await asyncio.wait(set(handlers), timeout=CLOSE_WAIT_S)
        for server in servers:
            await server.wait_closed()
        _remove(path, control)


def _remove(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def _answer(
    bus: EventBus, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One request line in, one reply line out."""
    try:
        line = await asyncio.wait_for(reader.readline(), CLOSE_WAIT_S * 5)
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or bus.command is None:
                raise ValueError("not a request")
            reply = bus.command(request)
        except ValueError as error:
            reply = {"error": f"bad request: {error}"}
        writer.write((json.dumps(reply) + "\n").encode())
        await writer.drain()
    except (ConnectionError, TimeoutError, asyncio.LimitOverrunError):
        pass  # the client went away or sent too much
    finally:
        writer.close()


async def request(state_dir: Path, message: dict[str, Any]) -> dict[str, Any]:
    """Send one control request to the running daemon; raises OSError when none runs."""
    reader, writer = await asyncio.open_unix_connection(str(control_path(state_dir)))
    try:
        writer.write((json.dumps(message) + "\n").encode())
        await writer.drain()
        reply = json.loads(await asyncio.wait_for(reader.readline(), CLOSE_WAIT_S * 5))
    finally:
        writer.close()
    if not isinstance(reply, dict):
        raise ConnectionError("the daemon sent a malformed reply")
    return reply


async def _stream(
    bus: EventBus, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        writer.write(b'{"event": "subscribed"}\n')
        await writer.drain()
        gone = asyncio.ensure_future(bus.attach(writer).wait())
        left = asyncio.ensure_future(_until_eof(reader))
        try:
            await asyncio.wait({gone, left}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            left.cancel()
    except ConnectionError:
        pass  # the subscriber went away
    finally:
        bus.detach(writer)
        writer.close()


async def _until_eof(reader: asyncio.StreamReader) -> None:
    """Returns when the subscriber closes its end (it has nothing to say)."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(RECV_BYTES):
            pass


async def follow(state_dir: Path) -> AsyncIterator[bytes]:
    """Yield event lines from a running daemon (used by ``worksync-p2p events``)."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path(state_dir)))
    try:
        while line := await reader.readline():
            yield line
    finally:
        writer.close()
