"""The test bed of ``coldread`` and ``getshape`` (openfiles_bench/testbed.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from openfiles_bench.testbed import private_minio, process_cpu


def test_process_cpu_counts_this_process() -> None:
    before, start = process_cpu(os.getpid()), time.process_time()
    while time.process_time() - start < 0.2:
        pass
    # /proc counts in clock ticks (10 ms): allow a few of them either way.
    assert process_cpu(os.getpid()) - before >= 0.15


@pytest.mark.s3
def test_the_private_minio_holds_the_objects_and_leaves_nothing() -> None:
    with private_minio("testbed", 3 << 20, {"big": 7, "rand": 3}) as (site, bucket, pid, work):
        assert bucket.read_all("big") == bucket.read_all("rand") == 3 << 20
        assert process_cpu(pid) > 0
        assert work.is_dir() and site.endpoint.startswith("http://127.0.0.1:")
    assert not work.exists()
    assert not Path(f"/proc/{pid}").exists()  # stopped and reaped
