"""``openfiles bench`` end to end, in its tiniest mode, against the real anchors.

These tests check the structure of the output and that every figure is a
positive number. They never assert a speed: timing belongs to the benchmark
itself, not to the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fixtures.minio import Bucket
from fixtures.prereq import fuse_mounts, tool
from openfiles_bench.cli import parse_size
from openfiles_bench.result import SCHEMA, TARGETS
from openfiles_bench.target import ANCHORS, engine_available
from openfiles_bench.workload import DURABLE, METRICS

TINY = ["--size", "4MiB", "--files", "5", "--random-reads", "20", "--stat-rounds", "1"]
TINY += ["--durable-timeout", "120"]
# Peers that are measured, not tested: a workload they get wrong is in their results.
THIRD_PARTY = {"rclone", "s3fs", "mount-s3", "mount-s3-cache"}


def bench(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    results = tmp_path / "results.json"
    argv = [sys.executable, "-m", "openfiles_cli", "bench", *TINY, "--json", str(results)]
    argv += ["--workdir", str(tmp_path), "--minio", str(tool("minio")), *args]
    run = subprocess.run(
        argv, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path, check=False
    )
    assert run.returncode == 0, run.stderr
    return run, json.loads(results.read_text())


def expected_status(name: str) -> str:
    if name in {"rclone", "s3fs"}:
        return "ok" if shutil.which(name) else "n/a"
    if name == "openfiles":
        return "ok" if engine_available() is None else "n/a"
    if name.startswith("mount-s3"):  # prebuilt beside the repository, or n/a
        return "ok" if (ANCHORS / "mount-s3").is_file() else "n/a"
    return "ok"


def assert_positive_figures(name: str, target: dict[str, Any]) -> None:
    """Every workload has a positive figure and a cost; a peer may instead report an error.

    The third-party file systems are measured, not tested: a workload they get
    wrong must show up as an error in the results, not fail this test.
    """
    wanted = set(METRICS) - DURABLE if name == "fuse" else set(METRICS)
    wanted -= set(target["unsupported"])
    if name in THIRD_PARTY:
        assert all(isinstance(why, str) and why for why in target["errors"].values())
        wanted -= set(target["errors"])
    else:
        assert target["errors"] == {}, target["errors"]
    assert set(target["metrics"]) == wanted, name
    for key, metric in target["metrics"].items():
        assert metric["unit"] == METRICS[key][1]
        assert metric["value"] > 0, (name, key)
        assert metric["seconds"] > 0, (name, key)
        assert metric["amount"] > 0, (name, key)
        assert metric["rounds"] == [metric["value"]]
    assert set(target["usage"]) == wanted, name
    for key, usage in target["usage"].items():
        assert usage["peak_rss_mib"] > 0, (name, key)
        assert usage["cpu"]["unit"] in {"s/GiB", "us/op"} and usage["cpu"]["value"] >= 0


def no_leftovers(tmp_path: Path) -> None:
    """No mount and no process (MinIO, a FUSE server) of this run is left."""
    assert not [p for p in fuse_mounts() if p.startswith(str(tmp_path))]
    ours = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(tmp_path).encode() in cmdline:
            ours.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    assert ours == []


def test_sizes_parse_in_binary_units() -> None:
    assert parse_size("4096") == 4096
    assert parse_size("64MiB") == 64 << 20
    assert parse_size("1GiB") == parse_size("1G") == parse_size("1gib") == 1 << 30
    assert parse_size("1.5GiB") == 3 << 29
    assert parse_size("8k") == 8192
    for bad in ("", "abc", "1KiB", "12XB", "-5M", "3 GiBs"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)


def test_unknown_target_is_refused(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "openfiles_cli", "bench", "--targets", "raw,nfs"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 2
    assert "nfs" in run.stderr
    assert not (tmp_path / "openfiles-bench.json").exists()


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_bad_stat_time_is_refused(tmp_path: Path, value: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "openfiles_cli", "bench", "--stat-seconds", value],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
    )
    assert run.returncode == 2 and "--stat-seconds" in run.stderr
    assert not (tmp_path / "openfiles-bench.json").exists()


@pytest.mark.s3
def test_repeated_rounds_report_medians_and_every_round(tmp_path: Path) -> None:
    run, doc = bench(tmp_path, "--targets", "raw", "--repeat", "3")
    assert doc["options"]["repeat"] == 3
    raw = doc["targets"]["raw"]
    assert set(raw["notes"]["rounds"]) == set(METRICS)
    for key, rates in raw["notes"]["rounds"].items():
        assert len(rates) == 3 and all(r > 0 for r in rates)
        assert raw["metrics"][key]["value"] == sorted(rates)[1]
    assert run.stderr.count("running raw (round") == 3
    assert len(raw["notes"]["seconds"]) == 3 and all(s > 0 for s in raw["notes"]["seconds"])
    assert "the median of 3 rounds" in run.stdout
    no_leftovers(tmp_path)


def test_rounds_run_in_rotated_turns(tmp_path: Path) -> None:
    run, _ = bench(tmp_path, "--targets", "fuse,raw", "--repeat", "2")
    order = re.findall(r"running (\w+) \(round (\d) of 2\)", run.stderr)
    assert order == [("fuse", "1"), ("raw", "1"), ("raw", "2"), ("fuse", "2")]
    no_leftovers(tmp_path)


def test_an_unwritable_results_path_is_refused_before_running(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "openfiles_cli",
            "bench",
            *TINY,
            "--targets",
            "fuse",
            "--json",
            str(tmp_path / "missing" / "results.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 2
    assert "cannot write" in run.stderr and "missing/results.json" in run.stderr


@pytest.mark.fuse
@pytest.mark.root
@pytest.mark.s3
def test_every_target_reports_positive_figures(tmp_path: Path) -> None:
    run, doc = bench(tmp_path, "--plot", str(tmp_path / "plot.png"))

    assert doc["schema"] == SCHEMA
    assert list(doc["targets"]) == list(TARGETS)
    assert doc["options"]["size"] == 4 << 20 and doc["options"]["files"] == 5
    assert len(doc["options"]["load_average"]["start"]) == 3
    for name, target in doc["targets"].items():
        assert target["status"] == expected_status(name), (name, target["reason"])
        if target["status"] == "ok":
            assert_positive_figures(name, target)
        else:
            assert target["reason"] and target["metrics"] == {}
    if expected_status("openfiles") == "n/a":
        assert doc["targets"]["openfiles"]["reason"] == "engine not available"
        assert "openfiles: n/a (engine not available)" in run.stdout
    # The kernel read-ahead trick applied to every FUSE mount (we are root).
    for name in set(TARGETS) - {"raw"}:
        if doc["targets"][name]["status"] == "ok":
            assert doc["targets"][name]["notes"]["read_ahead_kb"] == 1024
    # One goal row per workload, judged wherever the engine and a peer have figures.
    assert [g["metric"] for g in doc["goals"]] == list(METRICS)
    engine_ok = doc["targets"]["openfiles"]["status"] == "ok"
    for goal in doc["goals"]:
        assert (goal["met"] is not None) == (engine_ok and goal["best_peer"] is not None)
        assert set(goal["ceilings"]) <= {"raw", "fuse"}
    assert doc["targets"]["raw"]["notes"]["get_shape"] in doc["targets"]["raw"]["notes"][
        "get_shapes"]
    assert (doc["rss_bound"]["met"] is None) == (not engine_ok)
    assert "Goal (issue 17)" in run.stdout and "OpenFiles's peak RSS" in run.stdout

    for label, _ in METRICS.values():
        assert label in run.stdout
    for label in TARGETS.values():
        assert label in run.stdout
    if (tmp_path / "plot.png").exists():
        assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "plot: skipped (matplotlib is not installed)" in run.stdout
    no_leftovers(tmp_path)


@pytest.mark.fuse
@pytest.mark.root
@pytest.mark.s3
def test_given_endpoint_keeps_secrets_out_and_cleans_the_bucket(
    tmp_path: Path, s3_bucket: Bucket
) -> None:
    env = {**os.environ, **s3_bucket.env}
    targets = "raw,rclone,s3fs" if shutil.which("rclone") and shutil.which("s3fs") else "raw"
    if expected_status("mount-s3") == "ok":
        targets += ",mount-s3"
    run, doc = bench(
        tmp_path,
        "--endpoint",
        s3_bucket.endpoint,
        "--bucket",
        s3_bucket.name,
        "--targets",
        targets,
        env=env,
    )

    assert list(doc["targets"]) == targets.split(",")
    for name, target in doc["targets"].items():
        assert target["status"] == "ok", (name, target["reason"])
        assert_positive_figures(name, target)
    assert doc["options"]["endpoint"] == s3_bucket.endpoint
    secret = s3_bucket.server.secret_key
    everything = run.stdout + run.stderr + (tmp_path / "results.json").read_text()
    assert secret not in everything
    assert s3_bucket.keys() == []
    no_leftovers(tmp_path)


def start_bench_and_wait_for_a_mount(tmp_path: Path) -> subprocess.Popen[str]:
    """A bench whose FUSE target is busy (a large in-memory file) once this returns."""
    argv = [sys.executable, "-m", "openfiles_cli", "bench", *TINY, "--targets", "fuse,raw"]
    argv += ["--json", str(tmp_path / "results.json"), "--workdir", str(tmp_path)]
    argv += ["--minio", str(tool("minio"))]
    argv[argv.index("4MiB")] = "512MiB"
    # Ctrl-C as in a terminal: a suite started in the background by a shell without
    # job control inherits SIGINT ignored, and Python then never installs its handler.
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 300
    while not [p for p in fuse_mounts() if p.startswith(str(tmp_path))]:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the FUSE target never mounted: {process.communicate()}")
        time.sleep(0.05)
    return process


@pytest.mark.fuse
@pytest.mark.root
@pytest.mark.s3
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_unmounts_and_stops_everything(tmp_path: Path, signum: int) -> None:
    process = start_bench_and_wait_for_a_mount(tmp_path)
    try:
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert not (tmp_path / "results.json").exists()
    no_leftovers(tmp_path)


@pytest.mark.fuse
@pytest.mark.root
@pytest.mark.s3
def test_a_killed_bench_takes_its_children_along(tmp_path: Path) -> None:
    process = start_bench_and_wait_for_a_mount(tmp_path)
    process.kill()
    process.communicate(timeout=60)
    # The children got SIGTERM from the kernel when their parent died; give
    # them the moment they need to unmount and exit.
    deadline = time.monotonic() + 60
    while True:
        try:
            no_leftovers(tmp_path)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
