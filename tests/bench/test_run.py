"""The run loop of ``openfiles bench`` (openfiles_bench/run.py).

Its end-to-end behaviour (rounds in turns, interruption, cleanup) is tested
through the command in test_cli.py.
"""

from __future__ import annotations

from openfiles_bench.run import turn_order


def test_each_turn_changes_the_order_and_who_runs_before_whom() -> None:
    names = ["raw", "fuse", "rclone", "s3fs", "openfiles"]
    assert turn_order(names, 1) == names
    turns = [turn_order(names, t) for t in range(1, 5)]
    assert all(sorted(order) == sorted(names) for order in turns)  # each target once
    before = [{order[i]: order[i - 1] for i in range(1, 5)} for order in turns]
    for name in names:
        seen = [b[name] for b in before if name in b]
        assert len(seen) == len(set(seen))  # never the same predecessor twice
    assert turn_order(["raw", "fuse"], 2) == ["fuse", "raw"]
    assert turn_order(["raw"], 3) == ["raw"]
