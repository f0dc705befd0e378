"""Dense list positions: a new element can always be placed between two others.

A position is a list of digits in ``[0, BASE)`` compared like Python lists.
Every position this module makes ends in a digit of at least 1, so there is
always room before the smallest one and between any two.
"""

from __future__ import annotations

BASE = 1 << 16

Position = list[int]


def between(lo: Position | None, hi: Position | None) -> Position:
    """A position strictly between ``lo`` and ``hi`` (None: open end)."""
    assert lo is None or hi is None or lo < hi, (lo, hi)
    out: Position = []
    lo_active, hi_active = lo is not None, hi is not None
    for i in range(1_000):
        a = lo[i] if lo is not None and lo_active and i < len(lo) else 0
        b = hi[i] if hi is not None and hi_active and i < len(hi) else BASE
        if b - a > 1:
            out.append((a + b) // 2)
            return out
        out.append(a)
        if a < b:
            hi_active = False
        if lo is None or i >= len(lo) or out[i] > lo[i]:
            lo_active = False
    raise AssertionError(f"no position between {lo} and {hi}")


def spread(count: int) -> list[Position]:
    """``count`` increasing positions, evenly spaced (for a list seen whole)."""
    if count < BASE - 1:
        step = BASE // (count + 1)
        return [[step * (i + 1)] for i in range(count)]
    out: list[Position] = []
    prev: Position | None = None
    for _ in range(count):
        prev = between(prev, None)
        out.append(prev)
    return out
