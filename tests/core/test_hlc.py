from __future__ import annotations

from worksync_p2p.core.hlc import Hlc, Stamp


def test_ticks_increase_within_one_millisecond() -> None:
    clock = Hlc("a")
    first, second = clock.tick(10), clock.tick(10)
    assert first < second


def test_a_clock_behind_still_sorts_after_what_it_saw() -> None:
    clock = Hlc("a")
    seen = Stamp(50_000, 3, "b")
    assert clock.tick(1_000, after=seen) > seen


def test_ties_are_broken_by_writer() -> None:
    assert Stamp(5, 0, "a") < Stamp(5, 0, "b")
