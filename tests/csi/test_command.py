"""Bind mounts (read-only where asked) and idempotent unmounts, on real mounts."""

from __future__ import annotations

import asyncio
import errno
import subprocess
from pathlib import Path

import pytest

from openfiles_contracts import mountinfo
from openfiles_csi import command

pytestmark = [pytest.mark.root]


def test_bind_read_only_and_unmount(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    (source / "f").write_text("x")
    try:
        asyncio.run(command.bind_mount(str(source), str(target), read_only=True))
        entry = mountinfo.find(str(target))
        assert entry is not None and entry.read_only
        assert (target / "f").read_text() == "x"
        with pytest.raises(OSError) as info:
            (target / "g").write_text("y")
        assert info.value.errno == errno.EROFS
    finally:
        asyncio.run(command.unmount(str(target)))
    assert mountinfo.find(str(target)) is None
    asyncio.run(command.unmount(str(target)))  # idempotent
    command.remove_dir(str(target))
    command.remove_dir(str(target))  # absent is fine
    assert not target.exists()
    command.remove_dir(str(source))  # not empty: kept
    assert (source / "f").exists()


def test_binds_never_honour_setuid_or_devices(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "suid,dev", "tmpfs", str(source)], check=True)
    try:
        asyncio.run(command.bind_mount(str(source), str(target), read_only=False))
        entry = mountinfo.find(str(target))
        assert entry is not None and {"nosuid", "nodev", "rw"} <= entry.options
    finally:
        asyncio.run(command.unmount(str(target)))
        asyncio.run(command.unmount(str(source)))
