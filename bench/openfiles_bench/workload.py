"""The benchmark's workloads, run against a mounted directory or the raw bucket.

Every figure is a rate where higher is better (MiB/s, operations per second),
so that a ratio to an anchor above 1 always means "faster than the anchor".
Each workload also checks what it got back (sizes, entry counts, the bytes of
random reads), so a file system that answers fast but wrong fails instead of
winning.

Layout, relative to the mount root or the bucket prefix:
``src/big.bin`` and ``src/rand.bin`` (``size`` bytes each), ``src/files/``
(``files`` small files), and ``out/<target>/`` for what a target writes.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from openfiles_bench.bucket import Bucket, MiB, chunks

BIG = "src/big.bin"
RAND = "src/rand.bin"
FILES = "src/files"
SMALL = 4096

# key -> (label, unit); the order is the order of the table.
METRICS: dict[str, tuple[str, str]] = {
    "seq_read_cold": ("sequential read, cold", "MiB/s"),
    "seq_read_cached": ("sequential read, cached", "MiB/s"),
    "seq_write": ("sequential write, until close", "MiB/s"),
    "seq_write_durable": ("sequential write, until in bucket", "MiB/s"),
    "rand_read_4k": ("random 4 KiB reads", "reads/s"),
    "create_4k": ("create 4 KiB files, until close", "files/s"),
    "create_4k_durable": ("create 4 KiB files, until in bucket", "files/s"),
    "ls_cold": ("ls -l, cold", "entries/s"),
    "ls_warm": ("ls -l, warm", "entries/s"),
    "stat": ("stat", "stats/s"),
}


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

    def names(self) -> list[str]:
        return [f"f{index:05d}" for index in range(self.files)]

    def offsets(self) -> list[int]:
        """The random read offsets: 4 KiB aligned, the same for every target."""
        pages = max(1, self.size // SMALL)
        rng = random.Random(self.seed)
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


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def populate_bucket(bucket: Bucket, plan: Plan) -> None:
    """Put the source objects the read workloads use (untimed)."""
    for path in (BIG, RAND):
        bucket.put(path, chunks(plan.block, plan.size))
    for name in plan.names():
        bucket.put(f"{FILES}/{name}", plan.block[:SMALL])


def populate_tree(root: Path, plan: Plan) -> None:
    """Write the same source files through a mount (untimed; for the in-memory FS)."""
    (root / FILES).mkdir(parents=True, exist_ok=True)
    for path in (BIG, RAND):
        _write_file(root / path, plan.block, plan.size)
    for name in plan.names():
        (root / FILES / name).write_bytes(plan.block[:SMALL])


def _write_file(path: Path, block: bytes, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for piece in chunks(block, size):
            os.write(fd, piece)
    finally:
        os.close(fd)


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


def _check_count(what: str, got: int, expected: int) -> None:
    if got != expected:
        raise WorkloadError(f"{what}: got {got}, expected {expected}")


@dataclass
class Outcome:
    """The figures of a target's workloads, and the error of each one that broke."""

    figures: dict[str, Figure] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    mounted: Callable[[], bool] | None = None
    """Is the target still mounted? Asked after each workload, when given."""

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
                        self.errors[key] = "the file system was not mounted any more after this"


def _create_files(directory: Path, plan: Plan) -> None:
    small = plan.block[:SMALL]
    for name in plan.names():
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, small)
        finally:
            os.close(fd)


def _stat_files(paths: list[Path], rounds: int) -> None:
    for _ in range(rounds):
        for path in paths:
            if path.stat().st_size != SMALL:
                raise WorkloadError(f"stat {path}: size is not {SMALL}")


def _read_random(path: Path, plan: Plan) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        _forget_pages(fd)
        # Tell every kernel client the same thing: no read-ahead for this file.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for offset in plan.offsets():
            if os.pread(fd, SMALL, offset) != plan.expected(offset):
                raise WorkloadError(f"random read at {offset} of {RAND} returned wrong bytes")
    finally:
        os.close(fd)


