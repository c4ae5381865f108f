"""The raw ceiling's workloads on a real MinIO: every figure, the GET shapes, the costs."""

from __future__ import annotations

import os

import pytest

from fixtures.minio import Bucket as FixtureBucket
from openfiles_bench.bucket import Bucket, MiB, pattern_block
from openfiles_bench.getshape import SHAPES, shape_name
from openfiles_bench.meter import Meter
from openfiles_bench.raw import run_raw
from openfiles_bench.server import S3Site
from openfiles_bench.workload import METRICS, PAR, SMALL, Plan, populate_bucket

pytestmark = pytest.mark.s3

PLAN = Plan(size=3 * MiB + SMALL, files=3, random_reads=16, stat_rounds=1,
            block=pattern_block(), durable_timeout=30)


@pytest.fixture
def bucket(s3_bucket: FixtureBucket) -> Bucket:
    server = s3_bucket.server
    site = S3Site(s3_bucket.endpoint, "us-east-1", s3_bucket.name, "run",
                  server.access_key, server.secret_key)
    return Bucket(site)


def test_every_workload_has_a_figure_and_a_cost(bucket: Bucket) -> None:
    populate_bucket(bucket, PLAN)
    run = run_raw(bucket, PLAN, Meter(os.getpid(), descendants=False))
    assert run.errors == {}
    assert set(run.figures) == set(METRICS)
    assert all(f.rate > 0 for f in run.figures.values())
    assert run.figures["par_read"].amount == len(PAR) * PLAN.size / MiB
    # A PUT is durable when it returns: one figure for both columns.
    assert run.figures["seq_write_fsync"] is run.figures["seq_write_fsync_durable"]
    assert set(run.notes["get_shapes"]) == {shape_name(*s) for s in SHAPES}
    best = max(run.notes["get_shapes"], key=lambda s: run.notes["get_shapes"][s])
    assert run.notes["get_shape"] == best
    assert run.figures["seq_read_cold"].rate == pytest.approx(run.notes["get_shapes"][best],
                                                              rel=0.01)
    assert set(run.usage) == set(METRICS)
    assert all(u.peak_rss > 0 for u in run.usage.values())
    assert bucket.size("out/raw/big-fsync.bin") == PLAN.size


def test_wrong_bytes_fail_the_random_reads(bucket: Bucket) -> None:
    populate_bucket(bucket, PLAN)
    bucket.put("src/rand8.bin", bytes(PLAN.size))
    run = run_raw(bucket, PLAN)
    assert list(run.errors) == ["rand_read_4k_8t"]
    assert "wrong bytes" in run.errors["rand_read_4k_8t"]
    assert run.usage == {}  # no meter given
