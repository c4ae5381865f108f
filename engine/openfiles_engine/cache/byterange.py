"""Byte-range arithmetic on sorted, disjoint ``[[start, end), ...]`` lists.

``Node.ranges`` (the bytes a clean file's data file holds) is such a list;
so are the held and in-flight pieces of ``read/``. Offsets are bytes, ends
exclusive. No function changes the list it is given.
"""

from __future__ import annotations

import bisect


def _start_of(r: list[int]) -> int:
    return r[0]


def _end_of(r: list[int]) -> int:
    return r[1]


def add_range(ranges: list[list[int]], start: int, end: int) -> list[list[int]]:
    """Merge [start, end) into sorted, disjoint ``ranges``; returns a new list.

    O(log n) to find the place, plus one list copy: a randomly read file can
    have thousands of ranges. ``ranges`` and its items are left unchanged.
    """
    if end <= start:
        return ranges
    first = bisect.bisect_left(ranges, start, key=_end_of)  # first range ending at or after start
    last = bisect.bisect_right(ranges, end, key=_start_of)  # first range starting after end
    if first < last:
        start, end = min(start, ranges[first][0]), max(end, ranges[last - 1][1])
    return [*ranges[:first], [start, end], *ranges[last:]]


def covering(ranges: list[list[int]], pos: int) -> int | None:
    """End of the range of ``ranges`` that holds byte ``pos``, or None."""
    index = bisect.bisect_right(ranges, pos, key=_start_of) - 1
    if index >= 0 and ranges[index][1] > pos:
        return ranges[index][1]
    return None


def missing(ranges: list[list[int]], start: int, end: int) -> list[tuple[int, int]]:
    """The sub-ranges of [start, end) that ``ranges`` does not cover."""
    gaps: list[tuple[int, int]] = []
    pos = start
    for index in range(bisect.bisect_right(ranges, start, key=_end_of), len(ranges)):
        s, e = ranges[index]
        if s >= end:
            break
        if s > pos:
            gaps.append((pos, s))
        pos = e
        if pos >= end:
            break
    if pos < end:
        gaps.append((pos, end))
    return gaps