def run_tree(
    root: Path,
    target: str,
    plan: Plan,
    bucket: Bucket | None,
    mounted: Callable[[], bool] | None = None,
) -> Outcome:
    """All workloads through the file system mounted at ``root``, in a fixed order.

    With a ``bucket``, also measure the time until written data is in it
    (polling from the moment the write started). ``mounted`` is checked after
    each workload (see :meth:`Outcome.step`).
    """
    run = Outcome(mounted=mounted)
    files_dir, out = root / FILES, f"out/{target}"
    if plan.drop_caches:
        drop_page_cache()
    with run.step("ls_cold", "ls_warm"):
        for key in ("ls_cold", "ls_warm"):
            run.figures[key] = Figure(plan.files, _timed(lambda: _ls_long(files_dir, plan.files)))
    with run.step("stat"):
        paths = [files_dir / name for name in plan.names()]
        seconds = _timed(lambda: _stat_files(paths, plan.stat_rounds))
        run.figures["stat"] = Figure(len(paths) * plan.stat_rounds, seconds)
    if plan.drop_caches:
        drop_page_cache()
    with run.step("rand_read_4k"):
        seconds = _timed(lambda: _read_random(root / RAND, plan))
        run.figures["rand_read_4k"] = Figure(plan.random_reads, seconds)
    if plan.drop_caches:
        drop_page_cache()
    with run.step("seq_read_cold", "seq_read_cached"):
        for key in ("seq_read_cold", "seq_read_cached"):
            start = time.perf_counter()
            _check_count(f"read {BIG}", _read_file(root / BIG), plan.size)
            run.figures[key] = Figure(plan.size / MiB, time.perf_counter() - start)

    with run.step("seq_write", "seq_write_durable"):
        (root / out).mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + plan.durable_timeout
        began = time.monotonic()
        seconds = _timed(lambda: _write_file(root / out / "big.bin", plan.block, plan.size))
        run.figures["seq_write"] = Figure(plan.size / MiB, seconds)
        if bucket is not None:
            seen = bucket.wait_object(f"{out}/big.bin", plan.size, deadline)
            run.figures["seq_write_durable"] = Figure(plan.size / MiB, seen - began)

    with run.step("create_4k", "create_4k_durable"):
        (root / out / "files").mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + plan.durable_timeout
        began = time.monotonic()
        seconds = _timed(lambda: _create_files(root / out / "files", plan))
        run.figures["create_4k"] = Figure(plan.files, seconds)
        if bucket is not None:
            seen = bucket.wait_files(f"{out}/files", plan.names(), SMALL, deadline)
            run.figures["create_4k_durable"] = Figure(plan.files, seen - began)
    return run


def _head_files(bucket: Bucket, plan: Plan) -> None:
    # Once per file: a HEAD has no cache to warm, and --stat-rounds is sized
    # for stats that the kernel answers in microseconds.
    for name in plan.names():
        _check_count(f"head {FILES}/{name}", bucket.size(f"{FILES}/{name}") or 0, SMALL)


def _get_random(bucket: Bucket, plan: Plan) -> None:
    for offset in plan.offsets():
        if bucket.read_range(RAND, offset, SMALL) != plan.expected(offset):
            raise WorkloadError(f"range GET at {offset} of {RAND} returned wrong bytes")


def _put_files(bucket: Bucket, plan: Plan) -> None:
    small = plan.block[:SMALL]
    for name in plan.names():
        bucket.put(f"out/raw/files/{name}", small)


def run_raw(bucket: Bucket, plan: Plan) -> Outcome:
    """The same workloads as plain obstore calls from one thread, no FUSE.

    ``ls -l`` is one delimited LIST (it carries sizes and times); stat is
    HEAD; a random read is a 4 KiB range GET; writes are PUTs, durable when
    they return. 'Cached' is simply the second GET: there is no client cache.
    """
    run = Outcome()
    if plan.drop_caches:
        drop_page_cache()
    with run.step("ls_cold", "ls_warm"):
        for key in ("ls_cold", "ls_warm"):
            start = time.perf_counter()
            _check_count(f"list {FILES}", bucket.list_dir(FILES), plan.files)
            run.figures[key] = Figure(plan.files, time.perf_counter() - start)
    with run.step("stat"):
        seconds = _timed(lambda: _head_files(bucket, plan))
        run.figures["stat"] = Figure(plan.files, seconds)
    with run.step("rand_read_4k"):
        run.figures["rand_read_4k"] = Figure(
            plan.random_reads, _timed(lambda: _get_random(bucket, plan))
        )
    if plan.drop_caches:
        drop_page_cache()
    with run.step("seq_read_cold", "seq_read_cached"):
        for key in ("seq_read_cold", "seq_read_cached"):
            start = time.perf_counter()
            _check_count(f"get {BIG}", bucket.read_all(BIG), plan.size)
            run.figures[key] = Figure(plan.size / MiB, time.perf_counter() - start)
    with run.step("seq_write", "seq_write_durable"):
        seconds = _timed(lambda: bucket.put("out/raw/big.bin", chunks(plan.block, plan.size)))
        run.figures["seq_write"] = run.figures["seq_write_durable"] = Figure(
            plan.size / MiB, seconds
        )
    with run.step("create_4k", "create_4k_durable"):
        seconds = _timed(lambda: _put_files(bucket, plan))
        run.figures["create_4k"] = run.figures["create_4k_durable"] = Figure(plan.files, seconds)
    return run
