"""Results over rounds and their JSON, from results built by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openfiles_bench.goal import goal_rows, rss_bound
from openfiles_bench.meter import GiB, Usage
from openfiles_bench.result import SCHEMA, TargetResult, combine, to_json, write_json
from openfiles_bench.workload import METRICS, Figure, Outcome


def uniform(name: str, rate: float) -> TargetResult:
    """A target whose every workload ran at ``rate`` (one unit per 1/rate seconds)."""
    return TargetResult(name, figures={key: Figure(rate, 1.0) for key in METRICS})


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
    assert out.rounds("seq_read_cold") == [10.0, 30.0, 20.0]
    assert "ls_cold" not in out.figures and out.errors == {"ls_cold": "OSError: first"}
    assert out.notes["failed_rounds"] == ["failed: mount timed out"]
    even = combine([uniform("raw", 4.0), uniform("raw", 2.0)])
    assert even.figures["stat"].rate == pytest.approx(2.0)  # the lower median
    never = combine([broken, TargetResult("s3fs", "failed", "again")])
    assert (never.status, never.reason) == ("failed", "mount timed out")
    assert "rounds" not in combine([first]).notes
    assert combine([first]).rounds("seq_read_cold") == [10.0]


def test_costs_keep_every_round_the_highest_peak_and_the_median_cpu() -> None:
    rounds = []
    for peak, cpu in ((100, 3.0), (300, 1.0), (200, 2.0)):
        run = Outcome(figures={"seq_read_cold": Figure(1, 1), "stat": Figure(10, 1)},
                      usage={"seq_read_cold": Usage(peak << 20, cpu, GiB, 1024),
                             "stat": Usage(peak << 20, cpu / 1000, 0, 10)},
                      notes={"get_shape": f"{peak}MiBx1"})
        rounds.append(TargetResult.of("openfiles", run))
    out = combine(rounds)
    assert len(out.usage["seq_read_cold"]) == 3
    assert out.peak_rss("seq_read_cold") == 300 << 20
    assert out.cpu("seq_read_cold") == (pytest.approx(2.0), "s/GiB")
    assert out.cpu("stat") == (pytest.approx(200.0), "us/op")  # 2 ms for 10 stats
    assert out.notes["get_shape"] == ["100MiBx1", "300MiBx1", "200MiBx1"]
    assert out.cpu("ls_cold") is None and out.peak_rss("ls_cold") is None
    bound = rss_bound({"openfiles": out})
    assert bound == {"bound_mib": 512, "peak_mib": 300.0, "workload": "seq_read_cold",
                     "over": [], "met": True}
    rounds[1].usage["stat"] = [Usage(600 << 20, 1.0, 0, 10)]
    over = rss_bound({"openfiles": combine(rounds)})
    assert over["met"] is False and over["over"] == ["stat"] and over["peak_mib"] == 600.0
    assert rss_bound({})["met"] is None


def test_json_round_trips_and_is_written_whole(tmp_path: Path) -> None:
    engine = uniform("openfiles", 5.0)
    engine.usage["seq_write"] = [Usage(64 << 20, 0.5, GiB, 1024)]
    results = {"openfiles": engine, "s3fs": TargetResult("s3fs", "n/a", "not installed"),
               "mount-s3": uniform("mount-s3", 1.0)}
    results["mount-s3"].unsupported["seq_write"] = "random write"
    document = to_json(results, {"size": 1}, goal_rows(results), rss_bound(results))
    path = tmp_path / "r.json"
    write_json(path, document)
    loaded = json.loads(path.read_text())
    assert loaded["schema"] == SCHEMA == "openfiles-bench/2"
    target = loaded["targets"]["openfiles"]
    assert target["metrics"]["stat"]["value"] == pytest.approx(5.0)
    assert target["metrics"]["stat"]["rounds"] == [pytest.approx(5.0)]
    assert target["usage"]["seq_write"]["peak_rss_mib"] == 64.0
    assert target["usage"]["seq_write"]["cpu"] == {"value": 0.5, "unit": "s/GiB"}
    assert loaded["targets"]["mount-s3"]["unsupported"] == {"seq_write": "random write"}
    assert loaded["targets"]["s3fs"]["status"] == "n/a"
    assert [g["metric"] for g in loaded["goals"]] == list(METRICS)
    assert loaded["rss_bound"]["peak_mib"] == 64.0
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
