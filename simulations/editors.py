"""People saving files, in the three ways editors really do it.

* ``rename``: write a hidden temp file, rename it over the target (atomic);
* ``in_place``: truncate, then write (a watcher may see the empty file);
* ``recreate``: delete, then create (a watcher may see the file missing).

The two steps of the last two are separate events ``save_gap_ms`` apart, so a
watcher batch, a bridge timer or a remote write can land in between. The gap
stays below the bridge's grace periods (100 ms for an empty file, 150 ms for
a missing one): those periods are the contract that makes such saves safe.
While a save is half done the path is busy, and no other person edits it.
"""

from __future__ import annotations

import random

from simulations.memfs import MemFS
from simulations.sched import Sim
from simulations.swarm import SAVE_STYLES


class Editors:
    def __init__(self, sim: Sim, rng: random.Random, weights: tuple[int, int, int], gap_ms: int):
        self.sim = sim
        self.rng = rng
        self.weights = weights if any(weights) else (0, 1, 0)
        self.gap_ms = gap_ms
        self.busy: set[tuple[int, str]] = set()
        self.saves = 0

    def is_busy(self, peer: int, relpath: str) -> bool:
        return (peer, relpath) in self.busy

    def save(self, peer: int, fs: MemFS, relpath: str, data: bytes) -> str:
        """Start a save; returns the style used (for the trace)."""
        style = self.rng.choices(SAVE_STYLES, self.weights)[0]
        self.saves += 1
        if style == "rename":
            temp = _temp_name(relpath)
            fs.put(temp, data)
            fs.rename(temp, relpath)
            return style
        if style == "in_place":
            fs.put(relpath, b"")
        else:
            fs.remove(relpath)
        self.busy.add((peer, relpath))
        gap = self.rng.randint(1, self.gap_ms)
        self.sim.after(gap, lambda: self._finish(peer, fs, relpath, data))
        return style

    def _finish(self, peer: int, fs: MemFS, relpath: str, data: bytes) -> None:
        self.busy.discard((peer, relpath))
        fs.put(relpath, data)


def _temp_name(relpath: str) -> str:
    folder, _, name = relpath.rpartition("/")
    temp = f".{name}.swp"
    return f"{folder}/{temp}" if folder else temp
