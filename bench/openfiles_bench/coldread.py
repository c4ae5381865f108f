"""Cold sequential read, raw GET against the engine, in turns, with the CPU each one used.

    .venv/bin/python -m openfiles_bench.coldread [--rounds N] [--size MiB] [--random N]

A private MinIO (the bench's) holds one object. Each round reads it once as
a raw obstore GET stream and once through a fresh ``openfiles mount`` (the
bench's mount of the engine), and prints the rate, the CPU seconds of the
engine's threads by name (from /proc), MinIO's CPU, and the engine's
fetched, dropped and peak held bytes (control socket). It is how the
figures of docs/ENGINE.md, "Cold sequential read", were taken; the bench's
``sequential read, cold`` is the figure the issue's goal is judged by.
With ``--random N``, each mount first serves N random 4 KiB reads of a second
object of the same size (as the bench does before its cold read), and their
rate is printed.

Each round ends with a ``budget`` line: the CPU seconds each path needed in
all (raw: this process and MinIO; engine: the engine, MinIO and this
process's reads), and ``bound``, the best ratio to the raw GET the engine's
path could reach on this machine's cores even if every core were busy with it
the whole time: raw GET seconds / (engine path CPU seconds / cores). A bound
under the issue's 0.70x says that the copies the engine must make (into its
cache file and into the kernel's page cache of the FUSE file), not waiting,
hold the cold read back.
Needs root (FUSE) and the MinIO binary of scripts/bootstrap-tests.sh.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from openfiles_bench.bucket import MiB
from openfiles_bench.reclaim import cpu_seconds
from openfiles_bench.server import S3Site
from openfiles_bench.target import Mount, engine_spec
from openfiles_bench.testbed import private_minio, process_cpu
from openfiles_contracts.jsonline import request


def threads(pid: int) -> dict[str, tuple[str, float]]:
    """{tid: (name, CPU seconds)} of every thread of ``pid``."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[task.name] = ((task / "comm").read_text().strip(), cpu_seconds(task))
        except OSError:
            continue
    return out


def by_name(before: dict[str, tuple[str, float]], after: dict[str, tuple[str, float]]) -> str:
    spent: dict[str, float] = {}
    for tid, (name, seconds) in after.items():
        spent[name] = spent.get(name, 0.0) + seconds - before.get(tid, (name, 0.0))[1]
    return "  ".join(f"{name} {s:.2f}" for name, s in sorted(spent.items(), key=lambda x: -x[1])
                     if s > 0)


def random_reads(path: Path, size: int, count: int) -> None:
    rng = random.Random(1)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        start = time.perf_counter()
        for _ in range(count):
            if len(os.pread(fd, 4096, rng.randrange(size // 4096) * 4096)) != 4096:
                raise SystemExit(f"short read of {path}")
        print(f"random {count / (time.perf_counter() - start):6.0f} reads/s", flush=True)
    finally:
        os.close(fd)


def engine_round(site: S3Site, work: Path, minio_pid: int, size: int, randoms: int) -> Side:
    run = Path(tempfile.mkdtemp(dir=work))
    (run / "mnt").mkdir()
    (run / "cache").mkdir()
    sock = str(run / "engine.sock")
    with Mount(engine_spec(site, run / "mnt", run / "cache", run),
               run / "mnt", run / "log", site) as mount:
        mount.start(1024)
        assert mount.process is not None
        engine = mount.process.pid
        if randoms:
            random_reads(run / "mnt" / "rand", size, randoms)
        peak, stop = [0], threading.Event()

        def sample() -> None:
            while not stop.wait(0.05):
                held = request(sock, {"op": "status"})["status"]["held_bytes"]
                peak[0] = max(peak[0], held)

        sampler = threading.Thread(target=sample)
        before, minio_before = threads(engine), process_cpu(minio_pid)
        sampler.start()
        buffer, total, start = bytearray(MiB), 0, time.perf_counter()
        reader = time.process_time()
        with open(run / "mnt" / "big", "rb", buffering=0) as source:
            os.posix_fadvise(source.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            while count := source.readinto(buffer):
                total += count
        seconds = time.perf_counter() - start
        reader = time.process_time() - reader
        stop.set()
        sampler.join()
        after, minio_after = threads(engine), process_cpu(minio_pid)
        status = request(sock, {"op": "status"})["status"]
        engine_cpu = sum(s for _, s in after.values()) - sum(s for _, s in before.values())
        print(f"engine {total / MiB / seconds:6.0f} MiB/s  cpu {engine_cpu:.2f} s "
              f"(minio {minio_after - minio_before:.2f} s)  fetched "
              f"{status['fetched_bytes'] // MiB} MiB, dropped {status['dropped_bytes'] // MiB}"
              f" MiB, held at most {peak[0] // MiB} MiB", flush=True)
        print(f"       threads: {by_name(before, after)}", flush=True)
    shutil.rmtree(run, ignore_errors=True)
    return Side(total / MiB / seconds, seconds,
                engine_cpu + minio_after - minio_before + reader)


@dataclass
class Side:
    """One path's cold read: its rate, seconds and CPU seconds over every process."""

    rate: float
    seconds: float
    cpu: float


def budget(raw: Side, engine: Side, cores: int) -> str:
    """The ``budget`` line of a round (see the module docstring)."""
    bound = raw.seconds / (engine.cpu / cores)
    return (f"budget raw {raw.cpu:.2f} s CPU in {raw.seconds:.2f} s, engine path "
            f"{engine.cpu:.2f} s CPU in {engine.seconds:.2f} s: ratio "
            f"{engine.rate / raw.rate:.2f}x, bound on {cores} cores {bound:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--size", type=int, default=1024, help="MiB")
    p.add_argument("--random", type=int, default=0, help="random 4 KiB reads before each")
    args = p.parse_args()
    size = args.size * MiB
    objects = {"big": 7, "rand": 3} if args.random else {"big": 7}
    with private_minio("cold-read", size, objects) as (site, bucket, minio_pid, work):
        cores = os.cpu_count() or 1
        for _ in range(args.rounds):
            before, start = time.process_time(), time.perf_counter()
            minio_before = process_cpu(minio_pid)
            bucket.read_all("big")
            seconds = time.perf_counter() - start
            mine, minio = time.process_time() - before, process_cpu(minio_pid) - minio_before
            print(f"raw    {size / MiB / seconds:6.0f} MiB/s  cpu {mine:.2f} s "
                  f"(minio {minio:.2f} s)", flush=True)
            raw = Side(size / MiB / seconds, seconds, mine + minio)
            print(budget(raw, engine_round(site, work, minio_pid, size, args.random), cores),
                  flush=True)


if __name__ == "__main__":
    main()
