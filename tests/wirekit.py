"""Wire-level tools for hostile-peer tests, on real loopback sockets.

- :class:`RawPeer`: a WebSocket client that speaks the peer protocol by hand.
  It can run the real handshake (``handshake.Initiator``) with any identity
  and secret and then send arbitrary bytes, text or sealed frames.
- :func:`forged_msg3`: the msg3 a peer holding the *wrong* secret would send
  if it ignored that msg2 did not open (a hostile dialler does exactly that).
- :class:`TcpTap`: a byte-for-byte TCP forwarder that records every byte in
  both directions (HTTP upgrade, WebSocket framing, everything).
- :class:`WsProxy`: a WebSocket-message-level proxy that records every
  message payload (unmasked and, if the link negotiated it, decompressed:
  exactly what an eavesdropper recovers without any key) and can drop,
  duplicate, reorder or alter messages.

Nothing here sleeps to wait for something; every wait has a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from aiohttp import web

from worksync_p2p.adapters import peering
from worksync_p2p.core import frames, handshake
from worksync_p2p.identity import Identity

LOOPBACK = "127.0.0.1"
WAIT_S = 10.0
MAX_DRAIN = 10_000
"""Bound on messages read while waiting for a connection to close."""

Direction = Literal["to_server", "to_client"]


def url(port: int, host: str = LOOPBACK) -> str:
    return f"http://{host}:{port}{peering.PATH}"


# -- a hand-driven peer -----------------------------------------------------------


class RawPeer:
    """One WebSocket connection to a node, driven message by message."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.session: frames.Session | None = None
        self.received: list[aiohttp.WSMessage] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, port: int, *, compress: int = 0) -> AsyncIterator[RawPeer]:
        async with (
            aiohttp.ClientSession() as client,
            client.ws_connect(
                url(port),
                max_msg_size=peering.MAX_MESSAGE_BYTES,
                compress=compress,
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            ) as ws,
        ):
            yield cls(ws)

    async def send(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def send_text(self, text: str) -> None:
        await self.ws.send_str(text)

    async def recv(self, timeout: float = WAIT_S) -> aiohttp.WSMessage:
        message = await asyncio.wait_for(self.ws.receive(), timeout)
        self.received.append(message)
        return message

    async def recv_bytes(self, timeout: float = WAIT_S) -> bytes:
        message = await self.recv(timeout)
        assert message.type is aiohttp.WSMsgType.BINARY, f"expected binary, got {message}"
        assert isinstance(message.data, bytes)
        return message.data

    async def handshake(
        self, identity: Identity, secret: bytes, *, ephemeral: bytes | None = None
    ) -> frames.Session:
        """Run the real initiator handshake; returns the session (raises HandshakeError)."""
        eph = ephemeral or os.urandom(handshake.EPHEMERAL_BYTES)
        initiator = handshake.Initiator(identity, secret, lambda _n: eph, lambda _peer: True)
        await self.send(initiator.start())
        for reply in initiator.receive(await self.recv_bytes()):
            await self.send(reply)
        assert initiator.session is not None
        self.session = initiator.session
        return initiator.session

    def seal(self, plaintext: bytes) -> bytes:
        assert self.session is not None, "no session: handshake first"
        return self.session.seal(plaintext)

    async def open_next(self, timeout: float = WAIT_S) -> bytes:
        """The plaintext of the node's next frame."""
        assert self.session is not None, "no session: handshake first"
        return self.session.open(await self.recv_bytes(timeout))

    async def closed_by_peer(self, timeout: float = WAIT_S) -> int | None:
        """Read (and keep) messages until the node closes; the close code."""
        async with asyncio.timeout(timeout):
            for _ in range(MAX_DRAIN):
                try:
                    message = await self.ws.receive()
                except (ConnectionError, aiohttp.ClientError):
                    return self.ws.close_code
                self.received.append(message)
                if message.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR,
                ):
                    return self.ws.close_code
        raise AssertionError(f"the node sent {MAX_DRAIN} messages without closing")


