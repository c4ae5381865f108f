from __future__ import annotations

import pytest

from openfiles_engine import piece
from openfiles_engine.piece import HeldPieces


def test_held_pieces_stay_under_the_bound_oldest_released_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(piece, "HELD_MAX", 3 * 100)
    held = HeldPieces()
    for i in range(4):
        held.hold(7 if i % 2 else 8, "e", i * 100, memoryview(bytes(100)))
    assert held.bytes == 300
    assert list(held.of(8, "e")) == [(200, 300)]  # (0, 100) of inode 8 went first
    assert list(held.of(7, "e")) == [(100, 200), (300, 400)]
    assert held.have(7, "e", [[0, 50]]) == [[0, 50], [100, 200], [300, 400]]


def test_pieces_of_another_etag_are_dropped() -> None:
    held = HeldPieces()
    held.hold(7, "old", 0, memoryview(b"x" * 10))
    assert held.of(7, "new") == {} and held.bytes == 0
    held.hold(7, "new", 0, memoryview(b"y" * 10))
    held.hold(7, "newer", 10, memoryview(b"z" * 10))  # holding under a new etag drops the rest
    assert list(held.of(7, "newer")) == [(10, 20)] and held.bytes == 10
    held.release(7, lambda a, b: a == 10)
    assert held.bytes == 0 and held.of(7, "newer") == {}
