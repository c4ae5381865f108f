"""How fast this machine's MinIO serves one object, GET by GET shape, and at what CPU.

    .venv/bin/python -m openfiles_bench.getshape [--rounds N] [--size MiB]

A private MinIO (the bench's) holds one object. Each round reads it once per
shape, in turns: one GET of the whole object (the bench's raw anchor), then
range GETs of 8 MiB with 4 in flight (the engine's pieces and window), 16 MiB
with 4, 32 MiB with 2, and 64 MiB with 1 (``openfiles bench`` reads its raw
ceiling in each of these shapes and keeps the fastest: raw.py). Each line
gives the rate, the CPU seconds of this process (the client: obstore's
runtime and Python) and of MinIO. It shows what the network side of a cold
read can bring here, apart from FUSE and the cache (docs/ENGINE.md, "Cold sequential read").
Needs the MinIO binary of scripts/bootstrap-tests.sh.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

from openfiles_bench.bucket import Bucket, MiB
from openfiles_bench.testbed import private_minio, process_cpu

SHAPES = [(0, 1), (8, 4), (16, 4), (32, 2), (64, 1)]
"""(MiB per range GET, GETs in flight); 0 is one GET of the whole object."""


def shape_name(piece: int, in_flight: int) -> str:
    """``whole`` or ``<piece>MiBx<in flight>``, as the tools print a shape."""
    return "whole" if not piece else f"{piece}MiBx{in_flight}"


def read(bucket: Bucket, path: str, size: int, piece: int, in_flight: int) -> int:
    """Read the ``size`` bytes of ``path`` in one shape; returns how many came."""
    if not piece:
        return bucket.read_all(path)
    starts = range(0, size, piece * MiB)
    with ThreadPoolExecutor(in_flight) as pool:
        return sum(pool.map(lambda s: bucket.stream_range(path, s, min(s + piece * MiB, size)),
                            starts))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--size", type=int, default=1024, help="MiB")
    args = p.parse_args()
    size = args.size * MiB
    with private_minio("get-shapes", size, {"big": 7}) as (_, bucket, minio, _work):
        for _ in range(args.rounds):
            for piece, in_flight in SHAPES:
                mine, server, start = time.process_time(), process_cpu(minio), time.perf_counter()
                got = read(bucket, "big", size, piece, in_flight)
                seconds = time.perf_counter() - start
                if got != size:
                    raise SystemExit(f"read {got} bytes of {size}")
                shape = shape_name(piece, in_flight)
                client, server = time.process_time() - mine, process_cpu(minio) - server
                print(f"{shape:8} {size / MiB / seconds:6.0f} MiB/s  client "
                      f"{client:.2f} s  minio {server:.2f} s", flush=True)


if __name__ == "__main__":
    main()
