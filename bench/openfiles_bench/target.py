"""The FUSE targets of the benchmark, each run as a subprocess and mounted.

A :class:`MountSpec` says how to start one file system (argv, environment,
and the files it needs, such as an rclone config or an s3fs password file);
:class:`Mount` runs it, waits until the mount point shows up in
``/proc/self/mountinfo``, raises the kernel read-ahead of the mount, and on
exit unmounts and stops it, whatever happened (also on KeyboardInterrupt).

Credentials reach the children only through their environment or 0600 files
in the run's private directory, never through argv, which ``ps`` shows.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from openfiles_bench.server import S3Site, die_with_parent
from openfiles_contracts import mountinfo

# Remote name in rclone's RCLONE_CONFIG_<NAME>_* variables.
_RCLONE_REMOTE = "OFBENCH"
# Where the prebuilt peers live: ../shared/anchors/ next to the repository,
# unless OPENFILES_ANCHORS names the folder (a worktree elsewhere, a test).
ANCHORS = Path(os.environ.get("OPENFILES_ANCHORS")
               or Path(__file__).resolve().parents[2].parent / "shared" / "anchors")
# From Mountpoint's SEMANTICS.md: what it refuses. Writes reach the bucket at close.
MOUNT_S3_LACKS = frozenset({"random write", "append", "rename", "symlink", "chmod", "chown",
                            "directory rename"})


class TargetError(RuntimeError):
    """A file system did not come up, or could not be taken down."""


@dataclass
class MountSpec:
    """How to start one FUSE file system in the foreground."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    available: str | None = None
    """None when it can run here, else why not (shown as ``n/a (...)``)."""
    unset_env: tuple[str, ...] = ()
    """Variables of the benchmark's environment the child must not see."""
    lacks: frozenset[str] = frozenset()
    """Operations it does not support (workload.OPERATIONS names them)."""


def is_mounted(mountpoint: Path) -> bool:
    """True when ``mountpoint`` is the mount point of a FUSE mount right now."""
    return mountinfo.fuse_mounted(os.path.realpath(mountpoint))


def set_read_ahead(mountpoint: Path, kib: int) -> int | None:
    """Set the mount's backing-device read-ahead to ``kib`` KiB; return the old value.

    The kernel otherwise reads FUSE files in 128 KiB requests; 1024 KiB lets
    it ask for 1 MiB at a time (see DESIGN.md, "Request sizes"). Returns None
    when the knob cannot be written (not root), leaving the default.
    """
    dev = mountpoint.stat().st_dev
    knob = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
    try:
        old = int(knob.read_text())
        knob.write_text(str(kib))
    except OSError:
        return None
    return old


def _unmount(mountpoint: Path) -> None:
    for argv in (["fusermount3", "-u", "-z"], ["fusermount", "-u", "-z"], ["umount", "-l"]):
        if not is_mounted(mountpoint):
            return
        if shutil.which(argv[0]):
            subprocess.run([*argv, str(mountpoint)], capture_output=True, check=False)


class Mount:
    """Context manager: one running, mounted :class:`MountSpec`."""

    def __init__(self, spec: MountSpec, mountpoint: Path, log_path: Path, site: S3Site | None):
        self.spec = spec
        self.mountpoint = mountpoint
        self.log_path = log_path
        self.site = site
        self.process: subprocess.Popen[bytes] | None = None
        self.read_ahead_before: int | None = None

    def log_tail(self, lines: int = 15) -> str:
        """Last lines of the child's log, credentials scrubbed."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        tail = "\n".join(text.splitlines()[-lines:])
        return self.site.redact(tail) if self.site else tail

    def start(self, read_ahead_kib: int, timeout: float = 60.0) -> None:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(self.spec.env)
        for name in self.spec.unset_env:
            env.pop(name, None)
        with open(self.log_path, "ab") as log:
            # Own session: Ctrl-C reaches only the benchmark, which then
            # unmounts in order instead of leaving dead mounts behind.
            self.process = subprocess.Popen(
                self.spec.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while not is_mounted(self.mountpoint):
            if self.process.poll() is not None:
                raise TargetError(
                    f"{self.spec.name} exited with status {self.process.returncode}"
                    f" before mounting:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TargetError(f"{self.spec.name} did not mount within {timeout:.0f} s")
            time.sleep(0.05)
        if read_ahead_kib > 0:
            self.read_ahead_before = set_read_ahead(self.mountpoint, read_ahead_kib)

    def kill(self) -> None:
        """Kill the file system process now (the watchdog's last resort)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()

    def stop(self, timeout: float = 120.0) -> None:
        """Unmount and stop. Idempotent; leaves no mount behind, even a stale one."""
        process = self.process
        try:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:
            _unmount(self.mountpoint)
            if is_mounted(self.mountpoint):
                raise TargetError(f"{self.mountpoint} is still mounted after stopping")

    def __enter__(self) -> Mount:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Watchdog:
    """Kills a mount that takes longer than ``seconds``: a hung FUSE call then fails."""

    def __init__(self, mount: Mount, seconds: float) -> None:
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire, args=(mount,))
        self._timer.daemon = True

    def _fire(self, mount: Mount) -> None:
        self.fired = True
        mount.kill()

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def memfs_spec(mountpoint: Path) -> MountSpec:
    """The FUSE ceiling: memfs.py with the kernel writeback cache on."""
    argv = [sys.executable, "-m", "openfiles_bench.memfs", str(mountpoint)]
    return MountSpec("fuse", [*argv, "--timeout", "1", "--writeback"])


