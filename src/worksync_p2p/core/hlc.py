"""Hybrid logical clocks: "the later edit wins", even across skewed machines.

A stamp is ``(ms, counter, writer)``, compared in that order. ``ms`` follows
the wall clock the caller passes in; ``counter`` orders events inside one
millisecond and keeps stamps increasing when a peer's clock runs behind what it
has already seen. The writer id breaks the last ties, so every replica picks
the same winner.
"""

from __future__ import annotations

from typing import NamedTuple


class Stamp(NamedTuple):
    """Ordered, hashed and compared as the tuple ``(ms, counter, writer)``; a named
    tuple rather than a frozen dataclass because every field cell read makes one,
    and the dataclass's constructor cost twice as much."""

    ms: int
    counter: int
    writer: str

    def to_list(self) -> list[int]:
        return [self.ms, self.counter]


GENESIS_MS = 0
"""Stamps of genesis values: older than any edit a person makes."""


class Hlc:
    """The clock of one writer. Not thread-safe; the node owns one."""

    def __init__(self, writer: str, ms: int = 0, counter: int = 0) -> None:
        self.writer = writer
        self._ms = ms
        self._counter = counter

    def tick(self, now_ms: int, after: Stamp | None = None) -> Stamp:
        """A fresh stamp later than every stamp seen so far and than ``after``."""
        if after is not None:
            self.observe(after)
        if now_ms > self._ms:
            self._ms, self._counter = now_ms, 0
        else:
            self._counter += 1
        return Stamp(self._ms, self._counter, self.writer)

    def observe(self, stamp: Stamp) -> None:
        """Remember a stamp from elsewhere, so our next one sorts after it."""
        self._ms, self._counter = max((self._ms, self._counter), (stamp.ms, stamp.counter))

    def state(self) -> tuple[int, int]:
        return self._ms, self._counter
