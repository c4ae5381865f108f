"""Cold readers, a re-read and a cold ``ls -l``, the engine beside its peers, in turns.

    .venv/bin/python -m openfiles_bench.turns [--rounds N] [--size MiB] [--files N]
        [--targets openfiles,mountpoint,s3fs] [--mount-s3 PATH] [--beside N] [--stat-cpu N]

A private MinIO (the bench's) holds 5 objects of ``--size`` and ``--files``
objects of 4 KiB under ``files/`` (and ``--beside`` more under ``out/``, a
second prefix of the root, as the bench's bucket has one). Each round mounts
every target afresh, in a new order, and prints per target:

- ``1 reader``: one cold sequential read of one object; ``re-read``: the same
  file again after the page cache is dropped (from the mount's own cache, as
  ``openfiles bench``'s cached re-read); ``4 readers``: four
  objects read at once by four threads (aggregate MiB/s), each with the
  mount's CPU seconds per GiB (from /proc); for the four readers also MinIO's
  CPU seconds per GiB, the machine's idle ones (all cores, iowait included):
  idle time there means the readers wait on something other than the CPU, and
  the MiB the mount read back from its disk (not from the page cache);
- ``ls cold``: ``ls -l files`` right after mounting, ``ls warm``: again (ms);
  ``stat``: then ``STAT_ROUNDS`` rounds of ``stat`` of every file under
  ``files/``, as the bench's stat workload does (stats/s, all from the
  kernel's cache on a caching target). ``--stat-cpu N`` runs that loop on
  core N only: unpinned, its rate on this 2-core VM jumps between two levels
  (some 340k and 600k stats/s) with the scheduler, whatever the target.

The page cache is dropped before each cold measurement. It is how the
figures of docs/ENGINE.md, "Page-cache copies" and "Metadata path", session 8,
were taken; ``openfiles bench`` remains the judge of the issue's goals. Needs
root (FUSE) and the MinIO binary of scripts/bootstrap-tests.sh; Mountpoint is
``../shared/anchors/mount-s3`` unless ``--mount-s3`` says otherwise, and its
target is skipped with a line when it is missing.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from openfiles_bench.bucket import MiB
from openfiles_bench.target import Mount, engine_spec, mount_s3_spec, s3fs_spec
from openfiles_bench.testbed import private_minio, process_cpu
from openfiles_bench.workload import drop_page_cache

READERS = 4
STAT_ROUNDS = 100


def read_all(path: Path) -> int:
    count = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(MiB):
            count += len(chunk)
    return count


def idle_seconds() -> float:
    """Idle plus iowait CPU seconds of the whole machine so far (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")


def disk_read(pid: int) -> int:
    """Bytes process ``pid`` has read from the disk so far, not from the page cache
    (/proc/PID/io ``read_bytes``, all its threads)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/io has no read_bytes")


def one_turn(target: str, mnt: Path, pid: int, minio: int, size: int,
             stat_cpu: int | None = None) -> str:
    drop_page_cache()
    began = time.perf_counter()
    subprocess.run(["ls", "-l", str(mnt / "files")], capture_output=True, check=True)
    cold = time.perf_counter() - began
    began = time.perf_counter()
    subprocess.run(["ls", "-l", str(mnt / "files")], capture_output=True, check=True)
    warm = time.perf_counter() - began
    paths = sorted((mnt / "files").iterdir())
    cpus = os.sched_getaffinity(0)
    if stat_cpu is not None:
        os.sched_setaffinity(0, {stat_cpu})
    try:
        began = time.perf_counter()
        for _ in range(STAT_ROUNDS):
            for path in paths:
                path.stat()
        stats = STAT_ROUNDS * len(paths) / (time.perf_counter() - began)
    finally:
        os.sched_setaffinity(0, cpus)
    drop_page_cache()
    cpu, began = process_cpu(pid), time.perf_counter()
    one = read_all(mnt / "big") / (time.perf_counter() - began) / MiB
    one_cpu = (process_cpu(pid) - cpu) / (size / 2**30)
    drop_page_cache()
    cpu, began = process_cpu(pid), time.perf_counter()
    again = read_all(mnt / "big") / (time.perf_counter() - began) / MiB
    again_cpu = (process_cpu(pid) - cpu) / (size / 2**30)
    drop_page_cache()
    cpu, began = process_cpu(pid), time.perf_counter()
    minio_cpu, idle, disk_before = process_cpu(minio), idle_seconds(), disk_read(pid)
    with ThreadPoolExecutor(READERS) as pool:
        moved = sum(pool.map(read_all, [mnt / f"p{n}" for n in range(READERS)]))
    four = moved / (time.perf_counter() - began) / MiB
    gib = moved / 2**30
    four_cpu = (process_cpu(pid) - cpu) / gib
    minio_cpu, idle = (process_cpu(minio) - minio_cpu) / gib, (idle_seconds() - idle) / gib
    disk = (disk_read(pid) - disk_before) / MiB
    return (f"  {target:11} 1 reader {one:6.0f} MiB/s cpu {one_cpu:5.2f} s/GiB   "
            f"re-read {again:6.0f} MiB/s cpu {again_cpu:5.2f} s/GiB   "
            f"{READERS} readers {four:6.0f} MiB/s cpu {four_cpu:5.2f} s/GiB "
            f"(MinIO {minio_cpu:4.2f}, idle {idle:4.2f}, disk {disk:.0f} MiB)   "
            f"ls cold {cold * 1000:6.1f} ms  ls warm {warm * 1000:6.1f} ms  "
            f"stat {stats:9,.0f}/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--size", type=int, default=1024, help="MiB")
    p.add_argument("--files", type=int, default=1000)
    p.add_argument("--targets", default="openfiles,mountpoint")
    p.add_argument("--mount-s3", type=Path)
    p.add_argument("--beside", type=int, default=0,
                   help="objects of 4 KiB under out/ (three levels down), beside files/")
    p.add_argument("--stat-cpu", type=int, help="run the stat loop on this core only")
    args = p.parse_args()
    size = args.size * MiB
    objects = {f"p{n}": n + 3 for n in range(READERS)} | {"big": 9}
    with private_minio("turns", size, objects) as (site, bucket, minio, work):
        for n in range(args.files):
            bucket.put(f"files/f{n:05d}", b"x" * 4096)
        for n in range(args.beside):  # as the bench's bucket holds its targets' writes
            bucket.put(f"out/t{n % 3}/files/f{n:05d}", b"x" * 4096)
        order = random.Random(8)
        for number in range(args.rounds):
            print(f"round {number + 1}", flush=True)
            targets = args.targets.split(",")
            for target in order.sample(targets, len(targets)):
                run = Path(tempfile.mkdtemp(dir=work))
                (run / "cache").mkdir()
                if target == "openfiles":
                    spec = engine_spec(site, run / "mnt", run / "cache", run)
                elif target == "s3fs":
                    spec = s3fs_spec(site, run / "mnt", run / "cache", run)
                else:
                    spec = mount_s3_spec(site, run / "mnt", None, args.mount_s3)
                if spec.available:
                    print(f"  {target:11} n/a ({spec.available})", flush=True)
                    continue
                try:
                    with Mount(spec, run / "mnt", run / "log", site) as mount:
                        mount.start(1024)
                        assert mount.process is not None
                        print(one_turn(target, run / "mnt", mount.process.pid, minio, size,
                                       args.stat_cpu),
                              flush=True)
                finally:
                    shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    main()
