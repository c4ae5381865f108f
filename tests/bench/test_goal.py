"""The goal of issue 17: OpenFiles's median against the best peer's, like with like."""

from __future__ import annotations

from typing import Any

import pytest

from openfiles_bench.goal import PEERS, goal_rows, not_comparable
from openfiles_bench.result import TargetResult, combine
from openfiles_bench.workload import METRICS, Figure


def uniform(name: str, rate: float) -> TargetResult:
    return TargetResult(name, figures={key: Figure(rate, 1.0) for key in METRICS})


def rounds(name: str, rates: list[float]) -> TargetResult:
    return combine([uniform(name, rate) for rate in rates])


def by_metric(results: dict[str, TargetResult]) -> dict[str, dict[str, Any]]:
    return {row["metric"]: row for row in goal_rows(results)}


def test_the_best_peer_sets_the_bar_and_ceilings_only_give_ratios() -> None:
    results = {
        "raw": uniform("raw", 400.0),
        "fuse": uniform("fuse", 1000.0),
        "rclone": uniform("rclone", 50.0),
        "s3fs": TargetResult("s3fs", "n/a", "not installed"),
        "mount-s3": uniform("mount-s3", 150.0),
        "mount-s3-cache": uniform("mount-s3-cache", 250.0),
        "openfiles": uniform("openfiles", 200.0),
    }
    row = by_metric(results)["seq_read_cold"]
    assert row["best_peer"] == "mount-s3-cache" and row["met"] is False
    assert row["ratio"] == pytest.approx(0.8)
    assert row["peers"] == {"rclone": 50.0, "mount-s3": 150.0, "mount-s3-cache": 250.0}
    assert row["ceilings"] == {"raw": pytest.approx(0.5), "fuse": pytest.approx(0.2)}
    assert row["rounds_met"] is None  # one round: nothing to pair
    results["mount-s3-cache"].figures.pop("seq_read_cold")  # say it broke there
    row = by_metric(results)["seq_read_cold"]
    assert row["best_peer"] == "mount-s3" and row["met"] is True


def test_a_figure_that_is_not_like_with_like_is_set_aside() -> None:
    assert not_comparable("rclone", "seq_write_fsync")
    assert not_comparable("rclone", "seq_write_fsync_durable") is None
    assert not_comparable("s3fs", "seq_write_fsync") is None
    results = {"rclone": uniform("rclone", 900.0), "s3fs": uniform("s3fs", 100.0),
               "openfiles": uniform("openfiles", 150.0)}
    rows = by_metric(results)
    fsync = rows["seq_write_fsync"]
    assert fsync["best_peer"] == "s3fs" and fsync["met"] is True
    assert "local cache" in fsync["not_comparable"]["rclone"]
    assert rows["seq_write_fsync_durable"]["best_peer"] == "rclone"
    assert rows["seq_write"]["met"] is False  # without fsync rclone's figure stands


def test_an_unsupported_workload_is_not_a_peers_figure() -> None:
    mount = uniform("mount-s3", 900.0)
    del mount.figures["seq_write"]
    mount.unsupported["seq_write"] = "random write"
    results = {"mount-s3": mount, "s3fs": uniform("s3fs", 100.0),
               "openfiles": uniform("openfiles", 150.0)}
    row = by_metric(results)["seq_write"]
    assert row["best_peer"] == "s3fs" and row["unsupported"] == {"mount-s3": "random write"}


def test_without_figures_there_is_no_verdict() -> None:
    results = {"s3fs": uniform("s3fs", 100.0),
               "openfiles": TargetResult("openfiles", "n/a", "engine not available")}
    assert all(row["met"] is None for row in goal_rows(results))
    assert all(row["met"] is None for row in goal_rows({"openfiles": uniform("o", 1.0)}))
    assert set(PEERS) == {"s3fs", "rclone", "mount-s3", "mount-s3-cache"}


def test_rounds_are_paired_against_the_best_peer_of_the_same_round() -> None:
    results = {
        "s3fs": rounds("s3fs", [60.0, 45.0, 50.0]),
        "rclone": rounds("rclone", [30.0, 50.0, 40.0]),
        "openfiles": rounds("openfiles", [65.0, 40.0, 75.0]),
    }
    row = by_metric(results)["seq_read_cold"]
    # medians: 65 against s3fs's 50: met; the rounds: 65>60, 40<50 (rclone), 75>50
    assert row["met"] is True and row["rounds_met"] == [2, 3]
    assert row["rounds"]["openfiles"] == [65.0, 40.0, 75.0]
    assert row["rounds"]["rclone"] == [30.0, 50.0, 40.0]
    results["rclone"] = rounds("rclone", [30.0, 50.0])  # a round short: no pairing
    assert by_metric(results)["seq_read_cold"]["rounds_met"] is None
