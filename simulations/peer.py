"""One simulated machine: a MemFS folder, a MemoryStore, and the real LocalNode over them.

The peer plays the parts of ``node.running`` and ``adapters/peering.py``
that are I/O: the watcher (changed paths are handed to ``on_relpaths`` after
a seeded debounce), the bridge timer (``on_timer`` at ``deadline_ms``), and
the glue between the node and its sessions (local updates go to every
session; a peer's update that changed our digest is passed on).

A crash throws the LocalNode away with everything in memory (watcher batch,
timers, bridge state, sessions); the store keeps what it kept
(``MemoryStore.crash``), the folder keeps everything. A start builds a new
LocalNode over the same folder and store and runs ``load`` + ``reconcile``,
as ``worksync-p2p up`` does.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulations.fakes import MemoryStore
from simulations.memfs import MemFS, is_item_relpath
from simulations.sched import Sim
from worksync_p2p.adapters.eventsock import EventBus
from worksync_p2p.core import syncproto as sp
from worksync_p2p.node import LocalNode
from worksync_p2p.workspace import Config, Workspace

LocalUpdateHook = Callable[["SimPeer", str, bytes], None]
EventHook = Callable[["SimPeer", dict[str, Any]], None]
Broadcast = Callable[[int, str, bytes, "int | None"], None]


class _Bus(EventBus):
    """The node's event bus, handed straight to the checkers (no JSON, no sockets)."""

    def __init__(self, sink: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self.sink = sink

    def publish(self, event: dict[str, Any]) -> None:
        self.sink(event)


class SimPeer:
    def __init__(
        self,
        sim: Sim,
        index: int,
        *,
        peer_id: str,
        debounce_ms: int,
        skew_ms: int,
        compact_every: int,
        rng: random.Random,
    ) -> None:
        self.sim = sim
        self.index = index
        self.name = peer_id
        self.label = f"p{index}"
        self.debounce_ms = debounce_ms
        self.skew_ms = skew_ms
        self.rng = rng
        self.fs = MemFS(self._saw)
        self.fs.on_node_op = lambda line: sim.trace.op(sim.now, f"{self.label} fs {line}")
        self.store = MemoryStore(compact_every=compact_every)
        self.node: LocalNode | None = None
        self.last_node: LocalNode | None = None
        self.incarnation = 0
        self.starts = 0
        self.on_update: LocalUpdateHook = lambda _peer, _key, _update: None
        self.on_event: EventHook = lambda _peer, _event: None
        self.broadcast: Broadcast = lambda _index, _key, _update, _skip: None
        self._pending: set[str] = set()
        self._flush_armed = False
        self._timer_at: int | None = None

    # -- what the network sees (simulations.network.Endpoint) ----------------------

    @property
    def up(self) -> bool:
        return self.node is not None

    def now(self) -> int:
        return self.sim.now + self.skew_ms

    def items(self) -> sp.RepoItems:
        assert self.node is not None
        return self.node.items

    def apply(self, key: str, update: bytes, origin: str) -> bool:
        """``Peering._apply``: receive, refresh the digest, say whether to pass it on."""
        node = self.node
        assert node is not None
        before = node.items.digests.get(key)
        node.receive(key, update, origin)
        node.items.refresh(key)
        self.arm_timer()
        return node.items.digests.get(key) != before

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        self.incarnation += 1
        self.starts += 1
        node = LocalNode(
            Workspace(Path(f"/sim/{self.label}")),
            Config(),
            self.store,
            _Bus(lambda event: self.on_event(self, event)),
            fs=self.fs,
            clock=self.now,
            rng=random.Random(self.rng.getrandbits(64)),
            peer_id=self.name,
        )

        def local_update(key: str, update: bytes) -> None:
            node.items.refresh(key)
            self.on_update(self, key, update)
            self.broadcast(self.index, key, update, None)

        # Set before load/reconcile (unlike the daemon) so the checkers see every
        # local update; no session exists yet, so nothing is sent early.
        node.on_local_update = local_update
        self.node = node
        self.last_node = node
        node.load()
        node.reconcile()
        node.items.refresh_all()
        self.arm_timer()

    def crash(self, drop_last: bool) -> None:
        """The process (or the machine, with ``drop_last``) died."""
        self._forget()
        self.store.crash(drop_last=drop_last)

    def stop(self) -> None:
        """A clean stop: the clock is saved and the store flushed."""
        if self.node is not None:
            self.node.save_clock()
        self._forget()
        self.store.close()
        self.store.reopen()

    def _forget(self) -> None:
        self.node = None
        self.incarnation += 1
        self._pending.clear()
        self._flush_armed = False
        self._timer_at = None

    # -- the watcher -------------------------------------------------------------------

    def _saw(self, relpath: str) -> None:
        if self.node is None or not is_item_relpath(relpath):
            return
        self._pending.add(relpath)
        if not self._flush_armed:
            self._flush_armed = True
            incarnation = self.incarnation
            self.sim.after(self.debounce_ms, lambda: self._flush(incarnation))

    def _flush(self, incarnation: int) -> None:
        if incarnation != self.incarnation or self.node is None:
            return
        self._flush_armed = False
        # Sorted: a set's order depends on PYTHONHASHSEED, a run must not.
        paths = sorted(self._pending)
        self._pending.clear()
        self.node.on_relpaths(paths)
        self.arm_timer()

    # -- the bridge timer ----------------------------------------------------------------

    def arm_timer(self) -> None:
        node = self.node
        if node is None:
            return
        deadline = node.bridge.deadline_ms()
        if deadline is None:
            return
        due = self.sim.now + max(0, deadline - self.now())
        if self._timer_at is not None and self._timer_at <= due:
            return
        self._timer_at = due
        incarnation = self.incarnation
        self.sim.at(due, lambda: self._fire(incarnation, due))

    def _fire(self, incarnation: int, due: int) -> None:
        if incarnation != self.incarnation or self.node is None or self._timer_at != due:
            return
        self._timer_at = None
        self.node.on_timer()
        self.arm_timer()
