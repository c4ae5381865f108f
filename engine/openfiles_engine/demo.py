"""``openfiles demo``: the main job on an embedded default, with no server and no account.

Mounts a ``file://`` bucket under a temporary directory, writes and reads
through the mount, flushes, prints the objects that landed in the bucket,
and unmounts. Works as root and as a user who may use ``fusermount3``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from openfiles_contracts import readiness
from openfiles_contracts.jsonline import request
from openfiles_contracts.mountinfo import fuse_mounted
from openfiles_engine.mountpoint import unmount

READY_TIMEOUT = 30.0


def _wait_ready(proc: subprocess.Popen[bytes], mnt: Path, sock: Path, log: Path) -> None:
    def check() -> None:
        if proc.poll() is not None:
            raise RuntimeError(f"the engine exited:\n{log.read_text(errors='replace')}")

    if not readiness.wait(str(mnt), str(sock), READY_TIMEOUT, check=check):
        raise RuntimeError(f"the engine did not come up:\n{log.read_text(errors='replace')}")


def _demo(root: Path) -> int:
    bucket, mnt, cache = root / "bucket", root / "mnt", root / "cache"
    sock, log = root / "control.sock", root / "engine.log"
    bucket.mkdir()
    mnt.mkdir()
    source = f"file://{bucket}"
    print(f"1. mount {source}\n   at    {mnt}")
    argv = [sys.executable, "-m", "openfiles_cli", "mount", source, str(mnt), "--foreground",
            "--cache-dir", str(cache), "--control-socket", str(sock), "--export-delay", "60s"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        _wait_ready(proc, mnt, sock, log)
        print("2. write through the mount")
        payload = os.urandom(5 * 2**20)
        files = {
            "hello.txt": b"Hello from OpenFiles!\n",
            "notes/todo.md": b"- write through a FUSE mount\n- flush to the bucket\n",
            "data/random.bin": payload,
        }
        for name, data in files.items():
            path = mnt / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"   wrote {name} ({len(data)} bytes)")
        os.symlink("hello.txt", mnt / "greeting")
        print("3. read it back")
        for name, data in files.items():
            if (mnt / name).read_bytes() != data:
                print(f"   MISMATCH in {name}", file=sys.stderr)
                return 1
        print(f"   {len(files)} files read back intact; greeting -> "
              f"{os.readlink(mnt / 'greeting')}")
        status = request(str(sock), {"op": "status"})["status"]
        print(f"   dirty before flush: {status['dirty_files']} files, "
              f"{status['dirty_bytes']} bytes")
        print("4. flush (export every dirty file now)")
        reply = request(str(sock), {"op": "flush", "timeout": 60}, timeout=90)
        if not reply.get("ok"):
            print(f"   flush failed: {reply.get('error')}", file=sys.stderr)
            return 1
        print(f"5. objects in the bucket ({bucket}):")
        for obj in sorted(p for p in bucket.rglob("*") if p.is_file()):
            key = obj.relative_to(bucket)
            digest = hashlib.sha256(obj.read_bytes()).hexdigest()[:12]
            print(f"   {obj.stat().st_size:>9}  {digest}  {key}")
        if (bucket / "data/random.bin").read_bytes() != payload:
            print("   the bucket does not hold what was written", file=sys.stderr)
            return 1
        print("   (.openfiles-meta/ holds the symlink's and directories' attributes)")
    finally:
        print("6. unmount")
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if fuse_mounted(str(mnt)):
            unmount(str(mnt))
    print("done.")
    return 0 if proc.returncode == 0 else 1


def main(argv: list[str]) -> int:
    """Entry point of ``openfiles demo``; ``argv[0]`` is the subcommand name."""
    parser = argparse.ArgumentParser(prog="openfiles demo", description=__doc__)
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (bucket, cache, log) afterwards")
    args = parser.parse_args(argv[1:])
    root = Path(tempfile.mkdtemp(prefix="openfiles-demo-"))
    try:
        return _demo(root)
    except (OSError, RuntimeError) as exc:
        print(f"openfiles demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
