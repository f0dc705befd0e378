"""Peers over aiohttp WebSockets: handshake, encrypted frames, the sync protocol.

One WebSocket per pair of peers carries every item. Each binary WebSocket
message is one handshake message, then one sealed frame. Anything wrong from
a peer (a failed handshake, a frame that does not open, a protocol error, an
update that does not decode, silence past the heartbeat limit) closes that
connection with one logged line naming the peer; the node and every other
connection carry on.

Two peers that dial each other at once end with one connection: the
connection dialled by the peer with the smaller peer id is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from worksync_p2p.adapters.aiohttp_notls import aiohttp, web
from worksync_p2p.core import frames, handshake
from worksync_p2p.core import syncproto as sp
from worksync_p2p.identity import Identity

log = logging.getLogger(__name__)

PATH = "/worksync"
HANDSHAKE_TIMEOUT_S = 5.0
MAX_MESSAGE_BYTES = frames.MAX_FRAME_BYTES + 1024
RECONNECT_MIN_S = 0.2
RECONNECT_MAX_S = 10.0
OUTBOX_MAX = 100_000
APPLY_CHUNK = 256
"""Messages handled between two turns of the event loop, their updates applied
as one batch. A first sync brings thousands at once; handling them all in one
go would starve the heartbeat and the writer for seconds, and the peer would
declare us dead (it did, before this limit). A batch waits for three rounds
of fsyncs whatever its size; 256 (a quarter to half a second of work) waits
for them a quarter as often as 64 did."""
INBOX_MAX = 4096
REFILL_TURNS = 64
_UPDATE_KINDS = (bytes([sp.Kind.SYNC2]), bytes([sp.Kind.UPDATE]))


Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse
_Opened = tuple[aiohttp.WSMessage | None, bytes | frames.FrameError | None]
"""A message and its plaintext (None: not opened; an error: it did not open)."""
Handshake = handshake.Initiator | handshake.Responder


def now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class Replica(Protocol):
    """What peering needs from the node (``LocalNode`` provides it)."""

    @property
    def items(self) -> sp.RepoItems: ...

    def receive(self, key: str, update: bytes, origin: str) -> None: ...

    def receive_many(self, updates: Sequence[tuple[str, bytes]], origin: str) -> None: ...

    def prefetch(self, updates: Sequence[tuple[str, bytes]]) -> None: ...


@dataclass
class Link:
    peer_id: str
    address: str
    initiator_id: str
    ws: Socket
    session: frames.Session
    sync: sp.PeerSync
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    outbox: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(OUTBOX_MAX))
    ahead: deque[_Opened] = field(default_factory=deque)
    """Messages taken from the inbox and opened before their turn (``_look_ahead``)."""

    def send(self, messages: list[bytes]) -> None:
        """Queue messages; one writer seals and sends them, so frame counters stay in order."""
        for message in messages:
            try:
                self.outbox.put_nowait(message)
            except asyncio.QueueFull:
                raise ConnectionError(f"peer fell {OUTBOX_MAX} messages behind") from None

    async def write_forever(self) -> None:
        while True:
            message = await self.outbox.get()
            await self.ws.send_bytes(self.session.seal(message))


class Peering:
    def __init__(
        self,
        replica: Replica,
        identity: Identity,
        secret: bytes,
        is_allowed: Callable[[str], bool] = lambda _peer: True,
        on_change: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.replica = replica
        self.identity = identity
        self.secret = secret
        self.is_allowed = is_allowed
        self.on_change = on_change or (lambda _peer, _what, _address: None)
        self.links: dict[str, Link] = {}
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        # Every open WebSocket, handshakes included, so close() can end them all.
        self._sockets: set[Socket] = set()
        self._stopping = False
        # Static peers whose first dial has not had its first sync round yet, by address.
        self._first_rounds: dict[str, asyncio.Event] = {}

    # -- serving -----------------------------------------------------------

    async def listen(self, host: str, port: int) -> int:
        app = web.Application()
        app.router.add_get(PATH, self._accept)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses
        assert bound, "the listener has no address"
        self.port = int(bound[0][1])
        return self.port

    async def _accept(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, heartbeat=None)
        await ws.prepare(request)
        address = request.remote or "?"
        responder = handshake.Responder(self.identity, self.secret, os.urandom, self.is_allowed)
        await self._serve(ws, responder, address, initiator=False)
        return ws

    # -- dialling ----------------------------------------------------------

    def dial_forever(self, host: str, port: int) -> None:
        """Keep a connection to a static peer, reconnecting with jittered backoff."""
        self._first_rounds.setdefault(f"{host}:{port}", asyncio.Event())
        self._spawn(self._dial_loop(host, port))

    async def first_rounds(self, timeout_s: float) -> None:
        """Wait until each static peer's first dial has ended or had its first sync
        round (the peer's digest root answered), ``timeout_s`` at most.

        For an unchanged workspace that round is the whole exchange; a start-up
        that waits for it before other work reaches its peers sooner.
        """
        waits = [event.wait() for event in self._first_rounds.values()]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), timeout_s)

    def _first_round_done(self, address: str) -> None:
        event = self._first_rounds.pop(address, None)
        if event is not None:
            event.set()

    async def _dial_loop(self, host: str, port: int) -> None:
        delay = RECONNECT_MIN_S
        rng = random.Random()
        while not self._stopping:
            started = time.monotonic()
            duplicate = None
            try:
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    duplicate = await self.dial(host, port)
            finally:
                self._first_round_done(f"{host}:{port}")
            existing = self.links.get(duplicate) if duplicate is not None else None
            if existing is not None:
                # The peer is linked the other way round: redial only when that
                # ends, after the shortest backoff, so a link that ends as we
                # look (closed, not yet forgotten) cannot make us redial in a loop.
                await existing.closed.wait()
                delay = RECONNECT_MIN_S
            if time.monotonic() - started > RECONNECT_MAX_S:
                delay = RECONNECT_MIN_S  # it was up for a while: start over quickly
            await asyncio.sleep(delay * (0.5 + rng.random()))
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def dial(self, host: str, port: int) -> str | None:
        """One connection attempt; returns when that connection ends.

        Returns the peer id when the peer was already linked the other way.
        """
        async with (
            aiohttp.ClientSession() as client,
            client.ws_connect(
                f"http://{host}:{port}{PATH}",
                max_msg_size=MAX_MESSAGE_BYTES,
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            ) as ws,
        ):
            initiator = handshake.Initiator(self.identity, self.secret, os.urandom, self.is_allowed)
            await ws.send_bytes(initiator.start())
            return await self._serve(ws, initiator, f"{host}:{port}", initiator=True)

    # -- one connection ------------------------------------------------------

    async def _serve(
        self,
        ws: Socket,
        shake: Handshake,
        address: str,
        *,
        initiator: bool,
    ) -> str | None:
        self._sockets.add(ws)
        try:
            return await self._handshake_then_run(ws, shake, address, initiator)
        finally:
            self._sockets.discard(ws)

    async def _handshake_then_run(
        self,
        ws: Socket,
        shake: Handshake,
        address: str,
        initiator: bool,
    ) -> str | None:
        try:
            link = await asyncio.wait_for(
                self._handshake(ws, shake, address, initiator), HANDSHAKE_TIMEOUT_S
            )
        except TimeoutError:
            log.warning(
                "peer at %s: handshake failed: no answer within %ss", address, HANDSHAKE_TIMEOUT_S
            )
            await ws.close()
            return None
        except (handshake.HandshakeError, ConnectionError) as error:
            log.warning("peer at %s: handshake failed: %s", address, error)
            await ws.close()
            return None
        if link is None:
            await ws.close()
            return shake.peer_id
        try:
            await self._run_link(link)
        except (sp.ProtocolError, frames.FrameError, ValueError, ConnectionError) as error:
            log.warning("peer %s (%s): closing: %s", link.peer_id, address, error)
        finally:
            await self._drop(link)
        return None

    async def _handshake(
        self,
        ws: Socket,
        shake: Handshake,
        address: str,
        initiator: bool,
    ) -> Link | None:
        while not shake.done:
            message = await ws.receive()
            if message.type != aiohttp.WSMsgType.BINARY:
                raise ConnectionError(f"connection ended during handshake ({message.type.name})")
            for reply in shake.receive(message.data):
                await ws.send_bytes(reply)
        assert shake.session is not None
        assert shake.peer_id is not None
        peer_id = shake.peer_id
        initiator_id = self.identity.peer_id if initiator else peer_id
        sync = sp.PeerSync(self.replica.items, now_ms())
        link = Link(peer_id, address, initiator_id, ws, shake.session, sync)
        return link if self._register(link) else None

    def _register(self, link: Link) -> bool:
        """Keep one connection per peer: the one dialled by the smaller peer id."""
        if link.peer_id == self.identity.peer_id:
            log.info("%s is ourselves; not connecting", link.address)
            return False
        existing = self.links.get(link.peer_id)
        if existing is not None:
            preferred = min(self.identity.peer_id, link.peer_id)
            if existing.initiator_id == preferred or link.initiator_id != preferred:
                return False
            self._spawn(existing.ws.close())
        self.links[link.peer_id] = link
        self.on_change(link.peer_id, f"joined from {link.address}", link.address)
        return True

    async def _run_link(self, link: Link) -> None:
        inbox: asyncio.Queue[aiohttp.WSMessage | None] = asyncio.Queue(INBOX_MAX)
        handler = asyncio.ensure_future(self._handle_until_the_end(link, inbox))
        writer = asyncio.ensure_future(link.write_forever())
        reader = asyncio.ensure_future(_read_forever(link.ws, inbox))
        tasks = [handler, writer, reader, asyncio.ensure_future(self._heartbeat(link))]
        try:
            link.send(link.sync.start())  # queued before any of the tasks runs
            # The link ends with the first of these to fail, not only when the
            # handler sees the end. A writer that failed (aiohttp raises
            # ClientConnectionResetError on a send to a closing transport; a
            # frame too large to seal) used to die alone: the link stayed
            # registered, reading but sending nothing, until the peer's
            # heartbeat gave up on us (5 s), and our redial waited behind it.
            # A reader that failed left the handler waiting for good.
            await _until_done(handler, (writer, reader))
        finally:
            link.closed.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle_until_the_end(
        self, link: Link, inbox: asyncio.Queue[aiohttp.WSMessage | None]
    ) -> None:
        while await self._handle_some(link, inbox):
            self._first_round_done(link.address)
            # aiohttp hands over buffered messages without suspending: give
            # the writer, the heartbeat and the reader their turn.
            await _let_the_reader_fill(inbox)

    async def _handle_some(
        self, link: Link, inbox: asyncio.Queue[aiohttp.WSMessage | None]
    ) -> bool:
        """Handle the messages waiting (at most APPLY_CHUNK); False once the connection ended.

        Updates from consecutive messages are applied together (one
        ``receive_many``: one transaction, one batch of file writes); any other
        message waits until they are applied, so it is answered from a state
        that includes them.
        """
        pending: list[sp.Received] = []
        message, opened = link.ahead.popleft() if link.ahead else (await inbox.get(), None)
        for handled in range(1, APPLY_CHUNK + 1):
            if message is None or message.type != aiohttp.WSMsgType.BINARY:
                self._apply(link, pending)
                if message is not None:
                    _check_ending(message)
                return False
            try:
                plaintext = _plaintext(link, message, opened)
            except frames.FrameError:
                self._apply(link, pending)  # authentic, and before it: kept
                raise
            if plaintext[:1] not in _UPDATE_KINDS:
                self._apply(link, pending)
                pending = []
            replies, received = link.sync.receive(plaintext, now_ms())
            link.send(replies)
            pending += received
            if handled == APPLY_CHUNK or (not link.ahead and inbox.empty()):
                break
            message, opened = link.ahead.popleft() if link.ahead else (inbox.get_nowait(), None)
        self._look_ahead(link, inbox, pending)
        self._apply(link, pending)
        return True

    def _look_ahead(
        self,
        link: Link,
        inbox: asyncio.Queue[aiohttp.WSMessage | None],
        pending: list[sp.Received],
    ) -> None:
        """Before ``pending`` is applied, open the messages already waiting and let
        the replica start on the updates they bring (its render workers render
        them while it writes the files of ``pending``: a first sync's batches
        overlap). Messages are still handled in order, one turn later; a frame
        that does not open raises in its turn, after what came before it."""
        self.replica.prefetch([(got.key, got.update) for got in pending])
        coming: list[tuple[str, bytes]] = []
        while len(link.ahead) < APPLY_CHUNK and not inbox.empty():
            message = inbox.get_nowait()
            if message is None or message.type != aiohttp.WSMsgType.BINARY:
                link.ahead.append((message, None))
                break
            try:
                plaintext = link.session.open(message.data)
            except frames.FrameError as error:
                link.ahead.append((message, error))
                break
            link.ahead.append((message, plaintext))
            if plaintext[:1] in _UPDATE_KINDS:
                with contextlib.suppress(sp.ProtocolError):  # raised in its turn
                    coming.append(sp.update_of(plaintext))
        self.replica.prefetch(coming)

    def _apply(self, link: Link, received: list[sp.Received]) -> None:
        if not received:
            return
        digests = self.replica.items.digests
        before = [digests.get(got.key) for got in received]
        try:
            if len(received) == 1:
                self.replica.receive(received[0].key, received[0].update, link.peer_id)
            else:
                self.replica.receive_many([(g.key, g.update) for g in received], link.peer_id)
        finally:
            # Also when a bad update ended the batch: the good ones before it were kept.
            for got, old in zip(received, before, strict=True):
                self.replica.items.refresh(got.key)
                if digests.get(got.key) != old:
                    # Pass it on: peers that do not see each other still converge through us.
                    self.broadcast(got.key, got.update, skip=link.peer_id)

    async def _heartbeat(self, link: Link) -> None:
        while not link.closed.is_set():
            delay_s = max(0.0, (link.sync.deadline_ms() - now_ms()) / 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.closed.wait(), delay_s)
            if link.closed.is_set():
                return
            try:
                link.send(link.sync.tick(now_ms()))
            except (sp.ProtocolError, ConnectionError) as error:
                log.warning("peer %s: closing: %s", link.peer_id, error)
                await link.ws.close()
                return

    async def _drop(self, link: Link) -> None:
        link.closed.set()
        # Forget the link before the close handshake, which waits for the
        # peer's answer (10 s at most when it does not answer). Until then a
        # peer that comes back was refused as already linked, and our own
        # redial spun against the refusal.
        if self.links.get(link.peer_id) is link:
            del self.links[link.peer_id]
            self.on_change(link.peer_id, "left", link.address)
        await link.ws.close()

    def drop_revoked(self, is_allowed: Callable[[str], bool]) -> None:
        """Close the connections of peers that are no longer allowed."""
        for link in list(self.links.values()):
            if not is_allowed(link.peer_id):
                log.warning("peer %s: closing: revoked", link.peer_id)
                self._spawn(link.ws.close())

    # -- outgoing ------------------------------------------------------------

    def broadcast(self, key: str, update: bytes, skip: str | None = None) -> None:
        for link in list(self.links.values()):
            if link.peer_id == skip:
                continue
            try:
                link.send(link.sync.local_update(key, update, now_ms()))
            except ConnectionError as error:
                log.warning("peer %s: closing: %s", link.peer_id, error)
                self._spawn(link.ws.close())

    def _spawn(self, coroutine: Coroutine[Any, Any, object]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._stopping = True
        for ws in list(self._sockets):
            await ws.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)
        if self._runner is not None:
            await self._runner.cleanup()


async def _until_done(main: asyncio.Future[None], helpers: Sequence[asyncio.Future[None]]) -> None:
    """Wait for ``main``; raise at once what a helper failed with, if one fails first.

    A helper that ends without an error (the reader, after the last message)
    leaves ``main`` to finish.
    """
    waiting: set[asyncio.Future[None]] = {main, *helpers}
    while True:
        done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is main or task.exception() is not None:
                task.result()  # main's outcome, or the error that ended the helper
                return


def _plaintext(link: Link, message: aiohttp.WSMessage, opened: bytes | Exception | None) -> bytes:
    if opened is None:
        return link.session.open(message.data)
    if isinstance(opened, Exception):
        raise opened
    return opened


async def _let_the_reader_fill(inbox: asyncio.Queue[aiohttp.WSMessage | None]) -> None:
    """Yield to the loop until the reader stops adding to ``inbox`` (or it holds two
    batches). The loop reads a socket once per turn, 256 KiB at most (a hundred
    items of a first sync); one turn between batches made them that small, and
    left nothing to read ahead (``_look_ahead``) while a batch is written."""
    idle = 0
    for _ in range(REFILL_TURNS):
        before = inbox.qsize()
        await asyncio.sleep(0)
        # Each message takes a few turns (transport, parser, reader task): two
        # turns without one mean the socket had nothing more.
        idle = idle + 1 if inbox.qsize() == before else 0
        if idle == 2 or inbox.qsize() >= 2 * APPLY_CHUNK:
            return


async def _read_forever(ws: Socket, inbox: asyncio.Queue[aiohttp.WSMessage | None]) -> None:
    """Move messages into ``inbox`` as they come (bounded: a slow reader slows the peer)."""
    async for message in ws:
        await inbox.put(message)
        if message.type != aiohttp.WSMsgType.BINARY:
            return
    await inbox.put(None)


_NORMAL_CLOSE_CODES = (aiohttp.WSCloseCode.OK, aiohttp.WSCloseCode.GOING_AWAY)


def _check_ending(message: aiohttp.WSMessage) -> None:
    """A close by the peer ends quietly; anything else is a reason to log."""
    kind = message.type
    if kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
        code = message.data if isinstance(message.data, int) else None
        if code is None or code in _NORMAL_CLOSE_CODES:
            return
        raise ConnectionError(f"closed by the peer with code {code}")
    if kind is aiohttp.WSMsgType.ERROR:
        raise ConnectionError(f"WebSocket error: {message.data}")
    raise ConnectionError(f"unexpected {kind.name.lower()} message")