def forged_msg3(
    identity: Identity, secret: bytes, ephemeral: bytes, msg1: bytes, msg2: bytes
) -> bytes:
    """msg3 built with ``secret`` without checking msg2, as a hostile initiator would."""
    h1 = handshake._mix_hash(handshake._initial_hash(), msg1)
    e_r, c2 = msg2[: handshake.EPHEMERAL_BYTES], msg2[handshake.EPHEMERAL_BYTES :]
    dh = handshake._dh(ephemeral, e_r)
    h2 = handshake._mix_hash(handshake._mix_hash(h1, e_r), c2)
    k3 = handshake._derive_key(secret, dh, h2, b"wsy1-msg3")
    return handshake._seal_identity(k3, identity, handshake._INITIATOR_SIGNS + h2)


# -- a raw TCP recorder -------------------------------------------------------------


@dataclass
class TcpTap:
    """Forward 127.0.0.1:<port> to a target, recording every byte both ways."""

    target_port: int
    target_host: str = LOOPBACK
    to_server: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)
    connections: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, LOOPBACK, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.close()
            return
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer, self.to_server)),
            asyncio.ensure_future(self._pump(up_reader, writer, self.to_client)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(ConnectionError):
                    await w.wait_closed()

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bytearray
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                record += chunk
                writer.write(chunk)
                await writer.drain()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, target_port: int) -> AsyncIterator[TcpTap]:
        tap = cls(target_port)
        await tap.start()
        try:
            yield tap
        finally:
            await tap.close()


# -- a WebSocket-message proxy --------------------------------------------------------


@dataclass(frozen=True)
class Captured:
    connection: int
    direction: Direction
    index: int
    """Position of the message in its direction on its connection (0 = msg1 / msg2)."""
    kind: aiohttp.WSMsgType
    data: bytes


Tamper = Callable[[int, Direction, int, bytes], list[bytes]]
"""``(connection, direction, index, payload) -> payloads to forward`` ([] drops it)."""


def forward(_connection: int, _direction: Direction, _index: int, data: bytes) -> list[bytes]:
    return [data]


class WsProxy:
    """Accept peers on 127.0.0.1 and relay each of their WebSocket messages to a node."""

    def __init__(self, target_port: int, tamper: Tamper = forward) -> None:
        self.target_port = target_port
        self.tamper = tamper
        self.captured: list[Captured] = []
        self.connections = 0
        self.ended = 0
        """Relayed connections that have finished (either side closed)."""
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get(peering.PATH, self._accept)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, target_port: int, tamper: Tamper = forward) -> AsyncIterator[WsProxy]:
        proxy = cls(target_port, tamper)
        await proxy.start()
        try:
            yield proxy
        finally:
            await proxy.close()

    def payloads(self, direction: Direction | None = None) -> list[bytes]:
        return [c.data for c in self.captured if direction in (None, c.direction)]

    async def _accept(self, request: web.Request) -> web.WebSocketResponse:
        downstream = web.WebSocketResponse(max_msg_size=0, heartbeat=None)
        await downstream.prepare(request)
        self.connections += 1
        number = self.connections
        try:
            async with (
                aiohttp.ClientSession() as client,
                client.ws_connect(
                    url(self.target_port),
                    max_msg_size=0,
                    timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                ) as upstream,
            ):
                pumps = [
                    asyncio.ensure_future(self._pump(number, "to_server", downstream, upstream)),
                    asyncio.ensure_future(self._pump(number, "to_client", upstream, downstream)),
                ]
                try:
                    await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in pumps:
                        task.cancel()
                    await asyncio.gather(*pumps, return_exceptions=True)
                    await upstream.close()
        except (aiohttp.ClientError, OSError):
            pass
        finally:
            await downstream.close()
            self.ended += 1
        return downstream

    async def _pump(
        self,
        number: int,
        direction: Direction,
        source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    ) -> None:
        index = 0
        async for message in source:
            if message.type is aiohttp.WSMsgType.BINARY:
                data = bytes(message.data)
            elif message.type is aiohttp.WSMsgType.TEXT:
                data = str(message.data).encode()
            else:
                return
            self.captured.append(Captured(number, direction, index, message.type, data))
            for out in self.tamper(number, direction, index, data):
                if message.type is aiohttp.WSMsgType.TEXT:
                    await sink.send_str(out.decode())
                else:
                    await sink.send_bytes(out)
            index += 1


def contains_any(haystacks: list[bytes], needles: list[bytes]) -> list[bytes]:
    """The needles found in any haystack, or across the joined stream of them."""
    joined = b"".join(haystacks)
    return [n for n in needles if n in joined or any(n in h for h in haystacks)]
