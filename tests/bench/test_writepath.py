"""``python -m openfiles_bench.writepath``: big writes and small creates through mounts.

Like the bench's own tests, these check the shape of the output and that the
figures agree with each other, never a speed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

LINE = re.compile(r"  (\S+) +(\S+) +close +([\d.]+) +bucket +([\d.]+) (MiB/s|files/s) +"
                  r"cpu +([\d.]+) s/GiB +rss +(\d+) MiB +minio +([\d.]+) s/GiB")


pytestmark = [pytest.mark.fuse, pytest.mark.root, pytest.mark.s3]


def writepath(cwd: Path, *args: str) -> str:
    """The tool's standard output; it must exit 0."""
    done = subprocess.run([sys.executable, "-m", "openfiles_bench.writepath", *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_each_workload_gives_both_rates_and_a_missing_peer_is_named(tmp_path: Path) -> None:
    out = writepath(tmp_path, "--rounds", "1", "--size", "96", "--files", "20",
                    "--targets", "openfiles,mountpoint", "--mount-s3", str(tmp_path / "none"))
    rows = {(m[1], m[2]): m for m in LINE.finditer(out)}
    assert set(rows) == {("openfiles", w) for w in ("write+fsync", "write", "creates")}
    for (_, workload), m in rows.items():
        close, bucket, unit = float(m[3]), float(m[4]), m[5]
        assert unit == ("files/s" if workload == "creates" else "MiB/s")
        assert 0 < bucket <= close * 1.01  # in the bucket never before the close
        assert float(m[6]) > 0 and int(m[7]) > 0
    fsynced = rows[("openfiles", "write+fsync")]
    assert float(fsynced[4]) >= 0.5 * float(fsynced[3])  # fsync: in the bucket at close
    assert re.search(r"openfiles +write +threads \(CPU s\): .*python", out)
    assert re.search(r"mountpoint +write\+fsync +n/a \(not found: .*none", out)
    assert "medians (until close / until in bucket)" in out
