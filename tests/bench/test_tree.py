"""The workloads through a real mount check what a target returns: fast but wrong fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from openfiles_bench.bucket import MiB, pattern_block
from openfiles_bench.meter import Meter
from openfiles_bench.target import Mount, memfs_spec
from openfiles_bench.tree import run_tree
from openfiles_bench.workload import (
    BIG,
    DURABLE,
    FILES,
    METRICS,
    PAR,
    RAND,
    SMALL,
    Plan,
    populate_tree,
)

# 2 MiB and a page, 4 files, 30 random reads, 2 stat rounds, 5 s to be durable.
PLAN = Plan(2 * MiB + SMALL, 4, 30, 2, pattern_block(), 5)


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """An in-memory FUSE mount holding the benchmark's source files, and its pid."""
    mountpoint = tmp_path / "mnt"
    with Mount(memfs_spec(mountpoint), mountpoint, tmp_path / "log", None) as mount:
        mount.start(read_ahead_kib=0)
        populate_tree(mountpoint, PLAN)
        assert mount.process is not None
        yield mountpoint, mount.process.pid


@pytest.fixture
def tree(mounted: tuple[Path, int]) -> Path:
    return mounted[0]


@pytest.mark.fuse
def test_a_correct_tree_yields_every_figure_but_durability(mounted: tuple[Path, int]) -> None:
    tree, pid = mounted
    run = run_tree(tree, "fuse", PLAN, bucket=None, meter=Meter(pid))
    assert run.errors == {} and run.unsupported == {}
    figures = run.figures
    assert set(figures) == set(METRICS) - DURABLE
    assert figures["stat"].amount == PLAN.files * PLAN.stat_rounds
    assert figures["seq_read_cold"].amount == PLAN.size / MiB
    assert figures["par_read"].amount == len(PAR) * PLAN.size / MiB
    assert figures["rand_read_4k_8t"].amount == PLAN.random_reads
    assert all(f.seconds > 0 and f.rate > 0 for f in figures.values())
    assert (tree / "out" / "fuse" / "big.bin").stat().st_size == PLAN.size
    assert (tree / "out" / "fuse" / "big-fsync.bin").stat().st_size == PLAN.size
    assert len(list((tree / "out" / "fuse" / "files").iterdir())) == PLAN.files
    # Each figure has the cost of the file system's process during it.
    assert set(run.usage) == set(figures)
    # The in-memory FS holds the 7 source files: its RSS shows them.
    assert all(u.peak_rss > 7 * PLAN.size for u in run.usage.values())
    assert run.usage["par_read"].moved == len(PAR) * PLAN.size
    assert run.usage["stat"].moved == 0 and run.usage["stat"].operations == figures["stat"].amount
    assert all(u.cpu_seconds >= 0 for u in run.usage.values())


@pytest.mark.fuse
def test_stats_stop_after_their_time(tree: Path) -> None:
    plan = Plan(size=PLAN.size, files=PLAN.files, random_reads=1, stat_rounds=10**9,
                block=PLAN.block, durable_timeout=5, stat_seconds=0.2)
    run = run_tree(tree, "fuse", plan, bucket=None)
    count = run.figures["stat"].amount
    assert count % plan.files == 0 and 0 < count < 10**9


@pytest.mark.fuse
def test_a_target_lacking_fsync_gets_no_fsync_figures(tree: Path) -> None:
    run = run_tree(tree, "fuse", PLAN, bucket=None, lacks=frozenset({"fsync", "rename"}))
    assert run.unsupported == {"seq_write_fsync": "fsync", "seq_write_fsync_durable": "fsync"}
    assert "seq_write_fsync" not in run.figures and "seq_write_fsync" not in run.errors
    assert not (tree / "out" / "fuse" / "big-fsync.bin").exists()
    assert "seq_write" in run.figures


@pytest.mark.fuse
def test_wrong_bytes_fail_the_random_reads_only(tree: Path) -> None:
    with open(tree / RAND, "r+b") as f:
        f.write(bytes(PLAN.size))
    run = run_tree(tree, "fuse", PLAN, bucket=None)
    assert list(run.errors) == ["rand_read_4k"]
    assert "wrong bytes" in run.errors["rand_read_4k"]
    assert "rand_read_4k" not in run.figures and "rand_read_4k_8t" in run.figures


@pytest.mark.fuse
def test_a_short_file_fails_its_reads(tree: Path) -> None:
    with open(tree / BIG, "r+b") as f:
        f.truncate(PLAN.size - 1)
    with open(tree / PAR[2], "r+b") as f:
        f.truncate(PLAN.size - 1)
    run = run_tree(tree, "fuse", PLAN, bucket=None)
    assert set(run.errors) == {"seq_read_cold", "seq_read_cached", "par_read"}
    assert "read src/big.bin" in run.errors["seq_read_cold"]
    assert "read src/par2.bin" in run.errors["par_read"]
    assert "create_4k" in run.figures


@pytest.mark.fuse
def test_a_missing_entry_fails_the_listing_and_the_stats(tree: Path) -> None:
    (tree / FILES / "f00000").unlink()
    run = run_tree(tree, "fuse", PLAN, bucket=None)
    assert set(run.errors) == {"ls_cold", "ls_warm", "stat"}
    assert "entries" in run.errors["ls_cold"]
    assert "FileNotFoundError" in run.errors["stat"]


@pytest.mark.fuse
def test_an_unreadable_tree_says_what_ls_said(tree: Path) -> None:
    for name in PLAN.names():
        (tree / FILES / name).unlink()
    (tree / FILES).rmdir()
    run = run_tree(tree, "fuse", PLAN, bucket=None)
    assert "ls -l failed: ls: cannot access" in run.errors["ls_cold"]


def test_figures_taken_after_the_mount_vanished_are_discarded(tmp_path: Path) -> None:
    # A file system unmounted from outside mid-run leaves the bare directory
    # underneath: whatever is measured there is the local disk, not the target.
    populate_tree(tmp_path, PLAN)
    run = run_tree(tmp_path, "gone", PLAN, bucket=None, mounted=lambda: False)
    assert run.figures == {}
    assert set(run.errors) == set(METRICS) - DURABLE
    assert all("not mounted any more" in why for why in run.errors.values())
