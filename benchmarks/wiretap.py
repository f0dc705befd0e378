"""A recording TCP proxy on loopback: counts the bytes a peer connection carries.

It runs its own asyncio loop on a thread. The dialling peer connects to the
proxy, which opens a connection to the target port and forwards both ways,
recording every chunk it forwards (perf_counter, direction, size). Frames are
encrypted, so only sizes are seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

LOOPBACK = "127.0.0.1"
RECV_BYTES = 65536
CALL_TIMEOUT_S = 10.0

T = TypeVar("T")


@dataclass(frozen=True)
class Chunk:
    at: float
    upstream: bool
    """True from the dialling peer to the target."""
    size: int


class Proxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._lock = threading.Lock()
        self._chunks: list[Chunk] = []
        self._accepted: list[float] = []
        self._server: asyncio.Server | None = None

    def start(self) -> int:
        self._thread.start()
        self.port = self._call(self._listen())
        return self.port

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(CALL_TIMEOUT_S)
        self._loop.close()

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._accepted.clear()

    def chunks(self) -> list[Chunk]:
        with self._lock:
            return list(self._chunks)

    def accepted(self) -> list[float]:
        """perf_counter of each connection accepted since the last clear()."""
        with self._lock:
            return list(self._accepted)

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(CALL_TIMEOUT_S)

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._on_client, LOOPBACK, 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self._accepted.append(time.perf_counter())
        try:
            target_reader, target_writer = await asyncio.open_connection(LOOPBACK, self.target_port)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(
                self._pipe(reader, target_writer, upstream=True),
                self._pipe(target_reader, writer, upstream=False),
            )
        finally:
            writer.close()
            target_writer.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(RECV_BYTES):
                with self._lock:
                    self._chunks.append(Chunk(time.perf_counter(), upstream, len(data)))
                writer.write(data)
                await writer.drain()
        writer.close()  # one side ended: end the other, so its pipe ends too


@contextmanager
def recording(target_port: int) -> Iterator[Proxy]:
    proxy = Proxy(target_port)
    try:
        proxy.start()
        yield proxy
    finally:
        proxy.close()
