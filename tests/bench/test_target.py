"""Mounting, unmounting and configuring the benchmark's FUSE targets."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from fixtures.prereq import missing
from openfiles_bench.server import S3Site
from openfiles_bench.target import (
    Mount,
    MountSpec,
    TargetError,
    Watchdog,
    engine_available,
    engine_spec,
    is_mounted,
    memfs_spec,
    mount_s3_spec,
    rclone_spec,
    s3fs_spec,
)

SITE = S3Site(
    endpoint="http://127.0.0.1:9",
    region="us-east-1",
    bucket="b",
    prefix="p",
    access_key="AKIDBENCHTEST",
    secret_key="s3cr3t-never-shown",
)


def test_a_plain_directory_is_not_a_mount(tmp_path: Path) -> None:
    assert not is_mounted(tmp_path)


def test_a_target_that_dies_fails_with_its_log_scrubbed(tmp_path: Path) -> None:
    script = f"echo 'auth {SITE.access_key}:{SITE.secret_key} refused'; exit 3"
    spec = MountSpec("broken", ["sh", "-c", script])
    mount = Mount(spec, tmp_path / "mnt", tmp_path / "log", SITE)
    with pytest.raises(TargetError) as failure:
        mount.start(read_ahead_kib=0)
    mount.stop()
    message = str(failure.value)
    assert "exited with status 3" in message
    assert "auth ***:*** refused" in message
    assert SITE.secret_key not in message


@pytest.mark.fuse
def test_a_killed_file_system_leaves_no_stale_mount(tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    mount = Mount(memfs_spec(mountpoint), mountpoint, tmp_path / "log", None)
    mount.start(read_ahead_kib=0)
    try:
        with Watchdog(mount, 0.1) as watchdog:
            assert mount.process is not None
            mount.process.wait(timeout=30)
        assert watchdog.fired
        assert is_mounted(mountpoint)  # stale: the server is gone, the mount is not
        with pytest.raises(OSError):
            list(mountpoint.iterdir())
    finally:
        mount.stop()
    assert not is_mounted(mountpoint)
    assert list(mountpoint.iterdir()) == []


@pytest.mark.fuse
@pytest.mark.root
def test_read_ahead_is_raised_on_the_mount(tmp_path: Path) -> None:
    mountpoint = tmp_path / "mnt"
    with Mount(memfs_spec(mountpoint), mountpoint, tmp_path / "log", None) as mount:
        mount.start(read_ahead_kib=1024)
        dev = mountpoint.stat().st_dev
        knob = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
        assert mount.read_ahead_before is not None
        assert knob.read_text().strip() == "1024"
    assert not is_mounted(mountpoint)


def test_a_watchdog_that_is_not_due_does_nothing(tmp_path: Path) -> None:
    mount = Mount(MountSpec("sleeper", ["sleep", "30"]), tmp_path / "m", tmp_path / "log", None)
    with Watchdog(mount, 30) as watchdog:
        time.sleep(0.05)
    assert not watchdog.fired


def test_rclone_gets_credentials_through_its_environment_only(tmp_path: Path) -> None:
    spec = rclone_spec(SITE, tmp_path / "mnt", tmp_path / "cache", tmp_path)
    if spec.available is not None:
        missing(spec.available)
    assert SITE.secret_key not in " ".join(spec.argv)
    assert SITE.access_key not in " ".join(spec.argv)
    assert SITE.secret_key in spec.env.values()
    assert "--vfs-cache-mode" in spec.argv and "full" in spec.argv
    assert "AWS_CA_BUNDLE" in spec.unset_env


def test_s3fs_gets_credentials_through_a_private_file_only(tmp_path: Path) -> None:
    spec = s3fs_spec(SITE, tmp_path / "mnt", tmp_path / "cache", tmp_path)
    if spec.available is not None:
        missing(spec.available)
    assert SITE.secret_key not in " ".join(spec.argv)
    passwd = tmp_path / "s3fs.passwd"
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o600
    assert passwd.read_text() == f"{SITE.access_key}:{SITE.secret_key}\n"
    options = spec.argv[spec.argv.index("-o") + 1].split(",")
    assert "use_path_request_style" in options
    assert f"url={SITE.endpoint}" in options


def test_engine_is_started_as_the_contract_says(tmp_path: Path) -> None:
    spec = engine_spec(SITE, tmp_path / "mnt", tmp_path / "cache", tmp_path)
    assert spec.argv[spec.argv.index("mount") + 1 :][:2] == ["s3://b/p", str(tmp_path / "mnt")]
    for option in ("--endpoint", "--region", "--cache-dir", "--export-delay"):
        assert option in spec.argv
    assert "--foreground" in spec.argv
    assert SITE.secret_key not in " ".join(spec.argv)
    assert spec.env == {
        "AWS_ACCESS_KEY_ID": SITE.access_key,
        "AWS_SECRET_ACCESS_KEY": SITE.secret_key,
    }
    assert spec.available == engine_available()


def test_mount_s3_gets_credentials_through_its_environment_only(tmp_path: Path) -> None:
    binary = tmp_path / "mount-s3"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    plain = mount_s3_spec(SITE, tmp_path / "mnt", None, binary)
    cached = mount_s3_spec(SITE, tmp_path / "mnt", tmp_path / "cache", binary)
    assert (plain.name, cached.name) == ("mount-s3", "mount-s3-cache")
    assert plain.available is None and "--cache" not in plain.argv
    assert cached.argv[cached.argv.index("--cache") + 1] == str(tmp_path / "cache")
    assert plain.argv[plain.argv.index("--prefix") + 1] == "p/"
    assert SITE.secret_key not in " ".join(cached.argv)
    assert SITE.access_key not in " ".join(cached.argv)
    assert cached.env["AWS_SECRET_ACCESS_KEY"] == SITE.secret_key
    assert cached.env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert "AWS_CA_BUNDLE" in cached.unset_env
    assert {"rename", "random write"} <= cached.lacks


def test_a_missing_mount_s3_is_not_available_with_the_reason(tmp_path: Path) -> None:
    spec = mount_s3_spec(SITE, tmp_path / "mnt", None, tmp_path / "nowhere" / "mount-s3")
    assert spec.available == f"not found: {tmp_path}/nowhere/mount-s3 (give --mount-s3 PATH)"