def rclone_spec(site: S3Site, mountpoint: Path, cache_dir: Path, run_dir: Path) -> MountSpec:
    """rclone mount with the full VFS cache, configured through RCLONE_CONFIG_* only."""
    binary = shutil.which("rclone")
    if binary is None:
        return MountSpec("rclone", [], available="not installed: apt-get install rclone")
    empty_config = run_dir / "rclone.conf"
    empty_config.touch(mode=0o600)
    env = {
        "RCLONE_CONFIG": str(empty_config),
        f"RCLONE_CONFIG_{_RCLONE_REMOTE}_TYPE": "s3",
        f"RCLONE_CONFIG_{_RCLONE_REMOTE}_PROVIDER": "Minio",
        f"RCLONE_CONFIG_{_RCLONE_REMOTE}_ENV_AUTH": "false",
        f"RCLONE_CONFIG_{_RCLONE_REMOTE}_ENDPOINT": site.endpoint,
        f"RCLONE_CONFIG_{_RCLONE_REMOTE}_REGION": site.region,
        f"RCLONE_CONFIG_{_RCLONE_REMOTE}_ACCESS_KEY_ID": site.access_key,
        f"RCLONE_CONFIG_{_RCLONE_REMOTE}_SECRET_ACCESS_KEY": site.secret_key,
    }
    remote = f"{_RCLONE_REMOTE.lower()}:{site.bucket}/{site.prefix}".rstrip("/")
    argv = [binary, "mount", remote, str(mountpoint), "--cache-dir", str(cache_dir)]
    # Upload as soon as a file is closed, as the engine is told to (export
    # delay 0): the durable times then measure transfer, not a timer.
    argv += ["--vfs-cache-mode", "full", "--vfs-write-back", "0s", "--write-back-cache"]
    # rclone 1.60 refuses to start at all when AWS_CA_BUNDLE is set
    # ("unsupported transport"), even for an http:// endpoint.
    return MountSpec("rclone", argv, env, unset_env=("AWS_CA_BUNDLE",))


def s3fs_spec(site: S3Site, mountpoint: Path, cache_dir: Path, run_dir: Path) -> MountSpec:
    """s3fs-fuse with a local disk cache, credentials in a 0600 password file."""
    binary = shutil.which("s3fs")
    if binary is None:
        return MountSpec("s3fs", [], available="not installed: apt-get install s3fs")
    passwd = run_dir / "s3fs.passwd"
    fd = os.open(passwd, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{site.access_key}:{site.secret_key}\n")
    options = [
        f"passwd_file={passwd}",
        f"url={site.endpoint}",
        f"endpoint={site.region}",
        "use_path_request_style",
        f"use_cache={cache_dir}",
    ]
    source = f"{site.bucket}:/{site.prefix}" if site.prefix else site.bucket
    argv = [binary, source, str(mountpoint), "-f", "-o", ",".join(options)]
    return MountSpec("s3fs", argv)


def mount_s3_spec(site: S3Site, mountpoint: Path, cache_dir: Path | None,
                  binary: Path | None) -> MountSpec:
    """Mountpoint for S3 (prebuilt, ``../shared/anchors/mount-s3``), with ``--cache``
    when ``cache_dir`` is given; credentials in its environment only.

    ``AWS_EC2_METADATA_DISABLED`` keeps it from probing the instance metadata
    address, and ``--maximum-throughput-gbps`` then stands in for the instance
    type's default. Overwrite and delete are allowed, as the other targets allow.
    """
    name = "mount-s3" if cache_dir is None else "mount-s3-cache"
    binary = binary or ANCHORS / "mount-s3"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        return MountSpec(name, [], available=f"not found: {binary} (give --mount-s3 PATH)")
    argv = [str(binary), site.bucket, str(mountpoint), "--endpoint-url", site.endpoint]
    argv += ["--prefix", site.prefix + "/"] if site.prefix else []
    argv += ["--force-path-style", "--region", site.region, "--allow-overwrite",
             "--allow-delete", "--maximum-throughput-gbps", "10", "--foreground"]
    argv += ["--cache", str(cache_dir)] if cache_dir is not None else []
    env = {"AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": site.access_key,
           "AWS_SECRET_ACCESS_KEY": site.secret_key}
    return MountSpec(name, argv, env, unset_env=("AWS_CA_BUNDLE", "AWS_SESSION_TOKEN",
                                                 "AWS_PROFILE"), lacks=MOUNT_S3_LACKS)


def engine_available() -> str | None:
    """None when ``openfiles mount`` exists in this build, else why not.

    It asks the dispatcher's table which module implements ``mount``, as the
    ``openfiles`` command itself does, so the column lights up as soon as that
    module is in the build.
    """
    from openfiles_cli import COMMANDS

    if importlib.util.find_spec(COMMANDS["mount"][0]) is None:
        return "engine not available"
    return None


def engine_spec(site: S3Site, mountpoint: Path, cache_dir: Path, run_dir: Path) -> MountSpec:
    """``openfiles mount`` as the CSI mounter runs it (docs/CONTRACTS.md, section 1)."""
    argv = [sys.executable, "-m", "openfiles_cli", "mount", f"s3://{site.bucket}/{site.prefix}"]
    argv += [str(mountpoint), "--endpoint", site.endpoint, "--region", site.region]
    argv += ["--cache-dir", str(cache_dir), "--export-delay", "0", "--foreground"]
    argv += ["--control-socket", str(run_dir / "engine.sock")]
    env = {"AWS_ACCESS_KEY_ID": site.access_key, "AWS_SECRET_ACCESS_KEY": site.secret_key}
    return MountSpec("openfiles", argv, env, available=engine_available())
