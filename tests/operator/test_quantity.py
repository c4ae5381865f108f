"""Sizes and durations of the CRDs: integers, rounded up, in range.

The grammar itself, and its patterns the CRD shares, are tests/contracts/test_quantity.py's.
"""

from __future__ import annotations

import re

import pytest

from openfiles_operator.quantity import MAX_SECONDS, parse_duration, parse_size


@pytest.mark.parametrize(("text", "expected"), [
    ("0", 0), ("1024", 1024), ("1k", 1000), ("10Gi", 10 * 2**30), ("500M", 500 * 10**6),
    ("1.5Gi", 3 * 2**29), ("0.1k", 100), ("1.0001k", 1001), ("1Ei", 2**60),
])
def test_sizes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "10GB", "-1", "1e3", "Gi", "1.Gi", " 10Gi", "2Ei"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_size(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("90", 90), ("90s", 90), ("5m", 300), ("1h", 3600), ("2d", 172800), ("0s", 0),
])
def test_durations(text: str, expected: int) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1h30m", "5 m", "-1s", "1w", "1.5h", f"{MAX_SECONDS + 1}"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)

