"""The schedule of one chaos run, drawn from its seed before anything runs.

Every decision is here: which person does what on which peer and when, which
peer is killed (and in which way) or stopped and for how long, which link is
cut or stalled and for how long, which save style each save uses. The plan
is a pure function of ``(seed, peers, seconds)``, so a seed replays the same
schedule; what real processes do with it (timings, which file a remote write
has reached yet) is what varies between two runs of one seed.

Content-dependent choices (which line of a file to edit) use each step's own
``random.Random(step.seed)``, so a file that differs between two runs of a
seed changes that step only, never the rest of the schedule.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace

EDITS = (
    "insert_line",
    "append_line",
    "replace_line",
    "set_field",
    "add_tag",
    "replace_tag",
    "rename",
    "delete",
    "create",
    "claim",
)
KILLS = ("kill", "kill_mid_save", "kill_during_sync")
DOWNS = (*KILLS, "stop")
LINK_FAULTS = ("drop", "hold")
GUARANTEED = ("kill_mid_save", "kill_during_sync", "stop", "drop", "hold")
"""Every plan has at least one of each, so a short run always exercises them."""
EDIT_SCALE = {"delete": 1, "create": 1, "rename": 1, "claim": 1}
"""Edits of existing items are drawn twice as often as these."""
SAVE_STYLES = ("in_place", "rename", "recreate")
TWO_STEP = ("in_place", "recreate")
MIN_DOWN_S = 0.3
MIN_GAP_S = 0.05
INITIAL_ITEMS = 6
HOT_ITEMS = 3
MAX_GAP_S = 0.04  # an editor's two-step save stays inside the bridge's 100 ms grace
FAULTS_FROM = 0.1  # faults start after this share of the run, and are placed before
FAULTS_UNTIL = 0.8


@dataclass(frozen=True)
class Step:
    at_s: float
    kind: str
    peer: int = -1
    other: int = -1
    key: str = ""
    seed: int = 0
    style: str = "rename"
    gap_s: float = 0.0
    delay_s: float = 0.0

    def describe(self) -> str:
        parts = [f"{self.at_s:6.2f}s {self.kind}"]
        if self.peer >= 0:
            parts.append(f"p{self.peer}")
        if self.other >= 0:
            parts.append(f"p{self.other}")
        if self.key:
            parts.append(self.key)
        return " ".join(parts)


@dataclass
class Swarm:
    """Per-seed rates, so different seeds stress different mixes."""

    op_gap_s: float
    save_weights: tuple[int, int, int]
    edit_weights: tuple[int, ...]
    extra_faults: int
    cloned: bool

    def describe(self) -> str:
        weights = dict(zip(SAVE_STYLES, self.save_weights, strict=True))
        return (
            f"op gap {self.op_gap_s * 1000:.0f} ms, saves {weights},"
            f" {self.extra_faults} extra faults, {'cloned' if self.cloned else 'one origin'}"
        )


@dataclass
class Plan:
    seed: int
    peers: int
    seconds: float
    swarm: Swarm
    initial: list[tuple[str, int]] = field(default_factory=list)
    """(item id, step seed) of the items in the first folder (all folders when cloned)."""
    steps: list[Step] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        return Counter(step.kind for step in self.steps)

    def summary(self) -> str:
        counts = self.counts()
        faults = ", ".join(f"{k} {counts[k]}" for k in (*DOWNS, "start", *LINK_FAULTS, "heal"))
        edits = sum(counts[k] for k in EDITS)
        return f"{len(self.steps)} steps: {edits} edits; {faults}; {self.swarm.describe()}"


def draw_swarm(rng: random.Random) -> Swarm:
    styles = tuple(rng.choice((0, 1, 2, 3)) for _ in SAVE_STYLES)
    return Swarm(
        op_gap_s=rng.uniform(0.08, 0.25),
        save_weights=(styles[0], styles[1], styles[2]) if any(styles) else (1, 1, 1),
        edit_weights=tuple(rng.randint(1, 4) * EDIT_SCALE.get(k, 2) for k in EDITS),
        extra_faults=rng.randint(0, 3),
        cloned=rng.random() < 0.5,
    )


class _Planner:
    def __init__(self, seed: int, peers: int, seconds: float) -> None:
        self.rng = random.Random(seed)
        self.peers = peers
        self.seconds = seconds
        self.swarm = draw_swarm(self.rng)
        self.plan = Plan(seed, peers, seconds, self.swarm)
        self.keys: list[str] = []
        self.deleted: set[str] = set()
        self.down_until = [0.0] * peers
        self.link_until: dict[tuple[int, int], float] = {}

    def sub_seed(self) -> int:
        return self.rng.getrandbits(32)

    def new_key(self) -> str:
        key = f"item-{len(self.keys) + 1:03d}"
        self.keys.append(key)
        return key

    def pick_key(self) -> str:
        # Mostly items nobody has deleted yet: an edit of a gone file is a no-op.
        pool = [k for k in self.keys if k not in self.deleted]
        if not pool or self.rng.random() < 0.1:
            pool = self.keys
        hot = pool[:HOT_ITEMS]
        return self.rng.choice(hot if self.rng.random() < 0.6 else pool)

    def save(self) -> tuple[str, float]:
        style = self.rng.choices(SAVE_STYLES, self.swarm.save_weights)[0]
        return style, self.rng.uniform(0.001, MAX_GAP_S)

    def edit(self, at_s: float, kind: str | None = None, peer: int | None = None) -> Step:
        kind = kind or self.rng.choices(EDITS, self.swarm.edit_weights)[0]
        peer = self.rng.randrange(self.peers) if peer is None else peer
        other = -1
        if kind == "claim":
            other = self.rng.choice([p for p in range(self.peers) if p != peer])
        key = self.new_key() if kind == "create" else self.pick_key()
        if kind == "delete":
            self.deleted.add(key)
        style, gap_s = self.save()
        return Step(at_s, kind, peer, other, key, self.sub_seed(), style, gap_s)


def make_plan(seed: int, peers: int, seconds: float) -> Plan:
    planner = _Planner(seed, peers, seconds)
    for _ in range(INITIAL_ITEMS):
        planner.plan.initial.append((planner.new_key(), planner.sub_seed()))
    steps = _edits(planner) + _faults(planner)
    # What would come after the end (restarts, heals) is the final phase's job.
    planner.plan.steps = sorted((s for s in steps if s.at_s < seconds), key=lambda s: s.at_s)
    return planner.plan


def _edits(planner: _Planner) -> list[Step]:
    steps = []
    at_s = 0.0
    for _ in range(100_000):
        at_s += planner.rng.expovariate(1 / planner.swarm.op_gap_s)
        if at_s >= planner.seconds:
            break
        steps.append(planner.edit(at_s))
    return steps


def _faults(planner: _Planner) -> list[Step]:
    rng = planner.rng
    kinds = list(GUARANTEED)
    kinds += [rng.choice((*DOWNS, *LINK_FAULTS)) for _ in range(planner.swarm.extra_faults)]
    rng.shuffle(kinds)
    span = planner.seconds * (FAULTS_UNTIL - FAULTS_FROM)
    times = sorted(planner.seconds * FAULTS_FROM + rng.random() * span for _ in kinds)
    for i in range(1, len(times)):  # apart enough for a peer to be back before the next fault
        times[i] = max(times[i], times[i - 1] + 2 * MIN_GAP_S)
    downs = [at_s for at_s, kind in zip(times, kinds, strict=True) if kind in DOWNS]
    steps: list[Step] = []
    for at_s, kind in zip(times, kinds, strict=True):
        if kind in LINK_FAULTS:
            steps += _link_fault(planner, at_s, kind)
        else:
            # Back up before the next peer goes down, so every planned fault finds its peer.
            later = [t for t in downs if t > at_s]
            until = later[0] if later else planner.seconds
            steps += _down(planner, at_s, kind, max(MIN_GAP_S, until - at_s - MIN_GAP_S))
    return steps


def _down(planner: _Planner, at_s: float, kind: str, longest_s: float) -> list[Step]:
    """Take a peer down and plan its restart (at most ``longest_s`` later)."""
    rng = planner.rng
    up = [p for p in range(planner.peers) if planner.down_until[p] <= at_s]
    peer = rng.choice(up)
    down_s = min(rng.uniform(MIN_DOWN_S, 3.0), longest_s)
    planner.down_until[peer] = at_s + down_s
    if kind == "kill_during_sync":
        others = [p for p in range(planner.peers) if p != peer]
        edit = planner.edit(at_s, kind="insert_line", peer=rng.choice(others))
        step = replace(edit, kind=kind, other=peer, delay_s=rng.uniform(0.0, 0.3))
    elif kind == "kill_mid_save":
        edit = planner.edit(at_s, kind="insert_line", peer=peer)
        step = replace(edit, kind=kind, style=rng.choice(TWO_STEP))
    else:
        step = Step(at_s, kind, peer)
    return [step, Step(at_s + down_s, "start", peer)]


def _link_fault(planner: _Planner, at_s: float, kind: str) -> list[Step]:
    rng = planner.rng
    pairs = [(a, b) for a in range(planner.peers) for b in range(a + 1, planner.peers)]
    free = [p for p in pairs if planner.link_until.get(p, 0.0) <= at_s] or pairs
    a, b = rng.choice(free)
    # A hold longer than the 5 s heartbeat limit kills the session; a shorter one resumes it.
    length_s = rng.uniform(1.0, 7.0) if kind == "hold" else rng.uniform(0.5, 4.0)
    planner.link_until[(a, b)] = at_s + length_s
    return [Step(at_s, kind, a, b), Step(at_s + length_s, "heal", a, b)]
