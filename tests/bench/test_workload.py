"""The workloads check what a target returns: fast but wrong is a failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from openfiles_bench.bucket import MiB, pattern_block
from openfiles_bench.target import Mount, memfs_spec
from openfiles_bench.workload import (
    BIG,
    FILES,
    METRICS,
    RAND,
    SMALL,
    Figure,
    Outcome,
    Plan,
    populate_tree,
    run_tree,
)

PLAN = Plan(
    size=2 * MiB + SMALL,
    files=4,
    random_reads=30,
    stat_rounds=2,
    block=pattern_block(),
    durable_timeout=5,
)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    """An in-memory FUSE mount holding the benchmark's source files."""
    mountpoint = tmp_path / "mnt"
    with Mount(memfs_spec(mountpoint), mountpoint, tmp_path / "log", None) as mount:
        mount.start(read_ahead_kib=0)
        populate_tree(mountpoint, PLAN)
        yield mountpoint


def test_random_offsets_are_aligned_repeatable_and_inside_the_file() -> None:
    offsets = PLAN.offsets()
    assert offsets == PLAN.offsets()
    assert len(offsets) == PLAN.random_reads
    assert all(o % SMALL == 0 and o + SMALL <= PLAN.size for o in offsets)
    # The expected bytes wrap around the 1 MiB pattern like the files do.
    content = (PLAN.block * 3)[: PLAN.size]
    assert all(PLAN.expected(o) == content[o : o + SMALL] for o in offsets)
    pattern = PLAN.block * 2
    for odd in (len(PLAN.block) - 100, len(PLAN.block) - SMALL, 12345):  # across the wrap too
        assert PLAN.expected(odd) == pattern[odd % len(PLAN.block):][:SMALL]


@pytest.mark.fuse
def test_a_correct_tree_yields_every_figure_but_durability(tree: Path) -> None:
    run = run_tree(tree, "fuse", PLAN, bucket=None)
    assert run.errors == {}
    figures = run.figures
    assert set(figures) == set(METRICS) - {"seq_write_durable", "create_4k_durable"}
    assert figures["stat"].amount == PLAN.files * PLAN.stat_rounds
    assert figures["seq_read_cold"].amount == PLAN.size / MiB
    assert all(f.seconds > 0 and f.rate > 0 for f in figures.values())
    assert (tree / "out" / "fuse" / "big.bin").stat().st_size == PLAN.size
    assert len(list((tree / "out" / "fuse" / "files").iterdir())) == PLAN.files


@pytest.mark.fuse
def test_wrong_bytes_fail_the_random_reads_only(tree: Path) -> None:
    with open(tree / RAND, "r+b") as f:
        f.write(bytes(PLAN.size))
    run = run_tree(tree, "fuse", PLAN, bucket=None)
    assert list(run.errors) == ["rand_read_4k"]
    assert "wrong bytes" in run.errors["rand_read_4k"]
    assert "rand_read_4k" not in run.figures and "seq_read_cold" in run.figures


@pytest.mark.fuse
def test_a_short_file_fails_both_sequential_reads(tree: Path) -> None:
    with open(tree / BIG, "r+b") as f:
        f.truncate(PLAN.size - 1)
    run = run_tree(tree, "fuse", PLAN, bucket=None)
    assert set(run.errors) == {"seq_read_cold", "seq_read_cached"}
    assert "read src/big.bin" in run.errors["seq_read_cold"]
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


def test_a_step_records_only_what_it_did_not_measure() -> None:
    run = Outcome()
    with run.step("a", "b"):
        run.figures["a"] = Figure(1, 1)
        raise OSError(5, "I/O error")
    with run.step("c"):
        run.figures["c"] = Figure(2, 1)
    assert run.errors == {"b": "OSError: [Errno 5] I/O error"}
    assert set(run.figures) == {"a", "c"}
    with pytest.raises(KeyboardInterrupt), run.step("d"):
        raise KeyboardInterrupt


def test_figures_taken_after_the_mount_vanished_are_discarded(tmp_path: Path) -> None:
    # A file system unmounted from outside mid-run leaves the bare directory
    # underneath: whatever is measured there is the local disk, not the target.
    populate_tree(tmp_path, PLAN)
    run = run_tree(tmp_path, "gone", PLAN, bucket=None, mounted=lambda: False)
    assert run.figures == {}
    assert set(run.errors) == set(METRICS) - {"seq_write_durable", "create_4k_durable"}
    assert all("not mounted any more" in why for why in run.errors.values())
