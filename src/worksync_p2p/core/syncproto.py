"""The item sync protocol between two peers, sans-I/O: bytes in, bytes and updates out.

Runs inside an authenticated, encrypted session (``frames.py``); one session
per pair of peers carries every item. Rules:

1. On connect both sides send their digest root. Equal roots: nothing else
   is said. Otherwise they exchange the 256 bucket hashes, then the
   ``(key, hash)`` lists of the buckets that differ, then run the y-protocols
   sync for each differing or missing key: ``SYNC1(key, state vector)`` is
   answered with ``SYNC2(key, the update the asker lacks)``. Both sides ask,
   so both end with the union.
2. After that, live changes travel as ``UPDATE(key, update)`` at once.
3. ``PING`` every ``ping_every_ms`` when nothing else was sent; a peer silent
   for ``dead_after_ms`` is declared dead (mDNS alone notices after 18 min).
4. Bad input from the peer (unknown type, truncated field, oversized
   message, a key that is not a string) raises :class:`ProtocolError` with a
   one-line reason; the caller closes that session only.
5. An item whose update waits for one it depends on (it arrived out of order,
   see ``LocalNode._waits``) is asked for at the next heartbeat tick with a
   ``SYNC1``, once per session while it waits.

Message layout: one type byte, then fields as ``u32 length + bytes``.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

import pycrdt

from worksync_p2p.core import digest as dg
from worksync_p2p.core.repo import Repo

MAX_KEY_BYTES = 4096
MAX_KEYS_PER_MESSAGE = 2048
FLOOD_BURST = 50_000
FLOOD_PER_SECOND = 5_000


class ProtocolError(Exception):
    """The peer sent something this protocol does not allow."""


class Kind(IntEnum):
    ROOT = 1
    BUCKETS = 2
    KEYS = 3
    SYNC1 = 4
    SYNC2 = 5
    UPDATE = 6
    PING = 7
    PONG = 8


class Items(Protocol):
    """What the protocol needs from the replica (the node's repo + digest index)."""

    @property
    def digests(self) -> dg.DigestIndex: ...

    def state_vector(self, key: str) -> bytes | None: ...

    def update_since(self, key: str, state_vector: bytes) -> bytes | None: ...

    def waiting_keys(self) -> Collection[str]: ...


@dataclass(frozen=True)
class Received:
    """A peer's update for one item, to apply (the node persists and renders it)."""

    key: str
    update: bytes


def encode(kind: Kind, *fields: bytes) -> bytes:
    parts = [bytes([kind])]
    for value in fields:
        parts += [struct.pack(">I", len(value)), value]
    return b"".join(parts)


_KINDS = {kind.value: kind for kind in Kind}
"""By first byte: a dict lookup, where ``Kind(byte)`` is a call through the enum machinery."""


def decode(message: bytes) -> tuple[Kind, list[bytes]]:
    if not message:
        raise ProtocolError("empty message")
    kind = _KINDS.get(message[0])
    if kind is None:
        raise ProtocolError(f"unknown message type {message[0]}")
    fields: list[bytes] = []
    offset = 1
    while offset < len(message):
        if offset + 4 > len(message):
            raise ProtocolError("truncated field length")
        (size,) = struct.unpack_from(">I", message, offset)
        offset += 4
        if offset + size > len(message):
            raise ProtocolError("truncated field")
        fields.append(message[offset : offset + size])
        offset += size
    return kind, fields


def _key(raw: bytes) -> str:
    if len(raw) > MAX_KEY_BYTES:
        raise ProtocolError("item key too long")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ProtocolError("item key is not UTF-8") from None


def update_of(message: bytes) -> tuple[str, bytes]:
    """The key and the update a SYNC2 or UPDATE message carries; ProtocolError otherwise."""
    kind, fields = decode(message)
    if kind not in (Kind.SYNC2, Kind.UPDATE):
        raise ProtocolError(f"{kind.name} carries no update")
    key_raw, update = _fields(kind, fields, 2)
    return _key(key_raw), update


def _fields(kind: Kind, fields: list[bytes], count: int) -> list[bytes]:
    if len(fields) != count:
        raise ProtocolError(f"{kind.name} needs {count} fields, got {len(fields)}")
    return fields


@dataclass
class RateLimit:
    """A token bucket on incoming messages: a flooding peer is cut off, not served.

    The burst allows a first sync of tens of thousands of items; the refill
    rate is far above what people and agents editing files produce.
    """

    burst: int = FLOOD_BURST
    per_second: int = FLOOD_PER_SECOND
    tokens: float = -1.0
    last_ms: int = 0

    def take(self, now_ms: int) -> None:
        if self.tokens < 0:
            self.tokens, self.last_ms = float(self.burst), now_ms
        elapsed_ms = max(0, now_ms - self.last_ms)
        self.tokens = min(float(self.burst), self.tokens + elapsed_ms * self.per_second / 1000)
        self.last_ms = now_ms
        if self.tokens < 1:
            raise ProtocolError(f"flooding: over {self.per_second} messages/s")
        self.tokens -= 1


@dataclass
class PeerSync:
    """One session's sync state. ``now_ms`` is passed in; nothing here blocks or sleeps."""

    items: Items
    now_ms: int
    ping_every_ms: int = 1000
    dead_after_ms: int = 5000
    last_heard_ms: int = 0
    last_sent_ms: int = 0
    asked: set[str] = field(default_factory=set)
    fetched: set[str] = field(default_factory=set)
    """Waiting items (``Items.waiting_keys``) this session asked its peer for, once each."""
    limit: RateLimit = field(default_factory=lambda: RateLimit(FLOOD_BURST, FLOOD_PER_SECOND))

    def __post_init__(self) -> None:
        self.last_heard_ms = self.last_sent_ms = self.now_ms

    def start(self) -> list[bytes]:
        return self._sent([encode(Kind.ROOT, self.items.digests.root())])

    def _sent(self, messages: list[bytes]) -> list[bytes]:
        if messages:
            self.last_sent_ms = self.now_ms
        return messages

    def local_update(self, key: str, update: bytes, now_ms: int) -> list[bytes]:
        self.now_ms = now_ms
        return self._sent([encode(Kind.UPDATE, key.encode(), update)])

    def receive(self, message: bytes, now_ms: int) -> tuple[list[bytes], list[Received]]:
        """Handle one message: what to send back, and the updates to apply."""
        self.now_ms = self.last_heard_ms = now_ms
        self.limit.take(now_ms)
        kind, fields = decode(message)
        if kind in (Kind.SYNC2, Kind.UPDATE):
            key_raw, update = _fields(kind, fields, 2)
            key = _key(key_raw)
            self.asked.discard(key)
            return [], [Received(key, update)]
        return self._reply(kind, fields), []

    def _reply(self, kind: Kind, fields: list[bytes]) -> list[bytes]:
        match kind:
            case Kind.ROOT:
                return self._on_root(_fields(kind, fields, 1)[0])
            case Kind.BUCKETS:
                return self._on_buckets(fields)
            case Kind.KEYS:
                return self._on_keys(fields)
            case Kind.SYNC1:
                key_raw, vector = _fields(kind, fields, 2)
                return self._on_sync1(_key(key_raw), vector)
            case Kind.PING:
                return self._sent([encode(Kind.PONG, *fields[:1])])
            case _:
                return []

    def _on_root(self, root: bytes) -> list[bytes]:
        if root == self.items.digests.root():
            return []
        return self._sent([encode(Kind.BUCKETS, *self.items.digests.buckets())])

    def _on_buckets(self, theirs: list[bytes]) -> list[bytes]:
        if len(theirs) != dg.BUCKETS:
            raise ProtocolError(f"BUCKETS needs {dg.BUCKETS} hashes, got {len(theirs)}")
        ours = self.items.digests.buckets()
        differing = [b for b in range(dg.BUCKETS) if ours[b] != theirs[b]]
        return self._sent(list(self._key_lists(differing)))

    def _key_lists(self, buckets: list[int]) -> Iterator[bytes]:
        """Our (key, hash) pairs of the differing buckets, with the bucket numbers."""
        fields: list[bytes] = [bytes(buckets)]
        for bucket in buckets:
            for key, item_digest in self.items.digests.keys_in(bucket):
                fields += [key.encode(), item_digest]
                if len(fields) >= 2 * MAX_KEYS_PER_MESSAGE:
                    yield encode(Kind.KEYS, *fields)
                    fields = [b""]
        yield encode(Kind.KEYS, *fields)

    def _on_keys(self, fields: list[bytes]) -> list[bytes]:
        if not fields or len(fields) % 2 != 1:
            raise ProtocolError("KEYS needs a bucket list and (key, hash) pairs")
        theirs = {_key(fields[i]): fields[i + 1] for i in range(1, len(fields), 2)}
        asks: list[bytes] = []
        # Also our keys its list lacks. The peer asks for those itself, so in a
        # first sync these asks bring nothing (10,000 messages each way), but
        # without them (session 11) the simulations' schedules moved into latent
        # bugs: B81-B85 are fixed, soak seeds 152 and 262 at 5 x 200 still lose
        # edits without these asks. Kept until those are traced.
        for bucket in fields[0]:
            for key, _ in self.items.digests.keys_in(bucket):
                theirs.setdefault(key, b"")
        for key, their_digest in sorted(theirs.items()):
            if self.items.digests.get(key) != their_digest and key not in self.asked:
                self.asked.add(key)
                vector = self.items.state_vector(key) or b"\x00"
                asks.append(encode(Kind.SYNC1, key.encode(), vector))
        return self._sent(asks)

    def _on_sync1(self, key: str, vector: bytes) -> list[bytes]:
        update = self.items.update_since(key, vector)
        if update is None:
            return []
        return self._sent([encode(Kind.SYNC2, key.encode(), update)])

    # -- heartbeat ---------------------------------------------------------

    def deadline_ms(self) -> int:
        return min(self.last_sent_ms + self.ping_every_ms, self.last_heard_ms + self.dead_after_ms)

    def tick(self, now_ms: int) -> list[bytes]:
        """Heartbeat; raises :class:`ProtocolError` when the peer has gone silent."""
        self.now_ms = now_ms
        if now_ms - self.last_heard_ms >= self.dead_after_ms:
            raise ProtocolError(f"peer silent for {now_ms - self.last_heard_ms} ms")
        asks = self._fetch_waiting()
        if asks:
            return self._sent(asks)
        if now_ms - self.last_sent_ms >= self.ping_every_ms:
            return self._sent([encode(Kind.PING, now_ms.to_bytes(8, "big"))])
        return []

    def _fetch_waiting(self) -> list[bytes]:
        """SYNC1 for items whose updates wait for one they depend on (rule 5).

        Once per item per session while it waits: a peer that lacks the edit too
        passes it on when it gets it (a change of its digest), and a reconnect's
        digest exchange finds the item differing anyway.
        """
        waiting = self.items.waiting_keys()
        self.fetched.intersection_update(waiting)
        asks = []
        for key in sorted(set(waiting) - self.fetched - self.asked):
            self.fetched.add(key)
            vector = self.items.state_vector(key) or b"\x00"
            asks.append(encode(Kind.SYNC1, key.encode(), vector))
        return asks


class RepoItems:
    """:class:`Items` over a :class:`~worksync_p2p.core.repo.Repo` and its digest index."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self._digests = dg.DigestIndex()
        self.waiting: dict[str, bytes] = {}
        """Items an applied update of which waits for one it depends on: key -> what
        waits (``yupdate.waiting``). Kept by the node, which does not render them."""

    def refresh_all(self) -> None:
        for key in self.repo.item_keys():
            self.refresh(key)

    def restore(self, index: dg.DigestIndex) -> None:
        """Use an index saved when the store held exactly what it holds now (instead
        of :meth:`refresh_all`, which hashes every item: most of a restart's cost)."""
        self._digests = index

    @property
    def digests(self) -> dg.DigestIndex:
        return self._digests

    def refresh(self, key: str) -> None:
        """Recompute one item's digest after it changed."""
        digest = self.repo.digest(key)
        if digest is not None:
            self._digests.set(key, digest)

    def waiting_keys(self) -> Collection[str]:
        return self.waiting.keys()

    def state_vector(self, key: str) -> bytes | None:
        state = self.repo.encoded(key)
        return None if state is None else pycrdt.get_state(state)

    def update_since(self, key: str, state_vector: bytes) -> bytes | None:
        state = self.repo.encoded(key)
        if state is None:
            return None
        try:
            return pycrdt.get_update(state, state_vector)
        except ValueError as error:
            raise ProtocolError(f"bad state vector for {key!r}: {error}") from None
