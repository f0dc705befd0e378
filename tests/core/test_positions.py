from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worksync_p2p.core import positions

POS = st.lists(st.integers(min_value=0, max_value=positions.BASE - 1), min_size=1, max_size=4).map(
    lambda p: [*p[:-1], max(p[-1], 1)]
)


@given(a=POS, b=POS)
def test_between_is_strictly_between(a: list[int], b: list[int]) -> None:
    if a == b:
        return
    lo, hi = sorted([a, b])
    mid = positions.between(lo, hi)
    assert lo < mid < hi
    assert mid[-1] >= 1


@given(a=POS)
def test_open_ends(a: list[int]) -> None:
    assert positions.between(None, a) < a
    assert positions.between(a, None) > a


def test_many_inserts_at_one_place_stay_ordered() -> None:
    lo, hi = [1], [2]
    made = []
    for _ in range(200):
        hi = positions.between(lo, hi)
        made.append(hi)
    assert made == sorted(made, reverse=True)
    assert all(lo < p for p in made)


def test_spread_is_increasing() -> None:
    for count in (0, 1, 5, 1000):
        out = positions.spread(count)
        assert out == sorted(out)
        assert len(out) == count
