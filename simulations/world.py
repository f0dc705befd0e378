"""One run: build the world from a seed, play the workload under faults, heal, judge.

Phases (all in virtual time):

1. set-up: the shared files land in the cloned peers' folders (some edited
   before their first start), peers start (some late);
2. workload: ``ops`` operations at seeded gaps, with the nemesis striking in
   between;
3. final heal: every link healed and fault-free, every peer (re)started;
   run until quiescent, which must come within ``LIVENESS_MS``;
4. restart every peer once more and run until quiescent again: a converged
   folder must survive a restart without a single write;
5. the checkers.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from simulations import checkers
from simulations.faults import Nemesis
from simulations.ledger import Ledger
from simulations.network import Network
from simulations.peer import SimPeer
from simulations.sched import START_MS, BudgetExceeded, Sim
from simulations.swarm import Swarm, draw, substream
from simulations.workload import Workload

LIVENESS_MS = 60_000
STAGGER_MS = 50
EVENTS_PER_OP = 20_000
"""Bound on events: generous for a sane run, small enough to stop a loop in seconds."""


@dataclass
class Result:
    seed: int
    peers: int
    ops: int
    swarm: Swarm
    problems: list[str] = field(default_factory=list)
    trace_hash: str = ""
    later_ops: bool = True
    recent: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def command(self) -> str:
        command = (
            f"python -m simulations run --seed {self.seed} --peers {self.peers} --ops {self.ops}"
        )
        return command if self.later_ops else command + " --old-ops"


class World:
    def __init__(self, seed: int, peers: int = 5, ops: int = 200, later_ops: bool = True) -> None:
        self.seed = seed
        self.later_ops = later_ops
        self.swarm = draw(seed, peers, ops, later_ops)
        self.sim = Sim(max_events=EVENTS_PER_OP * (ops + 50))
        self.ledger = Ledger()
        self.problems: list[str] = []
        ids = substream(seed, "ids")
        self.peers = [
            SimPeer(
                self.sim,
                i,
                peer_id=f"{ids.getrandbits(40):010x}",
                debounce_ms=self.swarm.debounce_ms[i],
                skew_ms=self.swarm.skew_ms[i],
                compact_every=self.swarm.compact_every,
                rng=substream(seed, f"peer{i}"),
            )
            for i in range(peers)
        ]
        self.net = Network(
            self.sim,
            list(self.peers),
            self.swarm.links,
            substream(seed, "net"),
            self.problems.append,
        )
        for peer in self.peers:
            peer.broadcast = self.net.broadcast
            peer.on_update = self._on_update
            peer.on_event = self._on_event
        self.workload = Workload(
            self.sim, self.peers, self.swarm, self.ledger, substream(seed, "work")
        )
        self.nemesis = Nemesis(
            self.sim, self.net, self.peers, self.swarm, substream(seed, "nemesis")
        )
        self.rng = substream(seed, "world")
        self.heal_ms = 0
        self.converged_ms: int | None = None

    # -- bookkeeping hooks ---------------------------------------------------------------

    def _on_update(self, peer: SimPeer, key: str, update: bytes) -> None:
        node = peer.node
        item = node.repo.get(key) if node is not None else None
        if item is not None and item.alive():
            self.ledger.edited(key, update)

    def _on_event(self, peer: SimPeer, event: dict[str, Any]) -> None:
        self.sim.trace.op(
            self.sim.now,
            f"{peer.label} node {event.get('event')} {event.get('path')}"
            f" from {event.get('origin')}",
        )
        if event.get("event") != "deleted" or event.get("origin") != "file" or peer.node is None:
            return
        key = str(event["id"])
        state = self.ledger.delete_seen.pop((peer.label, key), None) or peer.node.repo.encoded(key)
        if state is not None:
            self.ledger.deleted(key, peer.label, self.sim.now, state)

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> Result:
        result = Result(
            self.seed, len(self.peers), self.swarm.ops, self.swarm, later_ops=self.later_ops
        )
        try:
            self._setup()
            self._workload()
            self._final()
        except BudgetExceeded as error:
            self.problems.append(f"no progress: {error} (a loop?)")
        except Exception as error:  # the node raised: that is a finding, not a harness crash
            lines = traceback.format_exception(error)
            self.problems.append(f"exception: {error!r}\n" + "".join(lines[-6:]))
        result.problems = self.problems
        result.trace_hash = self.sim.trace.hexdigest()
        result.recent = list(self.sim.trace.recent)
        result.stats = self._stats()
        return result

    def _setup(self) -> None:
        shared = self.workload.initial_files()
        for peer, cloned, diverged in zip(
            self.peers, self.swarm.cloned, self.swarm.diverged, strict=True
        ):
            if cloned:
                for relpath, data in shared.items():
                    peer.fs.put(relpath, data)
            if diverged:
                self.workload.diverge(peer)
        span = self.swarm.ops * self.swarm.op_gap_ms
        for peer, late in zip(self.peers, self.swarm.late, strict=True):
            when = self.rng.randint(0, span) if late else self.rng.randint(0, STAGGER_MS)
            self.sim.after(when, functools.partial(self._start, peer))

    def _start(self, peer: SimPeer) -> None:
        if not peer.up:
            self.nemesis.start(peer)

    def _workload(self) -> None:
        at = self.sim.now + STAGGER_MS
        for _ in range(self.swarm.ops):
            at += max(1, int(self.rng.expovariate(1 / self.swarm.op_gap_ms)))
            self.sim.at(at, self.workload.step)
        end = at
        strike = self.sim.now
        for _ in range(10_000):
            strike += max(1, int(self.rng.expovariate(1 / self.swarm.nemesis_gap_ms)))
            if strike >= end:
                break
            self.sim.at(strike, self.nemesis.step)
        self.sim.run_until(end)

    def _final(self) -> None:
        self.heal_ms = self.sim.now
        self.sim.trace.op(self.sim.now, "final heal")
        self.net.heal_all(clear_faults=True)
        self._restart_all()
        if not self._quiesce(self.heal_ms + LIVENESS_MS, "after the final heal"):
            return
        self.converged_ms = self.sim.now - self.heal_ms
        self.problems += checkers.convergence(self.peers)
        if self.problems:
            return
        writes = self._node_writes()
        self._restart_all()
        if not self._quiesce(self.sim.now + LIVENESS_MS, "after restarting converged peers"):
            return
        if self._node_writes() != writes:
            self.problems.append(
                f"restarting converged peers wrote {self._node_writes() - writes} times"
            )
        self._judge()

    def _restart_all(self) -> None:
        for peer in self.peers:
            if peer.up:
                peer.stop()
                self.net.peer_changed(peer.index)
            self.nemesis.start(peer)

    def _quiesce(self, deadline: int, when: str) -> bool:
        self.sim.run_until(deadline, stop=self.sim.quiescent)
        if self.sim.quiescent():
            return True
        self.problems.append(f"liveness: not quiescent {LIVENESS_MS} ms {when}")
        self.problems += checkers.convergence(self.peers)
        return False

    def _judge(self) -> None:
        reference = self.peers[0]
        self.problems += checkers.convergence(self.peers)
        self.problems += checkers.lost_edits(reference, self.ledger)
        self.problems += checkers.duplicates(reference, self.ledger)
        self.problems += checkers.deletes(reference, self.ledger)
        self.problems += checkers.containment(self.peers)
        self.problems += checkers.write_budget(self.peers, self.ledger.saves)

    def _node_writes(self) -> int:
        return sum(p.fs.counters.node_writes + p.fs.counters.node_removes for p in self.peers)

    def _stats(self) -> dict[str, Any]:
        return {
            "virtual_ms": self.sim.now - START_MS,
            "events": self.sim.events_run,
            "messages": self.net.stats.delivered,
            "sessions": self.net.stats.sessions,
            "closed": dict(self.net.stats.closed),
            "ops": self.ledger.ops_done,
            "skipped": self.ledger.ops_skipped,
            "saves": self.ledger.saves,
            "node_writes": self._node_writes(),
            "converged_ms": self.converged_ms,
            "starts": sum(p.starts for p in self.peers),
        }


GC_YOUNG_OBJECTS = 20_000
"""New objects between two young collections while seeds run (Python's default: 700)."""


@contextlib.contextmanager
def rare_collections() -> Iterator[None]:
    """Collect cyclic garbage less often while seeds run.

    A run makes many objects that live on (documents and what they keep read)
    and few cycles (the graph of a node that crashed): at Python's default
    the collector took 6-7 % of a run's CPU, mostly to find nothing to free
    (``gc.callbacks``, seeds 1-10 at 5 x 200); at this threshold, 1-2 %.
    Collecting never changes what a run does: the traces stay the same.
    """
    old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_OBJECTS, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*old)


def run_seed(seed: int, peers: int = 5, ops: int = 200, later_ops: bool = True) -> Result:
    """``later_ops=False``: without the ops added after a seed's bug was found (its trace
    as it was then; see ``swarm.LATER_OP_KINDS``)."""
    return World(seed, peers, ops, later_ops).run()
