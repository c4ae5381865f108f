"""Ratios, goals and the rendered report, from results built by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openfiles_bench.report import (
    SCHEMA,
    TargetResult,
    combine,
    goals,
    plot,
    ratios,
    render,
    to_json,
    write_json,
)
from openfiles_bench.workload import METRICS, Figure


def uniform(name: str, rate: float) -> TargetResult:
    """A target whose every workload ran at ``rate`` (one unit per 1/rate seconds)."""
    return TargetResult(name, figures={key: Figure(rate, 1.0) for key in METRICS})


def results_with_engine(engine: TargetResult) -> dict[str, TargetResult]:
    return {
        "raw": uniform("raw", 100.0),
        "fuse": uniform("fuse", 1000.0),
        "rclone": uniform("rclone", 50.0),
        "s3fs": TargetResult("s3fs", "n/a", "not installed: apt-get install s3fs"),
        "openfiles": engine,
    }


def test_rounds_combine_into_the_median_of_each_figure() -> None:
    first, second, third = uniform("s3fs", 10.0), uniform("s3fs", 30.0), uniform("s3fs", 20.0)
    second.figures.pop("stat")
    second.errors["stat"] = "OSError: stale"
    third.figures.pop("stat")
    third.errors["stat"] = "OSError: gone"
    first.figures.pop("ls_cold")
    first.errors["ls_cold"] = "OSError: first"
    second.figures.pop("ls_cold")
    third.figures.pop("ls_cold")
    third.errors["ls_cold"] = "OSError: third"
    broken = TargetResult("s3fs", "failed", "mount timed out")
    out = combine([first, second, broken, third])
    assert out.status == "ok"
    assert out.figures["seq_read_cold"].rate == pytest.approx(20.0)  # of 10, 30, 20
    assert out.figures["stat"].rate == pytest.approx(10.0)  # the one round that measured it
    assert out.notes["rounds"]["seq_read_cold"] == [10.0, 30.0, 20.0]
    assert "ls_cold" not in out.figures and out.errors == {"ls_cold": "OSError: first"}
    assert out.notes["failed_rounds"] == ["failed: mount timed out"]
    even = combine([uniform("raw", 4.0), uniform("raw", 2.0)])
    assert even.figures["stat"].rate == pytest.approx(2.0)  # the lower median
    never = combine([broken, TargetResult("s3fs", "failed", "again")])
    assert (never.status, never.reason) == ("failed", "mount timed out")
    assert "rounds" not in combine([first]).notes


def test_the_report_shows_medians_and_the_spread() -> None:
    engine = combine([uniform("openfiles", 60.0), uniform("openfiles", 90.0),
                      uniform("openfiles", 75.0)])
    text = render(results_with_engine(engine))
    assert "Absolute figures (higher is better), the median of 3 rounds" in text
    assert "Spread over the rounds (lowest - highest)" in text
    assert "60 - 90" in text
    assert "Spread" not in render(results_with_engine(uniform("openfiles", 60.0)))


def test_ratios_divide_subject_by_each_anchor_that_ran() -> None:
    table = ratios(results_with_engine(uniform("openfiles", 200.0)))
    assert table["openfiles"]["raw"]["seq_read_cold"] == pytest.approx(2.0)
    assert table["openfiles"]["fuse"]["stat"] == pytest.approx(0.2)
    assert table["openfiles"]["rclone"]["create_4k"] == pytest.approx(4.0)
    assert "s3fs" not in table["openfiles"]  # it did not run
    assert "s3fs" not in table  # nor is it a subject
    assert "rclone" not in table["rclone"]


def test_goals_are_met_missed_or_unmeasured() -> None:
    engine = uniform("openfiles", 60.0)
    engine.figures["seq_read_cached"] = Figure(600.0, 1.0)  # 60% of the FUSE ceiling
    by_goal = {g["goal"]: g for g in goals(results_with_engine(engine))}
    cached = by_goal["cached sequential read >= 50% of the FUSE ceiling"]
    assert cached["met"] is True and cached["ratio"] == pytest.approx(0.6)
    cold = by_goal["cold sequential read >= 70% of raw GET"]
    assert cold["met"] is False and cold["ratio"] == pytest.approx(0.6)
    assert by_goal["small-file create >= rclone full cache"]["met"] is True
    s3fs = [g for g in by_goal.values() if g["anchor"] == "s3fs"]
    assert len(s3fs) == len(METRICS) and all(g["met"] is None for g in s3fs)


def test_report_shows_figures_ratios_goals_and_missing_targets() -> None:
    engine = TargetResult("openfiles", "n/a", "engine not available")
    text = render(results_with_engine(engine))
    assert "Absolute figures" in text
    assert "openfiles: n/a (engine not available)" in text
    assert "s3fs: n/a (not installed: apt-get install s3fs)" in text
    assert "rclone full relative to each anchor" in text
    assert "0.50x" in text  # rclone vs raw obstore
    assert "n/a: the engine has no figures in this run" in text
    for label, unit in METRICS.values():
        assert label in text and unit in text


def test_a_broken_workload_shows_as_an_error_with_its_reason() -> None:
    engine = uniform("openfiles", 10.0)
    del engine.figures["create_4k"]
    engine.errors["create_4k"] = "FileNotFoundError: f00051"
    results = results_with_engine(engine)
    text = render(results)
    assert "openfiles, create 4 KiB files, until close: FileNotFoundError: f00051" in text
    row = next(
        line for line in text.splitlines() if line.startswith("create 4 KiB files, until close")
    )
    assert row.split()[-1] == "error"
    goal = next(g for g in goals(results) if g["goal"].startswith("small-file create"))
    assert goal["met"] is None
    assert to_json(results, {})["targets"]["openfiles"]["errors"] == engine.errors


def test_report_marks_missed_goals() -> None:
    text = render(results_with_engine(uniform("openfiles", 10.0)))
    assert "[MISSED] cold sequential read >= 70% of raw GET (0.10x)" in text
    assert "openfiles relative to each anchor" in text


def test_json_round_trips_and_is_written_whole(tmp_path: Path) -> None:
    document = to_json(results_with_engine(uniform("openfiles", 5.0)), {"size": 1})
    path = tmp_path / "r.json"
    write_json(path, document)
    loaded = json.loads(path.read_text())
    assert loaded["schema"] == SCHEMA
    assert loaded["targets"]["openfiles"]["metrics"]["stat"]["value"] == pytest.approx(5.0)
    assert loaded["targets"]["s3fs"]["status"] == "n/a"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_plot_draws_a_png_or_says_why_not(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    why_not = plot(results_with_engine(uniform("openfiles", 5.0)), path)
    if why_not is None:
        assert path.read_bytes()[:4] == b"\x89PNG"
    else:
        assert why_not == "matplotlib is not installed"
        assert not path.exists()


def test_goals_pair_the_rounds_and_show_how_the_other_cached_mounts_fare() -> None:
    def rounds(name: str, cold: list[float]) -> TargetResult:
        out = []
        for rate in cold:
            one = uniform(name, 100.0)
            one.figures["seq_read_cold"] = Figure(rate, 1.0)
            out.append(one)
        return combine(out)

    results = {
        "raw": rounds("raw", [100.0, 50.0, 100.0]),
        "fuse": uniform("fuse", 1000.0),
        "rclone": rounds("rclone", [30.0, 20.0, 40.0]),
        "s3fs": rounds("s3fs", [60.0, 45.0, 50.0]),
        "openfiles": rounds("openfiles", [65.0, 40.0, 75.0]),
    }
    cold = {g["goal"]: g for g in goals(results)}["cold sequential read >= 70% of raw GET"]
    # medians 65 / 100: missed; round by round 0.65, 0.80, 0.75 of the same round's GET
    assert cold["met"] is False and cold["ratio"] == pytest.approx(0.65)
    assert cold["rounds_met"] == [2, 3]
    assert cold["peers"] == {"rclone": pytest.approx(0.3), "s3fs": pytest.approx(0.5)}
    s3fs = {g["goal"]: g for g in goals(results)}["sequential read, cold: faster than s3fs"]
    assert s3fs["rounds_met"] == [2, 3] and s3fs["peers"] == {}  # 65>60, 40<45, 75>50
    text = render(results)
    assert "[MISSED] cold sequential read >= 70% of raw GET (0.65x; met in 2 of 3 rounds)" in text
    assert "the other mounts with a disk cache: rclone full 0.30x, s3fs 0.50x" in text
    assert json.loads(json.dumps(to_json(results, {})))["goals"][1]["rounds_met"] == [2, 3]


def test_a_single_round_has_no_pairing() -> None:
    cold = goals(results_with_engine(uniform("openfiles", 60.0)))[1]
    assert cold["rounds_met"] is None
    assert "rounds)" not in render(results_with_engine(uniform("openfiles", 60.0)))


def test_the_report_shows_the_kernels_reclaim_of_each_round() -> None:
    rounds = []
    for seconds in (0.0, 1.25, 0.5):
        one = uniform("openfiles", 60.0)
        one.notes["reclaim_seconds"] = seconds
        rounds.append(one)
    engine = combine(rounds)
    assert engine.notes["reclaim_seconds"] == [0.0, 1.25, 0.5]
    text = render(results_with_engine(engine))
    assert "CPU seconds of the kernel's reclaim (DAMON) during each round" in text
    assert "  openfiles: 0.00 / 1.25 / 0.50" in text
    quiet = uniform("openfiles", 60.0)
    quiet.notes["reclaim_seconds"] = 0.0
    assert "reclaim" not in render(results_with_engine(quiet))
