"""The nemesis: partitions, one-way links, clogs, crashes, clean stops and clock jumps.

Each fault heals itself after a seeded duration, so the workload phase sees
faults come and go; the final heal (``World``) clears whatever is left.
"""

from __future__ import annotations

import random

from simulations.network import Network
from simulations.peer import SimPeer
from simulations.sched import Sim
from simulations.swarm import Swarm

SKEW_MAX_MS = 30_000


class Nemesis:
    def __init__(
        self, sim: Sim, net: Network, peers: list[SimPeer], swarm: Swarm, rng: random.Random
    ) -> None:
        self.sim = sim
        self.net = net
        self.peers = peers
        self.swarm = swarm
        self.rng = rng
        self.active = True  # False after the final heal: pending heals and restarts still run

    def step(self) -> None:
        if not self.swarm.nemeses:
            return
        kind = self.rng.choice(self.swarm.nemeses)
        getattr(self, "_" + kind)()

    def _duration(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def _log(self, line: str) -> None:
        self.sim.trace.op(self.sim.now, f"nemesis {line}")

    # -- network ------------------------------------------------------------------------

    def _cut_sets(self, left: list[int], right: list[int], label: str) -> None:
        pairs = [(a, b) for a in left for b in right]
        for a, b in pairs:
            self.net.cut(a, b, both_ways=True)
        self._log(f"{label} {left}|{right}")
        self.sim.after(self._duration(500, 10_000), lambda: self._heal(pairs, label))

    def _heal(self, pairs: list[tuple[int, int]], label: str) -> None:
        for a, b in pairs:
            self.net.links[a, b].up = True
            self.net.links[b, a].up = True
            self.net.want((min(a, b), max(a, b)))
        self._log(f"heal {label}")

    def _partition(self) -> None:
        everyone = list(range(len(self.peers)))
        self.rng.shuffle(everyone)
        cut = self.rng.randint(1, len(everyone) - 1)
        self._cut_sets(sorted(everyone[:cut]), sorted(everyone[cut:]), "partition")

    def _isolate(self) -> None:
        lone = self.rng.randrange(len(self.peers))
        others = [i for i in range(len(self.peers)) if i != lone]
        self._cut_sets([lone], others, "isolate")

    def _one_way(self) -> None:
        a, b = self.rng.sample(range(len(self.peers)), 2)
        self.net.cut(a, b, both_ways=False)
        self._log(f"one-way p{a}-/->p{b}")

        def heal() -> None:
            self.net.links[a, b].up = True
            self._log(f"heal one-way p{a}->p{b}")

        self.sim.after(self._duration(500, 12_000), heal)

    def _clog(self) -> None:
        a, b = self.rng.sample(range(len(self.peers)), 2)
        until = self.sim.now + self._duration(100, 8_000)
        self.net.clog(a, b, until)
        self._log(f"clog p{a}->p{b} for {until - self.sim.now}ms")

    # -- peers ----------------------------------------------------------------------------

    def _crash(self) -> None:
        peer = self._up_peer()
        if peer is None:
            return
        drop_last = self.rng.random() < self.swarm.drop_last
        peer.crash(drop_last)
        self.net.peer_changed(peer.index)
        self._log(f"crash {peer.label} drop_last={drop_last}")
        self._restart_later(peer)

    def _stop(self) -> None:
        peer = self._up_peer()
        if peer is None:
            return
        peer.stop()
        self.net.peer_changed(peer.index)
        self._log(f"stop {peer.label}")
        self._restart_later(peer)

    def _skew(self) -> None:
        """A clock jump (NTP, a suspended laptop): only while down, as HLC state is reloaded."""
        peer = self._up_peer()
        if peer is None:
            return
        peer.stop()
        self.net.peer_changed(peer.index)
        peer.skew_ms = self.rng.randint(-SKEW_MAX_MS, SKEW_MAX_MS)
        self._log(f"stop {peer.label}, clock jumps to skew {peer.skew_ms}ms")
        self._restart_later(peer)

    def _up_peer(self) -> SimPeer | None:
        up = [p for p in self.peers if p.up]
        return self.rng.choice(up) if up else None

    def _restart_later(self, peer: SimPeer) -> None:
        incarnation = peer.incarnation

        def restart() -> None:
            if peer.up or peer.incarnation != incarnation:
                return
            self.start(peer)

        self.sim.after(self._duration(200, 10_000), restart)

    def start(self, peer: SimPeer) -> None:
        peer.start()
        self.net.peer_changed(peer.index)
        self._log(f"start {peer.label}")
