"""``python -m openfiles_bench.getshape``: MinIO's rate, GET shape by GET shape."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.s3
def test_every_get_shape_is_read(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "openfiles_bench.getshape", "--rounds", "1", "--size", "64"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
    )
    assert run.returncode == 0, run.stderr
    shapes = [line.split()[0] for line in run.stdout.splitlines()]
    assert shapes == ["whole", "8MiBx4", "16MiBx4", "32MiBx2", "64MiBx1"]
    for line in run.stdout.splitlines():
        rate, client, minio = re.fullmatch(
            r"\S+\s+(\d+) MiB/s  client ([\d.]+) s  minio ([\d.]+) s", line).groups()
        assert int(rate) > 0 and float(client) > 0 and float(minio) >= 0
