"""The test bed of the two measuring tools (``coldread``, ``getshape``).

:func:`private_minio` runs the bench's private MinIO on 127.0.0.1 holding a
few patterned objects, and hands out its pid so that its CPU can be counted;
:func:`process_cpu` is that count (user plus system seconds, from /proc).
Unlike ``openfiles bench``, these tools compare one path against another on a
quiet machine; they need the MinIO binary of scripts/bootstrap-tests.sh.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from openfiles_bench.bucket import Bucket, chunks, pattern_block
from openfiles_bench.reclaim import cpu_seconds
from openfiles_bench.server import DEFAULT_MINIO, S3Site, start_minio


def process_cpu(pid: int) -> float:
    """User plus system CPU seconds used so far by process ``pid`` (all its threads)."""
    return cpu_seconds(Path(f"/proc/{pid}"))


@contextmanager
def private_minio(name: str, size: int,
                  objects: dict[str, int]) -> Iterator[tuple[S3Site, Bucket, int, Path]]:
    """A private MinIO holding ``objects`` (key -> pattern seed), each ``size`` bytes.

    Yields the site, a bucket client, MinIO's pid and a scratch directory;
    everything is removed on exit.
    """
    work = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    try:
        with start_minio(DEFAULT_MINIO, name, "p", work) as site:
            bucket = Bucket(site)
            for key, seed in objects.items():
                bucket.put(key, chunks(pattern_block(seed), size))
            # This MinIO, by its own address: another test's MinIO may be newer.
            address = site.endpoint.removeprefix("http://")
            pid = int(subprocess.run(["pgrep", "-f", f"minio server .*--address {address}"],
                                     capture_output=True, text=True, check=True).stdout)
            yield site, bucket, pid, work
    finally:
        shutil.rmtree(work, ignore_errors=True)
