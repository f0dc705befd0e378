"""The virtual network: one link per ordered pair of peers, one sync session per pair.

A session stands for the real WebSocket + handshake + encrypted frames,
without the crypto (the handshake and frames have their own tests; here they
would only cost time). What the session layer keeps from them is the rule that
matters to sync: frames carry a counter, and a frame that is lost (a gap),
replayed or reordered closes the session, as ``frames.Session`` does. Inside
a live session, messages arrive in order, exactly once.

Links have a delay and jitter (kept first-in first-out, like TCP), per-frame
loss, duplication and reordering, and can be cut (a partition, or one
direction only) or clogged (frames held until the clog clears). A two-way cut
ends the sessions across it at once; a one-way cut or a clog is noticed by the
heartbeat (``PeerSync.tick``), as a real peer would notice it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from simulations.sched import Sim
from simulations.swarm import LinkFaults
from worksync_p2p.core import syncproto as sp

RECONNECT_MIN_MS = 200  # as adapters/peering.py dials
RECONNECT_MAX_MS = 10_000
HEARTBEAT_KINDS = (sp.Kind.PING, sp.Kind.PONG)


class Endpoint(Protocol):
    """What the network needs from a simulated peer."""

    name: str

    @property
    def up(self) -> bool: ...

    def now(self) -> int: ...

    def items(self) -> sp.RepoItems: ...

    def apply(self, key: str, update: bytes, origin: str) -> bool:
        """Apply a peer's update; True when it changed our digest (forward it)."""
        ...


@dataclass
class Link:
    faults: LinkFaults
    up: bool = True
    clogged_until: int = 0
    last_arrival: int = 0


@dataclass
class Side:
    """One end of a session: its protocol state and its frame counters."""

    index: int
    sync: sp.PeerSync
    sent: int = 0
    expected: int = 0
    tick_at: int | None = None


@dataclass
class Session:
    id: int
    sides: tuple[Side, Side]
    open: bool = True

    def side_of(self, index: int) -> Side:
        return self.sides[0] if self.sides[0].index == index else self.sides[1]

    def other(self, side: Side) -> Side:
        return self.sides[1] if side is self.sides[0] else self.sides[0]


@dataclass
class Dialer:
    """Reconnection of one pair, with the jittered doubling backoff of ``dial_forever``."""

    backoff_ms: int = RECONNECT_MIN_MS
    pending: bool = False


@dataclass
class NetStats:
    delivered: int = 0
    dropped: int = 0
    sessions: int = 0
    closed: dict[str, int] = field(default_factory=dict)


