"""The benchmark's workloads: what each one measures, its sizes, and how a figure is kept.

Every figure is a rate where higher is better (MiB/s, operations per second),
so that a ratio to another target above 1 always means "faster than it".
Each workload also checks what it got back (sizes, entry counts, the bytes of
random reads), so a file system that answers fast but wrong fails instead of
winning. The workloads themselves run in ``tree.py`` (through a mount) and
``raw.py`` (plain object-store calls, no FUSE).

Layout, relative to the mount root or the bucket prefix: ``src/big.bin``,
``src/rand.bin``, ``src/rand8.bin`` and ``src/par0.bin`` to ``src/par3.bin``
(``size`` bytes each, each read by one workload only, so that every read is
cold where it says so), ``src/files/`` (``files`` small files), and
``out/<target>/`` for what a target writes (emptied after each round).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openfiles_bench.bucket import Bucket, MiB, chunks
from openfiles_bench.meter import Meter, Usage

BIG = "src/big.bin"
RAND = "src/rand.bin"
RAND8 = "src/rand8.bin"
READERS = 4
PAR = [f"src/par{index}.bin" for index in range(READERS)]
FILES = "src/files"
SMALL = 4096
THREADS = 8
"""Threads of the parallel random-read workload."""

# key -> (label, unit); the order is the order of the table.
METRICS: dict[str, tuple[str, str]] = {
    "seq_read_cold": ("sequential read, cold", "MiB/s"),
    "seq_read_cached": ("sequential re-read, cached", "MiB/s"),
    "par_read": (f"{READERS} readers of {READERS} files, cold", "MiB/s"),
    "rand_read_4k": ("random 4 KiB reads, 1 thread", "reads/s"),
    "rand_read_4k_8t": (f"random 4 KiB reads, {THREADS} threads", "reads/s"),
    "create_4k": ("create 4 KiB files, until close", "files/s"),
    "create_4k_durable": ("create 4 KiB files, until in bucket", "files/s"),
    "ls_cold": ("ls -l, cold", "entries/s"),
    "ls_warm": ("ls -l, warm", "entries/s"),
    "stat": ("stat", "stats/s"),
    "seq_write": ("sequential write, until close", "MiB/s"),
    "seq_write_durable": ("sequential write, until in bucket", "MiB/s"),
    "seq_write_fsync": ("write + fsync, until close", "MiB/s"),
    "seq_write_fsync_durable": ("write + fsync, until in bucket", "MiB/s"),
}
DURABLE = frozenset(key for key in METRICS if key.endswith("_durable"))
"""The figures a target without a bucket behind it (the in-memory FS) cannot have."""

# What each workload asks of a file system beyond lookup, readdir, stat and
# read; a target that lacks one (MountSpec.lacks) gets "not supported" there.
OPERATIONS: dict[str, frozenset[str]] = {
    key: frozenset({"create", "sequential write", "mkdir"}) for key in METRICS
    if key.startswith(("seq_write", "create_4k"))
}
for _key in ("seq_write_fsync", "seq_write_fsync_durable"):
    OPERATIONS[_key] |= {"fsync"}


class WorkloadError(RuntimeError):
    """A workload saw wrong data (sizes, entries, bytes) from a target."""


@dataclass(frozen=True)
class Figure:
    """One measurement: ``amount`` units (MiB or operations) in ``seconds``."""

    amount: float
    seconds: float

    @property
    def rate(self) -> float:
        return self.amount / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class Plan:
    """Sizes of one run. ``block`` is the 1 MiB content pattern (bucket.py)."""

    size: int
    files: int
    random_reads: int
    stat_rounds: int
    block: bytes
    durable_timeout: float
    drop_caches: bool = False
    seed: int = 1
    stat_seconds: float = 10.0
    """The stat workload stops after the round that ends past this (at least one round)."""

    def names(self) -> list[str]:
        return [f"f{index:05d}" for index in range(self.files)]

    def offsets(self, seed: int | None = None) -> list[int]:
        """The random read offsets: 4 KiB aligned, the same for every target."""
        pages = max(1, self.size // SMALL)
        rng = random.Random(self.seed if seed is None else seed)
        return [rng.randrange(pages) * SMALL for _ in range(self.random_reads)]

    def expected(self, offset: int) -> bytes:
        """The SMALL bytes at ``offset``: cheap, since it runs inside the timed loop."""
        start = offset % MiB
        end = start + SMALL
        if end <= len(self.block):
            return self.block[start:end]
        return self.block[start:] + self.block[:end - len(self.block)]


def drop_page_cache() -> None:
    """Drop the kernel's clean page cache (root only), so 'cold' includes MinIO's disk."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3")


