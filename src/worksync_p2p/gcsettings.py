"""The garbage collector's settings for processes that take in thousands of items.

The daemon and its render workers allocate a few hundred objects per item
they load, receive or render, nearly all freed at once by their reference
counts. With Python's defaults the collector walks the young objects every
700 allocations (260 times per 10,000 items) and, every tenth time, the
older ones, which include every module loaded: a tenth to a fifth of the
CPU time of a load or a first sync, for almost no garbage found.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
"""Allocations between two collections of the youngest objects."""


def settle() -> None:
    """Call once the process has imported what it runs: what is loaded so far
    lives as long as the process and is kept out of the collector's way, and
    the young objects are collected less often (cycles are still collected)."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
