"""The workloads' definitions: offsets, steps, what each one needs of a file system."""

from __future__ import annotations

import pytest

from openfiles_bench.bucket import MiB, pattern_block
from openfiles_bench.workload import DURABLE, METRICS, OPERATIONS, SMALL, Figure, Outcome, Plan

PLAN = Plan(
    size=2 * MiB + SMALL,
    files=4,
    random_reads=30,
    stat_rounds=2,
    block=pattern_block(),
    durable_timeout=5,
)


def test_random_offsets_are_aligned_repeatable_and_inside_the_file() -> None:
    offsets = PLAN.offsets()
    assert offsets == PLAN.offsets()
    assert len(offsets) == PLAN.random_reads
    assert all(o % SMALL == 0 and o + SMALL <= PLAN.size for o in offsets)
    assert PLAN.offsets(2) != offsets  # the 8-thread reads go elsewhere
    # The expected bytes wrap around the 1 MiB pattern like the files do.
    content = (PLAN.block * 3)[: PLAN.size]
    assert all(PLAN.expected(o) == content[o : o + SMALL] for o in offsets)
    pattern = PLAN.block * 2
    for odd in (len(PLAN.block) - 100, len(PLAN.block) - SMALL, 12345):  # across the wrap too
        assert PLAN.expected(odd) == pattern[odd % len(PLAN.block):][:SMALL]


def test_every_durable_figure_has_its_until_close_twin() -> None:
    assert DURABLE == {"create_4k_durable", "seq_write_durable", "seq_write_fsync_durable"}
    assert all(key.removesuffix("_durable") in METRICS for key in DURABLE)
    assert OPERATIONS["seq_write_fsync"] >= {"fsync", "sequential write"}
    assert "fsync" not in OPERATIONS["seq_write"]
    assert "seq_read_cold" not in OPERATIONS  # reads need nothing special


def test_a_workload_that_needs_a_missing_operation_is_not_supported() -> None:
    run = Outcome()
    assert run.skip(("seq_write_fsync", "seq_write_fsync_durable"), frozenset({"fsync", "rename"}))
    assert run.unsupported == {"seq_write_fsync": "fsync", "seq_write_fsync_durable": "fsync"}
    assert not run.skip(("seq_write",), frozenset({"fsync", "rename"}))
    assert not run.skip(("seq_read_cold",), frozenset({"fsync"}))
    assert set(run.unsupported) == {"seq_write_fsync", "seq_write_fsync_durable"}


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


def test_without_a_meter_nothing_is_measured() -> None:
    run = Outcome()
    with run.measured(("a",), 10, 1):
        pass
    assert run.usage == {}
