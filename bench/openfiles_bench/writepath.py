"""The write path, the engine beside its peers, in turns: big writes and small creates.

    .venv/bin/python -m openfiles_bench.writepath [--rounds N] [--size MiB] [--files N]
        [--targets openfiles,s3fs,rclone,mountpoint,mountpoint-cache,openfiles-base]
        [--base-python OTHER/.venv/bin/python] [--workloads write+fsync,write,creates]

A private MinIO (the bench's). Each round runs every target in a new order; each
workload of a target gets a fresh mount with an empty cache, so that the peak RSS
of the file system's process (``VmHWM``) is that workload's:

- ``write+fsync``: ``--size`` bytes in 1 MiB ``write()``s to a new file, fsync,
  close. MiB/s until close; until a HEAD sees the object at full size;
- ``write``: the same without fsync;
- ``creates``: ``--files`` files of 4 KiB (create, write, close): files/s until the
  last close, and until a LIST sees every file at 4 KiB.

Each line also gives the process's CPU seconds (user plus system) per GiB written
(for the engine also a line of its threads' CPU seconds by name),
its peak RSS, and MinIO's CPU seconds per GiB meanwhile (on a 2-core machine the
two share the cores, so what one client costs MinIO counts too). Medians per
target and workload close the run. Mountpoint for S3 is
``../shared/anchors/mount-s3`` (``--mount-s3`` overrides; see its README);
without it that target is skipped. ``--base-python`` names the python of another
checkout: its engine runs as ``openfiles-base`` in the same turns (before/after
pairs on a busy machine). Needs root (FUSE) and the MinIO binary of
scripts/bootstrap-tests.sh. It is how the write-path figures of docs/ENGINE.md,
"Upload while written", were taken; ``openfiles bench`` remains the judge of the
issue's goals.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from openfiles_bench.bucket import Bucket, MiB, pattern_block
from openfiles_bench.coldread import by_name, threads
from openfiles_bench.server import S3Site
from openfiles_bench.target import (
    Mount,
    MountSpec,
    engine_spec,
    mount_s3_spec,
    rclone_spec,
    s3fs_spec,
)
from openfiles_bench.testbed import private_minio, process_cpu

TARGETS = ("openfiles", "s3fs", "rclone", "mountpoint", "mountpoint-cache")


def spec(target: str, site: S3Site, run: Path, base: str, mount_s3: Path | None
         ) -> MountSpec:
    mnt, cache = run / "mnt", run / "cache"
    if target == "openfiles":
        return engine_spec(site, mnt, cache, run)
    if target == "openfiles-base":  # another checkout's engine: A/B in the same turns
        engine = engine_spec(site, mnt, cache, run)
        return MountSpec(target, [base, *engine.argv[1:]], engine.env,
                         available=None if base else "no --base-python")
    if target == "s3fs":
        return s3fs_spec(site, mnt, cache, run)
    if target == "rclone":  # full cache, written back at once (as in openfiles bench)
        return rclone_spec(site, mnt, cache, run)
    return mount_s3_spec(site, mnt, cache if target == "mountpoint-cache" else None, mount_s3)


def peak_rss(pid: int) -> int:
    """Bytes: the peak resident set of process ``pid`` so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def write_big(path: Path, size: int, fsync: bool) -> None:
    block = pattern_block(5)[:MiB]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        left = size
        while left:
            left -= os.write(fd, block[:min(left, MiB)])
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def create_files(directory: Path, count: int) -> None:
    directory.mkdir()
    block = pattern_block(9)[:4096]
    for n in range(count):
        fd = os.open(directory / f"f{n:05d}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, block)
        finally:
            os.close(fd)


def measure(target: str, workload: str, site: S3Site, bucket: Bucket, work: Path,
            size: int, files: int, base: str, minio: int, mount_s3: Path | None
            ) -> tuple[float, float, float, int, float] | str:
    """(rate until close, rate until in bucket, CPU s per GiB, peak RSS, MinIO's CPU s
    per GiB) or why not."""
    run = Path(tempfile.mkdtemp(dir=work))
    (run / "cache").mkdir()
    rel = f"out/{target}/{run.name}"  # s3fs leaves a marker object of a directory
    mount_spec = spec(target, site, run, base, mount_s3)
    if mount_spec.available:
        return mount_spec.available
    try:
        with Mount(mount_spec, run / "mnt", run / "log", site) as mount:
            mount.start(1024)
            assert mount.process is not None
            pid = mount.process.pid
            (run / "mnt" / "out" / target).mkdir(parents=True, exist_ok=True)
            cpu, minio_cpu, before = process_cpu(pid), process_cpu(minio), threads(pid)
            start = time.monotonic()
            amount, action, durable = _workload(workload, run / "mnt" / rel, rel, bucket,
                                                size, files)
            action()
            closed = time.monotonic()
            seen = durable(closed + 600)
            gib = (size if workload != "creates" else files * 4096) / 2**30
            if target.startswith("openfiles"):
                print(f"  {target:17} {workload:12} threads (CPU s): "
                      f"{by_name(before, threads(pid))}", flush=True)
            return (amount / (closed - start), amount / (seen - start),
                    (process_cpu(pid) - cpu) / gib, peak_rss(pid),
                    (process_cpu(minio) - minio_cpu) / gib)
    finally:
        shutil.rmtree(run, ignore_errors=True)
        bucket.delete_under(f"out/{target}")


def _workload(workload: str, path: Path, rel: str, bucket: Bucket, size: int, files: int
              ) -> tuple[float, Callable[[], None], Callable[[float], float]]:
    if workload == "creates":
        names = [f"f{n:05d}" for n in range(files)]
        return (files, lambda: create_files(path, files),
                lambda deadline: bucket.wait_files(rel, names, 4096, deadline))
    return (size / MiB, lambda: write_big(path, size, workload == "write+fsync"),
            lambda deadline: bucket.wait_object(rel, size, deadline))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--size", type=int, default=1024, help="MiB")
    p.add_argument("--files", type=int, default=1000)
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--workloads", default="write+fsync,write,creates")
    p.add_argument("--mount-s3", type=Path, help="Mountpoint for S3's binary "
                   "(default ../shared/anchors/mount-s3)")
    p.add_argument("--base-python", default="",
                   help="the python of another checkout: its engine is target openfiles-base")
    args = p.parse_args()
    targets = args.targets.split(",")
    workloads = args.workloads.split(",")
    results: dict[tuple[str, str], list[tuple[float, float, float, int, float]]] = {}
    with private_minio("write-path", MiB, {}) as (site, bucket, minio_pid, work):
        order = random.Random(17)
        for number in range(args.rounds):
            print(f"round {number + 1}, load {os.getloadavg()[0]:.2f}", flush=True)
            for target in order.sample(targets, len(targets)):
                for workload in workloads:
                    got = measure(target, workload, site, bucket, work, args.size * MiB,
                                  args.files, args.base_python, minio_pid, args.mount_s3)
                    if isinstance(got, str):
                        print(f"  {target:17} {workload:12} n/a ({got})", flush=True)
                        continue
                    results.setdefault((target, workload), []).append(got)
                    unit = "files/s" if workload == "creates" else "MiB/s"
                    print(f"  {target:17} {workload:12} close {got[0]:8.1f}  bucket "
                          f"{got[1]:8.1f} {unit:7}  cpu {got[2]:6.1f} s/GiB  "
                          f"rss {got[3] / MiB:5.0f} MiB  minio {got[4]:6.1f} s/GiB", flush=True)
    print("medians (until close / until in bucket)")
    for (target, workload), rows in sorted(results.items(), key=lambda kv: kv[0][::-1]):
        print(f"  {workload:12} {target:17} {statistics.median(r[0] for r in rows):8.1f} "
              f"{statistics.median(r[1] for r in rows):8.1f}   rounds: "
              + " ".join(f"{r[0]:.0f}/{r[1]:.0f}" for r in rows)
              + f"   peak rss {max(r[3] for r in rows) / MiB:.0f} MiB")


if __name__ == "__main__":
    main()
