from __future__ import annotations

import pytest

from openfiles_engine.read import piece
from openfiles_engine.read.piece import HeldPieces


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


def test_a_read_finds_its_piece_by_position() -> None:
    held = HeldPieces()
    for start in (300, 0, 100):  # held out of order
        held.hold(7, "e", start, memoryview(bytes(100)))
    held.hold(7, "e", 500, memoryview(bytes(50)))
    assert held.of(7, "e") and held.find(7, 0) == (0, 100)
    assert held.find(7, 199) == (100, 200) and held.find(7, 350) == (300, 400)
    assert held.find(7, 200) is None and held.find(7, 549) == (500, 550)
    assert held.find(7, 550) is None and held.find(8, 0) is None
    assert held.next_start(7, 150) == 300 and held.next_start(7, 500) is None
    assert held.have(7, "e", []) == [[0, 200], [300, 400], [500, 550]]
    held.release(7, lambda a, b: a == 100)
    assert held.find(7, 150) is None and held.have(7, "e", []) == [[0, 100], [300, 400], [500, 550]]