class Network:
    def __init__(
        self,
        sim: Sim,
        peers: list[Endpoint],
        links: dict[tuple[int, int], LinkFaults],
        rng: random.Random,
        on_error: Callable[[str], None],
    ) -> None:
        self.sim = sim
        self.peers = peers
        self.links = {pair: Link(faults) for pair, faults in links.items()}
        self.rng = rng
        self.on_error = on_error
        self.sessions: dict[tuple[int, int], Session] = {}
        self.dialers = {pair: Dialer() for pair in links if pair[0] < pair[1]}
        self.stats = NetStats()
        self._ids = 0

    # -- link faults ---------------------------------------------------------------

    def cut(self, a: int, b: int, both_ways: bool) -> None:
        self.links[a, b].up = False
        if both_ways:
            self.links[b, a].up = False
            self.close(_pair(a, b), "partition")

    def clog(self, a: int, b: int, until_ms: int) -> None:
        self.links[a, b].clogged_until = max(self.links[a, b].clogged_until, until_ms)

    def heal_all(self, clear_faults: bool) -> None:
        for link in self.links.values():
            link.up = True
            link.clogged_until = 0
            if clear_faults:
                link.faults = LinkFaults(link.faults.delay_ms, link.faults.jitter_ms, 0.0, 0.0, 0.0)
        for pair, dialer in sorted(self.dialers.items()):
            dialer.backoff_ms = RECONNECT_MIN_MS
            self.want(pair)

    def usable(self, a: int, b: int) -> bool:
        now = self.sim.now
        forward, back = self.links[a, b], self.links[b, a]
        return forward.up and back.up and forward.clogged_until <= now >= back.clogged_until

    # -- connecting ------------------------------------------------------------------

    def peer_changed(self, index: int) -> None:
        """A peer stopped or started: end its sessions, or dial its pairs."""
        for pair in sorted(self.dialers):
            if index in pair:
                if self.peers[index].up:
                    self.want(pair)
                else:
                    self.close(pair, "peer down")

    def want(self, pair: tuple[int, int]) -> None:
        dialer = self.dialers[pair]
        if dialer.pending or pair in self.sessions:
            return
        a, b = pair
        if not (self.peers[a].up and self.peers[b].up):
            return
        dialer.pending = True
        delay = int(dialer.backoff_ms * (0.5 + self.rng.random()))
        self.sim.after(delay, lambda: self._dial(pair))

    def _dial(self, pair: tuple[int, int]) -> None:
        dialer = self.dialers[pair]
        dialer.pending = False
        a, b = pair
        if pair in self.sessions or not (self.peers[a].up and self.peers[b].up):
            return
        if not self.usable(a, b):
            dialer.backoff_ms = min(dialer.backoff_ms * 2, RECONNECT_MAX_MS)
            self.want(pair)
            return
        # The handshake takes a round trip before the session exists.
        rtt = self.links[a, b].faults.delay_ms + self.links[b, a].faults.delay_ms
        self.sim.after(rtt, lambda: self._establish(pair))
        dialer.pending = True

    def _establish(self, pair: tuple[int, int]) -> None:
        self.dialers[pair].pending = False
        a, b = pair
        if pair in self.sessions or not (self.peers[a].up and self.peers[b].up):
            self.want(pair)
            return
        self._ids += 1
        self.stats.sessions += 1
        sides = (self._side(a), self._side(b))
        session = Session(self._ids, sides)
        self.sessions[pair] = session
        self.dialers[pair].backoff_ms = RECONNECT_MIN_MS
        self.sim.trace.op(self.sim.now, f"connect p{a}<->p{b} s{session.id}")
        for side in sides:
            self._send(session, side, side.sync.start())

    def _side(self, index: int) -> Side:
        peer = self.peers[index]
        return Side(index, sp.PeerSync(peer.items(), peer.now()))

    def close(self, pair: tuple[int, int], why: str) -> None:
        session = self.sessions.pop(pair, None)
        if session is None:
            return
        session.open = False
        self.stats.closed[why] = self.stats.closed.get(why, 0) + 1
        self.sim.trace.op(self.sim.now, f"close p{pair[0]}<->p{pair[1]} s{session.id}: {why}")
        self.want(pair)

    # -- sending ---------------------------------------------------------------------

    def broadcast(self, index: int, key: str, update: bytes, skip: int | None) -> None:
        """A changed item goes to every session of the peer (``Peering.broadcast``)."""
        for pair, session in sorted(self.sessions.items()):
            if index not in pair:
                continue
            side = session.side_of(index)
            other = session.other(side)
            if other.index == skip:
                continue
            now = self.peers[index].now()
            self._send(session, side, side.sync.local_update(key, update, now))

    def _send(self, session: Session, side: Side, messages: list[bytes]) -> None:
        other = session.other(side)
        link = self.links[side.index, other.index]
        for message in messages:
            seq = side.sent
            side.sent += 1
            self._transmit(session, link, other, seq, message)
        if messages:
            self._arm_tick(session, side)

    def _transmit(self, session: Session, link: Link, to: Side, seq: int, message: bytes) -> None:
        if not link.up or self.rng.random() < link.faults.loss:
            self.stats.dropped += 1
            return
        now = self.sim.now
        arrival = now + link.faults.delay_ms + self.rng.randint(0, link.faults.jitter_ms)
        arrival = max(arrival, link.clogged_until)
        busy = message[0] not in HEARTBEAT_KINDS
        if self.rng.random() < link.faults.reorder:
            arrival = max(now, link.last_arrival - 1)  # overtakes the frame before it
        else:
            arrival = max(arrival, link.last_arrival)
            link.last_arrival = arrival
        copies = 2 if self.rng.random() < link.faults.dup else 1
        for _ in range(copies):
            self.sim.at(arrival, lambda: self._deliver(session, to, seq, message), busy=busy)

    # -- receiving ---------------------------------------------------------------------

    def _deliver(self, session: Session, side: Side, seq: int, message: bytes) -> None:
        if not session.open:
            return
        other = session.other(side)
        pair = _pair(side.index, other.index)
        if seq != side.expected:
            self.close(pair, "frame out of sequence")
            return
        side.expected += 1
        self.stats.delivered += 1
        self.sim.trace.message(self.sim.now, f"p{other.index}>p{side.index} s{session.id}", message)
        peer = self.peers[side.index]
        try:
            replies, received = side.sync.receive(message, peer.now())
        except sp.ProtocolError as error:
            self.on_error(f"p{side.index}: protocol error from an honest peer: {error}")
            self.close(pair, "protocol error")
            return
        self._send(session, side, replies)
        for got in received:
            if not session.open:
                return
            if peer.apply(got.key, got.update, self.peers[other.index].name):
                self.broadcast(side.index, got.key, got.update, skip=other.index)
        self._arm_tick(session, side)

    # -- heartbeat -----------------------------------------------------------------------

    def _arm_tick(self, session: Session, side: Side) -> None:
        """One pending heartbeat event per side, moved to ``PeerSync.deadline_ms``."""
        peer = self.peers[side.index]
        due = self.sim.now + max(0, side.sync.deadline_ms() - peer.now())
        if side.tick_at is not None and side.tick_at <= due:
            return
        side.tick_at = due
        self.sim.at(due, lambda: self._tick(session, side, due), busy=False)

    def _tick(self, session: Session, side: Side, due: int) -> None:
        if not session.open or side.tick_at != due:
            return
        side.tick_at = None
        peer = self.peers[side.index]
        other = session.other(side)
        try:
            pings = side.sync.tick(peer.now())
        except sp.ProtocolError:
            self.close(_pair(side.index, other.index), "heartbeat timeout")
            return
        self._send(session, side, pings)
        self._arm_tick(session, side)


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)