def timed(action: Callable[..., object], *args: Any) -> float:
    """Wall-clock seconds ``action(*args)`` took."""
    start = time.perf_counter()
    action(*args)
    return time.perf_counter() - start


def check_count(what: str, got: int, expected: int) -> None:
    if got != expected:
        raise WorkloadError(f"{what}: got {got}, expected {expected}")


def populate_bucket(bucket: Bucket, plan: Plan) -> None:
    """Put the source objects the read workloads use (untimed)."""
    for path in (BIG, RAND, RAND8, *PAR):
        bucket.put(path, chunks(plan.block, plan.size))
    for name in plan.names():
        bucket.put(f"{FILES}/{name}", plan.block[:SMALL])


def populate_tree(root: Path, plan: Plan) -> None:
    """Write the same source files through a mount (untimed; for the in-memory FS)."""
    (root / FILES).mkdir(parents=True, exist_ok=True)
    for path in (BIG, RAND, RAND8, *PAR):
        write_file(root / path, plan.block, plan.size)
    for name in plan.names():
        (root / FILES / name).write_bytes(plan.block[:SMALL])


def write_file(path: Path, block: bytes, size: int, fsync: bool = False) -> None:
    """Write ``size`` bytes of the pattern in 1 MiB ``write()``s to a new file; close it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for piece in chunks(block, size):
            os.write(fd, piece)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Outcome:
    """A target's figures, what each workload cost, and why any did not run or broke."""

    figures: dict[str, Figure] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    unsupported: dict[str, str] = field(default_factory=dict)
    """metric -> the operations the target lacks for it; such a workload is not run."""
    usage: dict[str, Usage] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    mounted: Callable[[], bool] | None = None
    """Is the target still mounted? Asked after each workload, when given."""
    meter: Meter | None = None
    """Measures the target's processes during each workload, when given."""

    def skip(self, keys: tuple[str, ...], lacks: frozenset[str]) -> bool:
        """True (and the keys marked not supported) when the target lacks what they need."""
        missing = sorted(set().union(*(OPERATIONS.get(k, frozenset()) for k in keys)) & lacks)
        for key in keys if missing else ():
            self.unsupported[key] = ", ".join(missing)
        return bool(missing)

    @contextmanager
    def step(self, *keys: str) -> Iterator[None]:
        """Run one workload. An exception marks its metrics not yet measured as
        failed, and the next workload runs: one broken operation must not hide
        the figures of the others. KeyboardInterrupt still ends the run.

        A workload after which the target is no longer mounted has no figures:
        whatever it did may have gone to the bare directory underneath, whose
        speed is the local disk's.
        """
        try:
            yield
        except Exception as exc:
            for key in keys:
                if key not in self.figures:
                    self.errors[key] = f"{type(exc).__name__}: {exc}"
        else:
            if self.mounted is not None and not self.mounted():
                for key in keys:
                    if self.figures.pop(key, None) is not None:
                        self.usage.pop(key, None)
                        self.errors[key] = "the file system was not mounted any more after this"

    @contextmanager
    def measured(self, keys: tuple[str, ...], moved: int, operations: float) -> Iterator[None]:
        """Record the target's cost of the ``with`` block under each of ``keys``."""
        if self.meter is None:
            yield
            return
        with self.meter.window() as window:
            yield
        for key in keys:
            self.usage[key] = Usage(window.peak_rss, window.cpu_seconds, moved, operations)
