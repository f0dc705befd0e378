"""Bytes of a reconnect, from the chunks the recording proxy forwarded.

The window is the first :data:`WINDOW_S` seconds after the proxy accepted the
connection: the HTTP upgrade, the handshake, the digest exchange, and the
heartbeats of an idle link. A heartbeat (PING or PONG: 13 bytes, sealed with a
16-byte MAC, in a WebSocket frame whose header is 2 bytes, plus a 4-byte mask
from the dialling client) has a size of its own; chunks of exactly that size
(or a multiple: a PONG and a PING may travel as one chunk) are counted
apart, and the last other chunk ends the digest exchange.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from benchmarks.harness import KIB, Goal
from benchmarks.wiretap import Chunk
from worksync_p2p.core import frames
from worksync_p2p.core import syncproto as sp

WIRE_GOAL = Goal(50 * KIB, "<= 50 KiB")
WINDOW_S = 2.0
_SEALED_PING = len(sp.encode(sp.Kind.PING, bytes(8))) + frames.MAC_BYTES
WS_HEADER = 2
WS_MASK = 4
HEARTBEAT_BYTES = {True: WS_HEADER + WS_MASK + _SEALED_PING, False: WS_HEADER + _SEALED_PING}
"""Keyed by direction: True from the dialling peer (its frames are masked)."""


@dataclass(frozen=True)
class Wire:
    total: int
    """Bytes both ways in the window, heartbeats included."""
    heartbeats: int
    heartbeat_bytes: int
    upstream: int
    """Bytes from the dialling peer, heartbeats excluded."""
    last: float
    """perf_counter of the last chunk that is not a heartbeat."""

    @property
    def exchange(self) -> int:
        return self.total - self.heartbeat_bytes


def heartbeats_in(chunk: Chunk) -> int:
    """How many heartbeat frames the chunk is (a PING and a PONG may come as one)."""
    frames, rest = divmod(chunk.size, HEARTBEAT_BYTES[chunk.upstream])
    return 0 if rest else frames


def measure_wire(chunks: list[Chunk], connect: float) -> Wire:
    window = [c for c in chunks if connect <= c.at <= connect + WINDOW_S]
    beats = [c for c in window if heartbeats_in(c)]
    others = [c for c in window if not heartbeats_in(c)]
    if not others:
        raise RuntimeError("the proxy forwarded nothing but heartbeats")
    return Wire(
        total=sum(c.size for c in window),
        heartbeats=sum(heartbeats_in(c) for c in beats),
        heartbeat_bytes=sum(c.size for c in beats),
        upstream=sum(c.size for c in others if c.upstream),
        last=max(c.at for c in others),
    )


def wire_note(wires: list[Wire]) -> str:
    beats = sorted(w.heartbeats for w in wires)
    up = statistics.median(w.upstream for w in wires)
    total = statistics.median(w.total for w in wires)
    return (
        f"recording proxy between B and A, first {WINDOW_S:.0f} s after connect: HTTP upgrade,"
        f" handshake, digest exchange ({up:.0f} B median from B); minus {beats[0]}-{beats[-1]}"
        f" heartbeat frames ({HEARTBEAT_BYTES[False]}/{HEARTBEAT_BYTES[True]} B);"
        f" {total:.0f} B with them"
    )
