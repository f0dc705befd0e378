"""The local event bus: item changes as JSON lines on a Unix socket.

The socket lives in ``.worksync/`` (mode 0700), so only the workspace's owner
can subscribe. Each subscriber has a bounded queue; one that stops reading is
dropped rather than allowed to grow the daemon's memory or stall others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SOCKET_NAME = "events.sock"
QUEUE_MAX = 1024
UNIX_PATH_MAX = 107
CLOSE_WAIT_S = 1.0  # sun_path is 108 bytes with its NUL


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[bytes | None]] = set()

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

    def close(self) -> None:
        """End every subscription (the daemon is stopping)."""
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._subscribers.clear()

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_MAX)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes | None]) -> None:
        self._subscribers.discard(queue)


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME


@contextlib.asynccontextmanager
async def serve_events(state_dir: Path, bus: EventBus) -> AsyncIterator[Path | None]:
    """Serve the bus until the block exits; yields the socket path (None if impossible)."""
    path = socket_path(state_dir)
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        log.warning("%s: path too long for a Unix socket; `events` is unavailable", path)
        yield None
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a daemon that died; the daemon lock says we own it now

    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await _stream(bus, writer)
        finally:
            handlers.discard(task)

    server = await asyncio.start_unix_server(handle, path=str(path))
    try:
        yield path
    finally:
        server.close()
        bus.close()
        # Let subscribers see the end of the stream instead of a cancelled task.
        if handlers:
            await asyncio.wait(set(handlers), timeout=CLOSE_WAIT_S)
        await server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def _stream(bus: EventBus, writer: asyncio.StreamWriter) -> None:
    queue = bus.subscribe()
    try:
        writer.write(b'{"event": "subscribed"}\n')
        await writer.drain()
        while (line := await queue.get()) is not None:
            writer.write(line)
            await writer.drain()
    except ConnectionError:
        pass  # the subscriber went away
    finally:
        bus.unsubscribe(queue)
        writer.close()


async def follow(state_dir: Path) -> AsyncIterator[bytes]:
    """Yield event lines from a running daemon (used by ``worksync-p2p events``)."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path(state_dir)))
    try:
        while line := await reader.readline():
            yield line
    finally:
        writer.close()
