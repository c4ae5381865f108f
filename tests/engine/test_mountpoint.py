from __future__ import annotations

from pathlib import Path

import pytest

from openfiles_contracts.mountinfo import fuse_mounted
from openfiles_engine.mountpoint import MountpointError, prepare


def test_prepare_rejects_bad_mount_points(tmp_path: Path) -> None:
    with pytest.raises(MountpointError, match="does not exist"):
        prepare(str(tmp_path / "nope"))
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(MountpointError, match="not a directory"):
        prepare(str(tmp_path / "file"))
    prepare(str(tmp_path))  # a plain directory is fine
    assert not fuse_mounted(str(tmp_path))
