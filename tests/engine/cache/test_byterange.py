"""byterange.py: merging ranges, their gaps, the range holding a byte."""

from __future__ import annotations

import random
from itertools import pairwise

from openfiles_engine.cache.byterange import add_range, covering, missing


def test_ranges_merge_and_gaps() -> None:
    r: list[list[int]] = []
    r = add_range(r, 10, 20)
    r = add_range(r, 30, 40)
    assert r == [[10, 20], [30, 40]]
    assert missing(r, 0, 50) == [(0, 10), (20, 30), (40, 50)]
    assert missing(r, 12, 18) == []
    r = add_range(r, 20, 30)
    assert r == [[10, 40]]
    assert add_range(r, 5, 5) == [[10, 40]]
    assert missing(r, 35, 45) == [(40, 45)]


def test_ranges_agree_with_a_set_of_bytes() -> None:
    rng = random.Random(7)
    r: list[list[int]] = []
    present: set[int] = set()
    for _ in range(400):
        start = rng.randrange(1000)
        end = start + rng.randrange(30)
        old, snapshot = r, [list(x) for x in r]
        r = add_range(old, start, end)
        assert old == snapshot  # the old list and its items are left alone
        present |= set(range(start, end))
        assert all(a < b < c for (a, b), (c, _) in pairwise(r))  # sorted, merged
        assert {i for a, b in r for i in range(a, b)} == present
        lo = rng.randrange(1000)
        hi = lo + rng.randrange(100)
        gaps = missing(r, lo, hi)
        assert {i for a, b in gaps for i in range(a, b)} == set(range(lo, hi)) - present
        pos = rng.randrange(1000)
        end_at = covering(r, pos)
        assert (end_at is not None) == (pos in present)
        if end_at is not None:
            assert all(i in present for i in range(pos, end_at)) and end_at not in present
