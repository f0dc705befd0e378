"""Virtual time: one event queue, one clock in milliseconds, and the run's trace.

Events at the same millisecond run in the order they were scheduled, so a run
is a pure function of its seed. Every event is either *busy* (work that must
finish before the system can be called quiet: a message with data, a watcher
batch, a bridge timer, an editor's second step, a connection attempt) or a
heartbeat. The world is quiescent when no busy event is pending.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import deque
from collections.abc import Callable

START_MS = 1_750_000_000_000
"""Virtual epoch: HLC stamps look like real ones."""
RECENT = 30


class BudgetExceeded(Exception):
    """A run used more events than its bound: something loops."""


# (at, seq, busy, action): a plain tuple, because the heap compares it often.
_Event = tuple[int, int, bool, Callable[[], None]]


class Trace:
    """A canonical log of everything delivered or done, kept as a hash and a short tail."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.recent: deque[str] = deque(maxlen=RECENT)
        self.entries = 0
        self.echo: Callable[[str], None] | None = None  # print every line (debugging a seed)

    def op(self, now: int, line: str) -> None:
        self.entries += 1
        self._hash.update(f"{now - START_MS} {line}\n".encode())
        self.recent.append(f"t={now - START_MS}ms {line}")
        if self.echo is not None:
            self.echo(f"t={now - START_MS}ms {line}")

    def message(self, now: int, line: str, payload: bytes) -> None:
        # The payload goes into the hash whole (it is the thing that must be
        # identical between runs) but only its length into the readable tail.
        self.entries += 1
        self._hash.update(f"{now - START_MS} {line} {len(payload)}\n".encode())
        self._hash.update(payload)
        if self.echo is not None:
            self.echo(f"t={now - START_MS}ms {line} ({len(payload)} bytes)")

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class Sim:
    def __init__(self, max_events: int) -> None:
        self.now = START_MS
        self.trace = Trace()
        self.max_events = max_events
        self.events_run = 0
        self.busy_pending = 0
        self._queue: list[_Event] = []
        self._seq = 0

    def at(self, when: int, action: Callable[[], None], *, busy: bool = True) -> None:
        self._seq += 1
        if busy:
            self.busy_pending += 1
        heapq.heappush(self._queue, (max(when, self.now), self._seq, busy, action))

    def after(self, delay_ms: int, action: Callable[[], None], *, busy: bool = True) -> None:
        self.at(self.now + delay_ms, action, busy=busy)

    def step(self) -> bool:
        """Run the next event; False when none is left."""
        if not self._queue:
            return False
        at, _, busy, action = heapq.heappop(self._queue)
        self.events_run += 1
        if self.events_run > self.max_events:
            raise BudgetExceeded(f"more than {self.max_events} events")
        self.now = at
        if busy:
            self.busy_pending -= 1
        action()
        return True

    def run_until(self, until_ms: int, stop: Callable[[], bool] | None = None) -> bool:
        """Run events up to ``until_ms``; True if ``stop`` said so first."""
        while self._queue and self._queue[0][0] <= until_ms:
            self.step()
            if stop is not None and stop():
                return True
        self.now = max(self.now, until_ms)
        return False

    def quiescent(self) -> bool:
        return self.busy_pending == 0
