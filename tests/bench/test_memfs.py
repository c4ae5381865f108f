"""The in-memory FUSE ceiling serves what the workloads need, and stops cleanly."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from openfiles_bench.target import Mount, is_mounted, memfs_spec

pytestmark = pytest.mark.fuse


def names_in(directory: Path) -> list[str]:
    return [entry.name for entry in directory.iterdir()]


@pytest.fixture
def memfs(tmp_path: Path) -> Iterator[Path]:
    mountpoint = tmp_path / "mnt"
    mount = Mount(memfs_spec(mountpoint), mountpoint, tmp_path / "memfs.log", None)
    try:
        mount.start(read_ahead_kib=0)
        yield mountpoint
    finally:
        mount.stop()
    assert mount.process is not None and mount.process.returncode == 0, mount.log_tail()
    assert not is_mounted(mountpoint)


def test_files_and_directories_behave(memfs: Path) -> None:
    (memfs / "d" / "e").mkdir(parents=True)
    data = os.urandom(3 << 20)
    (memfs / "d" / "big").write_bytes(data)
    assert (memfs / "d" / "big").read_bytes() == data
    assert (memfs / "d" / "big").stat().st_size == len(data)
    assert sorted(names_in(memfs / "d")) == ["big", "e"]

    with open(memfs / "d" / "big", "r+b") as f:
        f.seek(10)
        f.write(b"xyz")
        f.truncate(100)
    assert (memfs / "d" / "big").read_bytes() == data[:10] + b"xyz" + data[13:100]

    with open(memfs / "d" / "big", "r+b") as f:
        f.truncate(200)  # growing again reads zeros, not the old bytes
    assert (memfs / "d" / "big").read_bytes() == data[:10] + b"xyz" + data[13:100] + bytes(100)

    with open(memfs / "sparse", "wb") as f:
        f.seek(5000)
        f.write(b"end")
    assert (memfs / "sparse").read_bytes() == bytes(5000) + b"end"

    (memfs / "d" / "big").write_bytes(b"short")  # O_TRUNC
    assert (memfs / "d" / "big").read_bytes() == b"short"


def test_unlink_rmdir_and_errors(memfs: Path) -> None:
    (memfs / "d").mkdir()
    (memfs / "d" / "f").write_bytes(b"1")
    with pytest.raises(OSError) as not_empty:
        (memfs / "d").rmdir()
    assert not_empty.value.errno == errno.ENOTEMPTY
    with pytest.raises(FileExistsError):
        (memfs / "d").mkdir()
    (memfs / "d" / "f").unlink()
    (memfs / "d").rmdir()
    assert names_in(memfs) == []
    with pytest.raises(FileNotFoundError):
        (memfs / "d").stat()


def test_many_entries_list_in_full(memfs: Path) -> None:
    # More names than one readdir reply holds, so the offsets must resume correctly.
    names = [f"file-with-a-longish-name-{index:05d}" for index in range(3000)]
    for name in names:
        (memfs / name).touch()
    assert sorted(names_in(memfs)) == names
    assert os.statvfs(memfs).f_namemax == 255
