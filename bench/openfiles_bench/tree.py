"""The workloads through a mounted file system, in a fixed order.

:func:`run_tree` runs each workload of ``workload.METRICS`` on the directory
where a target is mounted, checks what it read back, and, with a bucket
behind the mount, polls the bucket until written data is in it. Each
workload is timed by the wall clock; with a :class:`~openfiles_bench.meter.Meter`
its cost (peak RSS, CPU seconds of the target's processes) is recorded too.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from openfiles_bench.bucket import Bucket, MiB
from openfiles_bench.meter import Meter
from openfiles_bench.workload import (
    BIG,
    FILES,
    PAR,
    RAND,
    RAND8,
    SMALL,
    THREADS,
    Figure,
    Outcome,
    Plan,
    WorkloadError,
    check_count,
    drop_page_cache,
    timed,
    write_file,
)


@dataclass
class _Tree:
    root: Path
    out: str
    plan: Plan
    bucket: Bucket | None
    run: Outcome

    def cold(self) -> None:
        if self.plan.drop_caches:
            drop_page_cache()


def _forget_pages(fd: int) -> None:
    """Drop the kernel's clean page cache of one open file.

    Every read workload starts with this, so that it reaches the file system
    through FUSE whether or not that file system lets the kernel keep pages
    across opens (pyfuse3's default ``keep_cache`` does): "cached" then means
    the file system's own cache, the same for everyone.
    """
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _read_file(path: Path) -> int:
    buffer = bytearray(MiB)
    total = 0
    with open(path, "rb", buffering=0) as source:
        _forget_pages(source.fileno())
        while count := source.readinto(buffer):
            total += count
    return total


def _ls_long(directory: Path, expected: int) -> None:
    ls = subprocess.run(["ls", "-l", str(directory)], capture_output=True, text=True, check=False)
    if ls.returncode != 0:
        raise WorkloadError(f"ls -l failed: {ls.stderr.strip()}")
    entries = sum(1 for line in ls.stdout.splitlines() if not line.startswith("total "))
    if entries != expected:
        raise WorkloadError(f"ls -l {directory} showed {entries} entries, not {expected}")


def _read_random(path: Path, plan: Plan, offsets: list[int], threads: int) -> None:
    """pread 4 KiB at each offset, from ``threads`` threads sharing one descriptor."""
    fd = os.open(path, os.O_RDONLY)
    try:
        _forget_pages(fd)
        # Tell every kernel client the same thing: no read-ahead for this file.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)

        def share(first: int) -> None:
            for offset in offsets[first::threads]:
                if os.pread(fd, SMALL, offset) != plan.expected(offset):
                    raise WorkloadError(f"random read at {offset} of {path.name} "
                                        "returned wrong bytes")

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(share, range(threads)))
    finally:
        os.close(fd)


def _ls(t: _Tree) -> None:
    t.cold()
    for key in ("ls_cold", "ls_warm"):
        with t.run.measured((key,), 0, t.plan.files):
            seconds = timed(lambda: _ls_long(t.root / FILES, t.plan.files))
        t.run.figures[key] = Figure(t.plan.files, seconds)


def _stat(t: _Tree) -> None:
    paths = [t.root / FILES / name for name in t.plan.names()]
    rounds = 0

    def stat_all() -> None:
        nonlocal rounds
        # A target that sends every stat to the bucket takes minutes for all
        # the rounds; the rate of the rounds done in stat_seconds is as good.
        deadline = time.perf_counter() + t.plan.stat_seconds
        while rounds < t.plan.stat_rounds and (not rounds or time.perf_counter() < deadline):
            for path in paths:
                if path.stat().st_size != SMALL:
                    raise WorkloadError(f"stat {path}: size is not {SMALL}")
            rounds += 1

    with t.run.measured(("stat",), 0, 0):
        seconds = timed(stat_all)
    t.run.figures["stat"] = Figure(len(paths) * rounds, seconds)
    if "stat" in t.run.usage:  # the count is known only now
        t.run.usage["stat"] = replace(t.run.usage["stat"], operations=len(paths) * rounds)


def _random(key: str, path: str, seed: int, threads: int) -> Callable[[_Tree], None]:
    def workload(t: _Tree) -> None:
        t.cold()
        offsets = t.plan.offsets(seed)
        with t.run.measured((key,), len(offsets) * SMALL, len(offsets)):
            seconds = timed(lambda: _read_random(t.root / path, t.plan, offsets, threads))
        t.run.figures[key] = Figure(len(offsets), seconds)

    return workload


def _sequential(t: _Tree) -> None:
    for key in ("seq_read_cold", "seq_read_cached"):
        t.cold()  # before the re-read too: the target's disk cache is read from disk
        with t.run.measured((key,), t.plan.size, t.plan.size / MiB):
            seconds = timed(lambda: check_count(f"read {BIG}", _read_file(t.root / BIG),
                                                t.plan.size))
        t.run.figures[key] = Figure(t.plan.size / MiB, seconds)


def _parallel(t: _Tree) -> None:
    t.cold()
    start = threading.Barrier(len(PAR))

    def reader(path: str) -> int:
        start.wait()
        return _read_file(t.root / path)

    moved = t.plan.size * len(PAR)
    with t.run.measured(("par_read",), moved, moved / MiB):
        began = time.perf_counter()
        with ThreadPoolExecutor(len(PAR)) as pool:
            got = list(pool.map(reader, PAR))
        seconds = time.perf_counter() - began
    for path, count in zip(PAR, got, strict=True):
        check_count(f"read {path}", count, t.plan.size)
    t.run.figures["par_read"] = Figure(moved / MiB, seconds)


def _absent(t: _Tree, path: str) -> None:
    """A polled key that already holds the right size would be 'durable' at once."""
    if t.bucket is not None and t.bucket.size(path) is not None:
        raise WorkloadError(f"{path} is in the bucket before the write: a stale object")


def _writer(name: str, fsync: bool) -> Callable[[_Tree], None]:
    key = "seq_write_fsync" if fsync else "seq_write"

    def workload(t: _Tree) -> None:
        (t.root / t.out).mkdir(parents=True, exist_ok=True)
        path, plan = f"{t.out}/{name}", t.plan
        _absent(t, path)
        keys = (key, f"{key}_durable") if t.bucket else (key,)
        with t.run.measured(keys, plan.size, plan.size / MiB):
            deadline = time.monotonic() + plan.durable_timeout
            began = time.monotonic()
            write_file(t.root / path, plan.block, plan.size, fsync=fsync)
            t.run.figures[key] = Figure(plan.size / MiB, time.monotonic() - began)
            if t.bucket is not None:
                seen = t.bucket.wait_object(path, plan.size, deadline)
                t.run.figures[f"{key}_durable"] = Figure(plan.size / MiB, seen - began)

    return workload


def _creates(t: _Tree) -> None:
    directory, small = t.root / t.out / "files", t.plan.block[:SMALL]
    directory.mkdir(parents=True, exist_ok=True)
    if t.bucket is not None and set(t.bucket.sizes_under(f"{t.out}/files")) & set(t.plan.names()):
        raise WorkloadError(f"{t.out}/files holds the files before the creates: stale objects")
    keys = ("create_4k", "create_4k_durable") if t.bucket else ("create_4k",)

    def create_all() -> None:
        for name in t.plan.names():
            fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, small)
            finally:
                os.close(fd)

    with t.run.measured(keys, t.plan.files * SMALL, t.plan.files):
        deadline = time.monotonic() + t.plan.durable_timeout
        began = time.monotonic()
        t.run.figures["create_4k"] = Figure(t.plan.files, timed(create_all))
        if t.bucket is not None:
            seen = t.bucket.wait_files(f"{t.out}/files", t.plan.names(), SMALL, deadline)
            t.run.figures["create_4k_durable"] = Figure(t.plan.files, seen - began)


# (the metrics a workload measures, the workload), in the order they run.
WORKLOADS: list[tuple[tuple[str, ...], Callable[[_Tree], None]]] = [
    (("ls_cold", "ls_warm"), _ls),
    (("stat",), _stat),
    (("rand_read_4k",), _random("rand_read_4k", RAND, 1, 1)),
    (("rand_read_4k_8t",), _random("rand_read_4k_8t", RAND8, 2, THREADS)),
    (("seq_read_cold", "seq_read_cached"), _sequential),
    (("par_read",), _parallel),
    (("seq_write", "seq_write_durable"), _writer("big.bin", fsync=False)),
    (("seq_write_fsync", "seq_write_fsync_durable"), _writer("big-fsync.bin", fsync=True)),
    (("create_4k", "create_4k_durable"), _creates),
]


def run_tree(
    root: Path,
    target: str,
    plan: Plan,
    bucket: Bucket | None,
    mounted: Callable[[], bool] | None = None,
    meter: Meter | None = None,
    lacks: frozenset[str] = frozenset(),
) -> Outcome:
    """All workloads through the file system mounted at ``root``, in a fixed order.

    With a ``bucket``, also measure the time until written data is in it
    (polling from the moment the write started). ``mounted`` is checked after
    each workload (see :meth:`Outcome.step`); a workload that needs one of the
    operations in ``lacks`` is not run and is marked not supported.
    """
    run = Outcome(mounted=mounted, meter=meter)
    t = _Tree(root, f"out/{target}", plan, bucket, run)
    for keys, workload in WORKLOADS:
        if run.skip(keys, lacks):
            continue
        with run.step(*keys):
            workload(t)
    return run
