"""The rendered report, from results built by hand."""

from __future__ import annotations

from openfiles_bench.goal import goal_rows, rss_bound
from openfiles_bench.meter import GiB, Usage
from openfiles_bench.report import render
from openfiles_bench.result import TargetResult, combine
from openfiles_bench.workload import METRICS, Figure


def uniform(name: str, rate: float) -> TargetResult:
    return TargetResult(name, figures={key: Figure(rate, 1.0) for key in METRICS})


def results_with_engine(engine: TargetResult) -> dict[str, TargetResult]:
    mount = uniform("mount-s3", 80.0)
    mount.notes["lacks"] = ["rename", "random write"]
    return {
        "raw": uniform("raw", 100.0),
        "fuse": uniform("fuse", 1000.0),
        "rclone": uniform("rclone", 50.0),
        "s3fs": TargetResult("s3fs", "n/a", "not installed: apt-get install s3fs"),
        "mount-s3": mount,
        "openfiles": engine,
    }


def report(results: dict[str, TargetResult]) -> str:
    return render(results, goal_rows(results), rss_bound(results))


def test_the_report_shows_medians_and_the_spread() -> None:
    engine = combine([uniform("openfiles", 60.0), uniform("openfiles", 90.0),
                      uniform("openfiles", 75.0)])
    text = report(results_with_engine(engine))
    assert "Absolute figures (higher is better), the median of 3 rounds" in text
    assert "Spread over the rounds (lowest - highest)" in text
    assert "60 - 90" in text
    assert "Spread" not in report(results_with_engine(uniform("openfiles", 60.0)))


def test_the_goal_table_names_the_best_peer_and_the_ceilings() -> None:
    text = report(results_with_engine(uniform("openfiles", 60.0)))
    assert "Goal (issue 17): OpenFiles's median >= the best peer's median" in text
    row = next(line for line in text.splitlines()
               if line.startswith("sequential read, cold") and "mount-s3" in line)
    assert row.split()[-8:] == ["60", "80", "mount-s3", "0.75x", "MISSED", "-", "0.60x", "0.06x"]
    assert "met on 0 of 14 workloads with figures" in text
    text = report(results_with_engine(uniform("openfiles", 90.0)))
    assert f"met on {len(METRICS)} of {len(METRICS)} workloads" in text


def test_not_comparable_and_not_supported_are_marked() -> None:
    results = results_with_engine(uniform("openfiles", 60.0))
    del results["mount-s3"].figures["create_4k"]
    results["mount-s3"].unsupported["create_4k"] = "rename"
    text = report(results)
    fsync = next(line for line in text.splitlines() if line.startswith("write + fsync, until cl"))
    assert "50*" in fsync.split()
    assert "* rclone full, write + fsync, until close: rclone's fsync returns" in text
    create = next(line for line in text.splitlines() if line.startswith("create 4 KiB files, u"))
    assert "n/s" in create.split()
    assert "mount-s3 does not support rename, random write: n/s in create 4 KiB files, " \
           "until close (needs rename)" in text


def test_costs_and_the_rss_bound_are_reported() -> None:
    engine = uniform("openfiles", 60.0)
    engine.usage["seq_read_cold"] = [Usage(300 << 20, 1.5, GiB, 1024)]
    text = report(results_with_engine(engine))
    assert "Peak RSS of each file system's processes, MiB" in text
    assert "CPU seconds of those processes per GiB moved" in text
    assert "OpenFiles's peak RSS: 300 MiB (sequential read, cold), under the 512 MiB bound" in text
    engine.usage["stat"] = [Usage(700 << 20, 0.01, 0, 100)]
    assert "OpenFiles's peak RSS: 700 MiB, OVER the 512 MiB bound in: stat" in report(
        results_with_engine(engine))


def test_missing_targets_broken_workloads_and_get_shapes_are_listed() -> None:
    engine = uniform("openfiles", 10.0)
    del engine.figures["create_4k"]
    engine.errors["create_4k"] = "FileNotFoundError: f00051"
    results = results_with_engine(engine)
    results["raw"].notes["get_shapes"] = {"whole": 400.0, "32MiBx2": 700.0}
    text = report(results)
    assert "openfiles, create 4 KiB files, until close: FileNotFoundError: f00051" in text
    assert "s3fs: n/a (not installed: apt-get install s3fs)" in text
    assert "round 1: best 32MiBx2; whole 400, 32MiBx2 700" in text
    for label, unit in METRICS.values():
        assert label in text and unit in text
    gone = report(results_with_engine(TargetResult("openfiles", "n/a", "engine not available")))
    assert "OpenFiles's peak RSS: n/a" in gone


def test_the_report_shows_the_kernels_reclaim_of_each_round() -> None:
    rounds = []
    for seconds in (0.0, 1.25, 0.5):
        one = uniform("openfiles", 60.0)
        one.notes["reclaim_seconds"] = seconds
        rounds.append(one)
    engine = combine(rounds)
    assert engine.notes["reclaim_seconds"] == [0.0, 1.25, 0.5]
    text = report(results_with_engine(engine))
    assert "CPU seconds of the kernel's reclaim (DAMON) during each round" in text
    assert "  openfiles: 0.00 / 1.25 / 0.50" in text
    quiet = uniform("openfiles", 60.0)
    quiet.notes["reclaim_seconds"] = 0.0
    assert "reclaim" not in report(results_with_engine(quiet))
