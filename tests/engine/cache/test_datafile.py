"""datafile.py: sparse data files, punched holes, a full cache disk."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from openfiles_engine.cache.datafile import DataFiles


def test_punch_keeps_the_rest(tmp_path: Path) -> None:
    files = DataFiles(str(tmp_path))
    files.write(3, 0, b"a" * 2**20 + b"b" * 2**20)
    files.punch(3, 0, 2**20)
    assert files.read(3, 0, 4) == b"\0" * 4
    assert files.read(3, 2**20, 4) == b"bbbb"
    assert files.disk_bytes(3) <= 2**20 + 8192
    files.close_all()


def test_data_files_are_sparse_and_droppable(tmp_path: Path) -> None:
    files = DataFiles(str(tmp_path))
    files.write(7, 10 * 2**20, b"tail")
    assert files.read(7, 10 * 2**20, 4) == b"tail"
    assert files.read(7, 0, 4) == b"\0\0\0\0"
    assert files.disk_bytes(7) < 2**20  # a hole, not 10 MiB of zeros
    files.drop(7)
    assert files.disk_bytes(7) == 0
    files.close_all()


@pytest.mark.root
def test_fetched_bytes_that_do_not_fit_raise_enospc(tmp_path: Path) -> None:
    point = tmp_path / "tmpfs"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)], check=True)
    try:
        data = DataFiles(str(point / "data"))
        # 1 MiB from an unaligned offset needs one page more than the 1 MiB tmpfs
        # has: the last pwrite is short rather than failing.
        chunk = memoryview(os.urandom(2**20))
        with pytest.raises(OSError) as info:
            data.write_fetched(7, data.writer(7), 5000, chunk, data.generation(7), lambda: True)
        assert info.value.errno == errno.ENOSPC  # never True: no range for bytes not there
        data.close_all()
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)
