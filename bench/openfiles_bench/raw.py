"""The raw object-store ceiling: the same workloads as plain obstore calls, no FUSE.

``ls -l`` is one delimited LIST (it carries sizes and times); stat is HEAD; a
random read is a 4 KiB range GET (from one thread, then from ``THREADS``);
writes are PUTs, durable when they return, so each "until close" figure is
also the "until in bucket" one, with or without fsync. There is no client
cache: the "re-read" is one more GET.

The sequential read is the ceiling the issue names: a GET in the best shape
found. Every shape of :data:`openfiles_bench.getshape.SHAPES` (one whole GET,
parallel range GETs) reads the object once, the fastest gives the cold
figure, and the re-read uses that shape; ``notes`` keeps each shape's rate.
The four-reader workload is four whole GETs at once, one per object.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from openfiles_bench import workload
from openfiles_bench.bucket import Bucket, MiB, chunks
from openfiles_bench.getshape import SHAPES, read, shape_name
from openfiles_bench.meter import Meter
from openfiles_bench.workload import Figure, Outcome, Plan, check_count, timed


def _get_random(bucket: Bucket, plan: Plan, path: str, offsets: list[int], threads: int) -> None:
    def share(first: int) -> None:
        for offset in offsets[first::threads]:
            if bucket.read_range(path, offset, workload.SMALL) != plan.expected(offset):
                raise workload.WorkloadError(f"range GET at {offset} of {path} "
                                             "returned wrong bytes")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(share, range(threads)))


def _get(bucket: Bucket, plan: Plan, piece: int, in_flight: int) -> None:
    got = read(bucket, workload.BIG, plan.size, piece, in_flight)
    check_count(f"get {workload.BIG}", got, plan.size)


def _best_shape(bucket: Bucket, plan: Plan, run: Outcome) -> tuple[int, int]:
    """Read the big object in every shape; record the fastest as the cold figure and return it."""
    rates: dict[str, float] = {}
    best, usage = SHAPES[0], None
    for piece, in_flight in SHAPES:
        if plan.drop_caches:
            workload.drop_page_cache()
        with run.measured(("seq_read_cold",), plan.size, plan.size / MiB):
            seconds = timed(_get, bucket, plan, piece, in_flight)
        name = shape_name(piece, in_flight)
        rates[name] = plan.size / MiB / seconds
        if rates[name] >= max(rates.values()):
            best, usage = (piece, in_flight), run.usage.get("seq_read_cold")
            run.figures["seq_read_cold"] = Figure(plan.size / MiB, seconds)
    if usage is not None:
        run.usage["seq_read_cold"] = usage
    run.notes["get_shapes"] = {name: round(rate, 1) for name, rate in rates.items()}
    run.notes["get_shape"] = shape_name(*best)
    return best


def run_raw(bucket: Bucket, plan: Plan, meter: Meter | None = None) -> Outcome:
    """Every workload as obstore calls from this process (its cost is this process's)."""
    run = Outcome(meter=meter)
    if plan.drop_caches:
        workload.drop_page_cache()
    with run.step("ls_cold", "ls_warm"):
        for key in ("ls_cold", "ls_warm"):
            with run.measured((key,), 0, plan.files):
                seconds = timed(lambda: check_count(
                    f"list {workload.FILES}", bucket.list_dir(workload.FILES), plan.files))
            run.figures[key] = Figure(plan.files, seconds)
    with run.step("stat"):
        # Once per file: a HEAD has no cache to warm, and --stat-rounds is sized
        # for stats that the kernel answers in microseconds.
        def head_all() -> None:
            for name in plan.names():
                path = f"{workload.FILES}/{name}"
                check_count(f"head {path}", bucket.size(path) or 0, workload.SMALL)

        with run.measured(("stat",), 0, plan.files):
            run.figures["stat"] = Figure(plan.files, timed(head_all))
    for key, path, seed, threads in (("rand_read_4k", workload.RAND, 1, 1),
                                     ("rand_read_4k_8t", workload.RAND8, 2, workload.THREADS)):
        with run.step(key):
            offsets = plan.offsets(seed)
            with run.measured((key,), len(offsets) * workload.SMALL, len(offsets)):
                seconds = timed(_get_random, bucket, plan, path, offsets, threads)
            run.figures[key] = Figure(len(offsets), seconds)
    with run.step("seq_read_cold", "seq_read_cached"):
        piece, in_flight = _best_shape(bucket, plan, run)
        if plan.drop_caches:
            workload.drop_page_cache()
        with run.measured(("seq_read_cached",), plan.size, plan.size / MiB):
            seconds = timed(_get, bucket, plan, piece, in_flight)
        run.figures["seq_read_cached"] = Figure(plan.size / MiB, seconds)
    with run.step("par_read"):
        if plan.drop_caches:
            workload.drop_page_cache()
        moved, readers = plan.size * len(workload.PAR), len(workload.PAR)
        with run.measured(("par_read",), moved, moved / MiB), ThreadPoolExecutor(readers) as pool:
            began = time.perf_counter()
            got = list(pool.map(bucket.read_all, workload.PAR))
            seconds = time.perf_counter() - began
        for path, count in zip(workload.PAR, got, strict=True):
            check_count(f"get {path}", count, plan.size)
        run.figures["par_read"] = Figure(moved / MiB, seconds)
    for key, name in (("seq_write", "big.bin"), ("seq_write_fsync", "big-fsync.bin")):
        with run.step(key, f"{key}_durable"):
            keys = (key, f"{key}_durable")
            with run.measured(keys, plan.size, plan.size / MiB):
                seconds = timed(bucket.put, f"out/raw/{name}", chunks(plan.block, plan.size))
            run.figures[key] = run.figures[f"{key}_durable"] = Figure(plan.size / MiB, seconds)
    with run.step("create_4k", "create_4k_durable"):
        def put_all() -> None:
            for name in plan.names():
                bucket.put(f"out/raw/files/{name}", plan.block[:workload.SMALL])

        keys = ("create_4k", "create_4k_durable")
        with run.measured(keys, plan.files * workload.SMALL, plan.files):
            seconds = timed(put_all)
        run.figures["create_4k"] = run.figures["create_4k_durable"] = Figure(plan.files, seconds)
    return run
