"""Import image archives into a containerd, and a throwaway containerd to try them in.

:func:`import_archive` is what the cluster script calls: ``ctr -n NAMESPACE
-a SOCKET images import ARCHIVE``, skipped when the image under that name
already points at the archive's manifest (so a warm cluster start imports
nothing).

:class:`ScratchContainerd` runs Debian's containerd with its own root, state,
socket and config in a temporary directory, without the CRI plugin and so
without networking, for checks that an archive imports and runs; ``stop``
leaves no process, mount or cgroup of its own behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from debian import remove_tree

CONFIG = """\
version = 2
root = "{dir}/root"
state = "{dir}/state"
oom_score = 0
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{dir}/containerd.sock"
[ttrpc]
  address = "{dir}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"
"""


class ContainerdError(RuntimeError):
    """ctr or containerd failed; the message holds its output."""


def ctr(address: str, namespace: str, *args: str, timeout: float = 300) -> str:
    """Run ``ctr -a ADDRESS -n NAMESPACE ARGS...``; its stdout, or raise."""
    done = subprocess.run(["ctr", "-a", address, "-n", namespace, *args], capture_output=True,
                          text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise ContainerdError(f"ctr {' '.join(args)} failed ({done.returncode}): "
                              f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def image_digest(address: str, namespace: str, reference: str) -> str | None:
    """The manifest digest ``reference`` points at in that containerd, or None."""
    for line in ctr(address, namespace, "images", "ls").splitlines()[1:]:
        words = line.split()
        if words and words[0] == reference:
            return words[2]
    return None


def import_archive(address: str, namespace: str, archive: Path, reference: str,
                   digest: str) -> bool:
    """Import ``archive`` (image ``reference``, manifest ``digest``) and unpack it
    for the default snapshotter. Returns False when it was there already."""
    if image_digest(address, namespace, reference) == digest:
        return False
    ctr(address, namespace, "images", "import", str(archive))
    found = image_digest(address, namespace, reference)
    if found != digest:
        raise ContainerdError(f"after importing {archive}, {reference} is {found}, "
                              f"not {digest}")
    return True


class ScratchContainerd:
    """A containerd of its own in a temporary directory (root only).

    Use as a context manager; ``namespace`` should be unique to the caller,
    because ``ctr run`` makes cgroups named after it, which ``stop`` removes.
    """

    def __init__(self, namespace: str = "openfiles-images") -> None:
        self.namespace = namespace
        self.dir = Path(tempfile.mkdtemp(prefix="openfiles-ctr-"))
        self.address = str(self.dir / "containerd.sock")
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ScratchContainerd:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 30) -> None:
        if shutil.which("containerd") is None or shutil.which("ctr") is None:
            raise ContainerdError("containerd is not installed (Debian package containerd)")
        config = self.dir / "config.toml"
        config.write_text(CONFIG.format(dir=self.dir))
        with open(self.dir / "containerd.log", "wb") as log:
            self.process = subprocess.Popen(["containerd", "--config", str(config)],
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ContainerdError(f"containerd exited: {self.log()}")
            probe = subprocess.run(["ctr", "-a", self.address, "version"],
                                   capture_output=True, check=False)
            if probe.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise ContainerdError(f"containerd did not answer in {timeout}s: {self.log()}")
            time.sleep(0.2)

    def log(self) -> str:
        path = self.dir / "containerd.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def ctr(self, *args: str, timeout: float = 300) -> str:
        return ctr(self.address, self.namespace, *args, timeout=timeout)

    def run(self, reference: str, name: str, *argv: str, privileged: bool = False,
            timeout: float = 120) -> str:
        """``ctr run --rm`` of ``argv`` (the whole command line: ctr does not
        prepend the entry point) in ``reference``, without network; its output.
        A non-zero exit raises."""
        flags = ["--privileged"] if privileged else []
        return self.ctr("run", "--rm", *flags, reference, name, *argv, timeout=timeout)

    def stop(self) -> None:
        """Stop containerd and every task it left, unmount and delete its directory."""
        if self.process is not None and self.process.poll() is None:
            try:
                tasks = self.ctr("tasks", "ls", "-q", timeout=20).split()
            except (ContainerdError, subprocess.TimeoutExpired):
                tasks = []
            for task in tasks:
                subprocess.run(["ctr", "-a", self.address, "-n", self.namespace, "tasks",
                                "kill", "-s", "SIGKILL", task], capture_output=True, check=False)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        remove_tree(self.dir)
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            group = hierarchy / self.namespace
            if group.is_dir() and not group.is_symlink():
                for child in sorted(group.glob("*"), reverse=True):
                    if child.is_dir():
                        os.rmdir(child)
                os.rmdir(group)
