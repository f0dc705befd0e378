"""Swarm testing: every seed draws its own mix of faults and operations.

A fault that is always on hides the bugs that need its absence (a link that
always drops packets never lets a long sync finish), so each seed switches
each kind of fault and each kind of edit on or off, and picks its rates.
All randomness of a run comes from :func:`substream`, one named stream per
concern, so adding a draw to one concern does not shift the others.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

OP_KINDS = (
    "insert_line",
    "append_line",
    "delete_line",
    "set_field",
    "add_tag",
    "remove_tag",
    "rename",
    "delete",
    "create",
    "claim",
    "same_edit",
    "delete_vs_edit",
)
LATER_OP_KINDS = ("stale_save",)
"""Added after the first seeds were recorded (see ``draw``)."""
SAVE_STYLES = ("in_place", "rename", "recreate")
NEMESES = ("partition", "isolate", "one_way", "clog", "crash", "stop", "skew")


def substream(seed: int, name: str) -> random.Random:
    """An independent, reproducible stream (string seeds hash with SHA-512, not ``hash()``)."""
    return random.Random(f"worksync-sim:{seed}:{name}")


@dataclass(frozen=True)
class LinkFaults:
    """One direction of one pair of peers."""

    delay_ms: int
    jitter_ms: int
    loss: float  # a frame lost: the receiver sees a gap and closes the session
    dup: float  # a frame delivered twice: a replay, the session closes
    reorder: float  # a frame overtakes the one before it: the session closes


@dataclass(frozen=True)
class Swarm:
    peers: int
    ops: int
    op_weights: tuple[tuple[str, int], ...]
    op_gap_ms: int
    hot_items: int
    save_weights: tuple[int, int, int]
    save_gap_ms: int
    debounce_ms: tuple[int, ...]
    skew_ms: tuple[int, ...]
    links: dict[tuple[int, int], LinkFaults]
    nemeses: tuple[str, ...]
    nemesis_gap_ms: int
    drop_last: float
    compact_every: int
    initial_items: int
    cloned: tuple[bool, ...]  # which peers start with the shared files
    diverged: tuple[bool, ...]  # which of those edited their copy before the first start
    late: tuple[bool, ...]  # which peers start only later in the run

    def describe(self) -> str:
        ops = ",".join(name for name, weight in self.op_weights if weight)
        return (
            f"ops[{ops}] gap={self.op_gap_ms}ms nemeses[{','.join(self.nemeses)}] "
            f"drop_last={self.drop_last:.2f} compact_every={self.compact_every} "
            f"items={self.initial_items} cloned={sum(self.cloned)} late={sum(self.late)}"
        )


def _chance(rng: random.Random, p_on: float, high: float) -> float:
    return rng.uniform(0.0, high) if rng.random() < p_on else 0.0


def _link(rng: random.Random, lossy: bool) -> LinkFaults:
    return LinkFaults(
        delay_ms=rng.randint(1, 40),
        jitter_ms=rng.randint(0, 30),
        loss=_chance(rng, 0.3, 0.01) if lossy else 0.0,
        dup=_chance(rng, 0.2, 0.005) if lossy else 0.0,
        reorder=_chance(rng, 0.2, 0.005) if lossy else 0.0,
    )


def draw(seed: int, peers: int, ops: int, later_ops: bool = True) -> Swarm:
    """``later_ops=False``: the op mix before ``LATER_OP_KINDS`` were added (the runs
    the named regression tests were found on)."""
    rng = substream(seed, "swarm")
    weights = tuple(
        (kind, rng.choice((0, 1, 2, 4)) if rng.random() < 0.85 else 0) for kind in OP_KINDS
    )
    if not any(w for _, w in weights):
        weights = tuple((kind, 1) for kind in OP_KINDS)
    # Ops added later draw from a stream of their own: the rest of the swarm
    # (faults, links, clones) stays what each seed drew before.
    later = substream(seed, "swarm-later-ops")
    weights += tuple(
        (kind, later.choice((0, 1, 2, 4)) if later.random() < 0.85 and later_ops else 0)
        for kind in LATER_OP_KINDS
    )
    lossy = rng.random() < 0.5
    links = {(a, b): _link(rng, lossy) for a in range(peers) for b in range(peers) if a != b}
    nemeses = tuple(n for n in NEMESES if rng.random() < 0.5)
    cloned = tuple(i == 0 or rng.random() < 0.8 for i in range(peers))
    return Swarm(
        peers=peers,
        ops=ops,
        op_weights=weights,
        op_gap_ms=rng.choice((10, 50, 150, 400)),
        hot_items=rng.choice((1, 2, 4, 1000)),
        save_weights=(rng.randint(0, 3), rng.randint(0, 3), rng.randint(0, 3)),
        save_gap_ms=rng.choice((1, 10, 60)),
        debounce_ms=tuple(rng.randint(2, 60) for _ in range(peers)),
        skew_ms=tuple(rng.choice((0, 0, rng.randint(-30_000, 30_000))) for _ in range(peers)),
        links=links,
        nemeses=nemeses,
        nemesis_gap_ms=rng.choice((500, 2000, 8000)),
        drop_last=rng.choice((0.0, 0.5, 1.0)),
        compact_every=rng.choice((1, 4, 64)),
        initial_items=rng.randint(1, 6),
        cloned=cloned,
        diverged=tuple(c and i > 0 and rng.random() < 0.2 for i, c in enumerate(cloned)),
        late=tuple(i > 0 and rng.random() < 0.15 for i in range(peers)),
    )
