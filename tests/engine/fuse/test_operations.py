"""The rows of docs/SEMANTICS.md on names, attributes and xattrs (fs.py), on real
FUSE mounts over file:// and MinIO. The rows on file contents are in test_openfile.py."""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from ..conftest import Backend, MountFactory, fresh

pytestmark = [pytest.mark.fuse, pytest.mark.timeout(120)]


def test_unlink_deletes_object(mounter: MountFactory, backend: Backend) -> None:
    backend.write("gone.txt", b"x")
    m = mounter(backend)
    (m.path / "gone.txt").unlink()
    assert not (m.path / "gone.txt").exists()
    assert m.flush()["ok"]
    assert "gone.txt" not in backend.keys()


def test_empty_directories_persist_and_rmdir(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend)
    (m.path / "empty" / "nested").mkdir(parents=True)
    (m.path / "full").mkdir()
    (m.path / "full" / "f").write_bytes(b"1")
    with pytest.raises(OSError) as info:
        (m.path / "full").rmdir()
    assert info.value.errno == errno.ENOTEMPTY
    assert m.flush()["ok"]
    other = fresh(mounter, backend)
    assert (other.path / "empty" / "nested").is_dir()
    (other.path / "empty" / "nested").rmdir()
    assert other.flush()["ok"]
    third = fresh(mounter, backend)
    assert (third.path / "empty").is_dir()
    assert not (third.path / "empty" / "nested").exists()


def test_rename_file_and_directory(mounter: MountFactory, backend: Backend) -> None:
    backend.write("d/a.txt", b"A")
    backend.write("d/sub/b.txt", b"B")
    backend.write("top.txt", b"T")
    m = mounter(backend)
    os.rename(m.path / "top.txt", m.path / "moved.txt")
    os.rename(m.path / "d", m.path / "e")
    assert (m.path / "e" / "sub" / "b.txt").read_bytes() == b"B"
    assert (m.path / "moved.txt").read_bytes() == b"T"
    assert m.flush()["ok"]
    keys = [k for k in backend.keys() if not k.startswith(".openfiles-meta")]
    assert keys == ["e/a.txt", "e/sub/b.txt", "moved.txt"]
    # the moved files are clean: writing again is a normal conditional update
    (m.path / "moved.txt").write_bytes(b"T2")
    assert m.flush()["ok"]
    assert backend.read("moved.txt") == b"T2"
    assert m.status()["conflicts"] == 0


def test_rename_replaces_target(mounter: MountFactory, backend: Backend) -> None:
    backend.write("a", b"old-a")
    backend.write("b", b"old-b")
    m = mounter(backend)
    os.replace(m.path / "a", m.path / "b")
    assert m.flush()["ok"]
    assert [k for k in backend.keys() if not k.startswith(".")] == ["b"]
    assert backend.read("b") == b"old-a"


def test_symlink_persists(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend)
    os.symlink("target/file.txt", m.path / "link")
    assert os.readlink(m.path / "link") == "target/file.txt"
    assert m.flush()["ok"]
    other = fresh(mounter, backend)
    assert os.readlink(other.path / "link") == "target/file.txt"


def test_hard_link_is_refused(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend)
    (m.path / "f").write_bytes(b"1")
    with pytest.raises(OSError) as info:
        os.link(m.path / "f", m.path / "g")
    assert info.value.errno == errno.EPERM


def test_chmod_chown_utimens_persist(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend)
    p = m.path / "f"
    p.write_bytes(b"data")
    os.chmod(p, 0o640)
    os.chown(p, 1234, 5678)
    os.utime(p, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    (m.path / "d").mkdir(mode=0o700)
    assert m.flush()["ok"]
    other = fresh(mounter, backend)
    st = os.stat(other.path / "f")
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 1234, 5678)
    assert st.st_mtime_ns == 1_000_000_000_000_000_000
    assert os.stat(other.path / "d").st_mode & 0o7777 == 0o700
    assert (other.path / "f").read_bytes() == b"data"


def test_setgid_directory_hands_down_its_group(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend)
    shared = m.path / "shared"
    shared.mkdir()
    os.chown(shared, -1, 4321)
    os.chmod(shared, 0o2775)
    (shared / "f").write_bytes(b"x")
    os.symlink("f", shared / "l")
    (shared / "sub").mkdir(mode=0o755)
    (shared / "sub" / "g").write_bytes(b"y")
    (m.path / "plain").mkdir()
    (m.path / "plain" / "h").write_bytes(b"z")
    for path in ("shared/f", "shared/sub", "shared/sub/g"):
        assert os.stat(m.path / path).st_gid == 4321, path
    assert os.lstat(shared / "l").st_gid == 4321
    assert os.stat(shared / "sub").st_mode & 0o7777 == 0o2755  # the bit is handed down too
    assert os.stat(m.path / "plain" / "h").st_gid == os.getgid()
    assert m.flush()["ok"]
    other = fresh(mounter, backend)
    assert os.stat(other.path / "shared" / "sub" / "g").st_gid == 4321
    assert os.stat(other.path / "shared" / "sub").st_mode & 0o7777 == 0o2755


def test_xattrs_persist(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend)
    p = m.path / "f"
    p.write_bytes(b"x")
    os.setxattr(p, "user.color", b"blue")
    os.setxattr(p, "user.gone", b"1")
    os.removexattr(p, "user.gone")
    with pytest.raises(OSError) as info:
        os.setxattr(p, "security.selinux", b"x")
    assert info.value.errno == errno.ENOTSUP
    assert m.flush()["ok"]
    other = fresh(mounter, backend)
    q = other.path / "f"
    assert os.getxattr(q, "user.color") == b"blue"
    assert os.listxattr(q) == ["user.color"]
    with pytest.raises(OSError) as info:
        os.getxattr(q, "user.gone")
    assert info.value.errno == errno.ENODATA


def test_acls_and_security_labels_are_not_supported(mounter: MountFactory,
                                                    backend: Backend) -> None:
    """ENOTSUP (not ENODATA) on get, so tools learn once that the mount has none."""
    m = mounter(backend)
    p = m.path / "f"
    p.write_bytes(b"x")
    for name in ("security.selinux", "system.posix_acl_access", "system.posix_acl_default"):
        with pytest.raises(OSError) as info:
            os.getxattr(p, name)
        assert info.value.errno == errno.ENOTSUP, name
    # Remove says the same as get. (The kernel answers a default ACL's removal on a
    # file itself, with success: only a directory has one.)
    (m.path / "d").mkdir()
    for path, name in ((p, "security.selinux"), (p, "system.posix_acl_access"),
                       (m.path / "d", "system.posix_acl_default")):
        with pytest.raises(OSError) as info:
            os.removexattr(path, name)
        assert info.value.errno == errno.ENOTSUP, name


def test_ls_long_asks_the_engine_once_per_listing(mounter: MountFactory,
                                                  backend: Backend) -> None:
    """A warm `ls -l` is answered by the kernel's attribute cache (timeouts of
    --metadata-ttl), and GNU ls stops asking for ACLs and labels after the first
    ENOTSUP: a handful of FUSE requests, not a few per entry."""
    m = mounter(backend, "--metadata-ttl", "60")
    (m.path / "d").mkdir()
    for i in range(200):
        (m.path / "d" / f"f{i:03d}").write_bytes(b"x")
    listing = subprocess.run(["ls", "-l", str(m.path / "d")], capture_output=True, text=True,
                             check=True)
    assert len(listing.stdout.splitlines()) == 201  # "total" and 200 files
    before = m.status()["fuse_latency"]["count"]
    subprocess.run(["ls", "-l", str(m.path / "d")], capture_output=True, check=True)
    requests = m.status()["fuse_latency"]["count"] - before
    assert requests < 20, f"a warm ls -l of 200 files took {requests} FUSE requests"


def test_statfs(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend)
    st = os.statvfs(m.path)
    assert st.f_namemax == 255
    assert st.f_blocks > 0 and st.f_bsize > 0


def test_name_too_long(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend)
    with pytest.raises(OSError) as info:
        (m.path / ("n" * 256)).write_bytes(b"x")
    assert info.value.errno == errno.ENAMETOOLONG
    deep = m.path
    for _ in range(4):
        deep = deep / ("d" * 250)
        deep.mkdir()  # 4 x 251 bytes: the key is still under the limit
    with pytest.raises(OSError) as info:
        (deep / "x").write_bytes(b"x")  # the sidecar key would pass 1024 bytes
    assert info.value.errno == errno.ENAMETOOLONG


def test_read_only_mount(mounter: MountFactory, backend: Backend) -> None:
    backend.write("r.txt", b"r")
    m = mounter(backend, "--read-only")
    assert (m.path / "r.txt").read_bytes() == b"r"
    with pytest.raises(OSError) as info:
        (m.path / "w.txt").write_bytes(b"w")
    assert info.value.errno == errno.EROFS


def test_hidden_reserved_names(mounter: MountFactory, backend: Backend) -> None:
    # The CSI controller's marker is in the root of every volume it created.
    backend.write(".openfiles-volume.json", b'{"name": "pvc-1"}')
    m = mounter(backend)
    for name in (".openfiles-meta", ".openfiles-volume.json"):
        with pytest.raises(OSError) as info:
            (m.path / name).mkdir()
        assert info.value.errno == errno.EPERM
    (m.path / "d").mkdir()
    assert m.flush()["ok"]
    assert {".openfiles-meta", ".openfiles-volume.json"}.isdisjoint(os.listdir(m.path))
    assert backend.read(".openfiles-volume.json") == b'{"name": "pvc-1"}'


def test_special_files_persist_as_metadata(mounter: MountFactory, backend: Backend) -> None:
    """FIFOs, sockets and device nodes: a zero-byte object plus a sidecar with their
    kind and rdev; the kernel does their I/O."""
    m = mounter(backend)
    os.mkfifo(m.path / "fifo", 0o640)
    os.mknod(m.path / "chr", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(m.path / "blk", 0o600 | stat.S_IFBLK, os.makedev(7, 0))
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(m.path / "sock"))
    os.mknod(m.path / "plain", 0o644 | stat.S_IFREG)
    fd = os.open(m.path / "fifo", os.O_RDWR | os.O_NONBLOCK)  # the kernel's pipe
    try:
        os.write(fd, b"through the pipe")
        assert os.read(fd, 100) == b"through the pipe"
    finally:
        os.close(fd)
    assert m.flush()["ok"]
    assert backend.read("fifo") == b"" and backend.read("chr") == b""
    other = fresh(mounter, backend)
    kinds = {name: os.lstat(other.path / name) for name in ("fifo", "chr", "blk", "sock")}
    assert stat.S_ISFIFO(kinds["fifo"].st_mode) and kinds["fifo"].st_mode & 0o7777 == 0o640
    assert stat.S_ISCHR(kinds["chr"].st_mode) and kinds["chr"].st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(kinds["blk"].st_mode) and kinds["blk"].st_rdev == os.makedev(7, 0)
    assert stat.S_ISSOCK(kinds["sock"].st_mode)
    assert (other.path / "plain").is_file()
    os.rename(other.path / "fifo", other.path / "fifo2")
    (other.path / "chr").unlink()
    assert other.flush()["ok"]
    third = fresh(mounter, backend)
    assert stat.S_ISFIFO(os.lstat(third.path / "fifo2").st_mode)
    assert not (third.path / "fifo").exists() and not (third.path / "chr").exists()


def test_missing_names_over_255_bytes_are_enametoolong(mounter: MountFactory,
                                                      backend: Backend) -> None:
    m = mounter(backend)
    (m.path / "d").mkdir()
    (m.path / "f").write_bytes(b"x")
    long = m.path / ("n" * 256)
    calls = {
        "stat": lambda: os.stat(long),
        "unlink": lambda: os.unlink(long),
        "chmod": lambda: os.chmod(long, 0o600),
        "rename from": lambda: os.rename(long, m.path / "g"),
        "rename to": lambda: os.rename(m.path / "f", long),
        "rmdir": lambda: os.rmdir(long),
        "truncate": lambda: os.truncate(long, 0),
        "link": lambda: os.link(long, m.path / "h"),
        "mkdir": lambda: os.mkdir(long),
        "in a directory": lambda: os.stat(m.path / "d" / ("n" * 256)),
    }
    for what, call in calls.items():
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.ENAMETOOLONG, what


def test_a_directory_links_its_subdirectories(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend, "--metadata-ttl", "0")
    d = m.path / "d"
    for sub in ("a", "b", "c"):
        (d / sub).mkdir(parents=True)
    (d / "f").write_bytes(b"x")
    assert os.stat(d).st_nlink == 5  # ".", the entry in its parent, and three ".."
    assert os.stat(d / "a").st_nlink == 2
    (d / "c").rmdir()
    os.rename(d / "b", m.path / "b")
    assert os.stat(d).st_nlink == 3
    assert os.stat(m.path / "b").st_nlink == 2
    assert m.flush()["ok"]
    other = fresh(mounter, backend)
    assert os.stat(other.path / "d").st_nlink == 2  # not listed yet: what the tree knows
    os.listdir(other.path / "d")
    assert os.stat(other.path / "d").st_nlink == 3


def test_an_unlinked_open_file_has_no_links(mounter: MountFactory, backend: Backend) -> None:
    m = mounter(backend)
    p = m.path / "f"
    p.write_bytes(b"x")
    with open(p, "rb") as f:
        assert os.fstat(f.fileno()).st_nlink == 1
        p.unlink()
        assert os.fstat(f.fileno()).st_nlink == 0
        assert f.read() == b"x"


def test_atime_set_on_purpose_persists(mounter: MountFactory, backend: Backend) -> None:
    atime, mtime = 1_100_000_000_123_456_789, 1_200_000_000_000_000_000
    m = mounter(backend)
    p = m.path / "f"
    p.write_bytes(b"data")
    os.utime(p, ns=(atime, mtime))
    assert os.stat(p).st_atime_ns == atime
    (m.path / "g").write_bytes(b"only atime")
    os.utime(m.path / "g", ns=(atime, os.stat(m.path / "g").st_mtime_ns))  # touch -a -d
    assert m.flush()["ok"]
    assert (m.path / "f").read_bytes() == b"data"  # reads do not move atime (noatime)
    m.stop()
    again = mounter(backend, cache=m.cache)  # from SQLite
    assert (os.stat(again.path / "f").st_atime_ns, os.stat(again.path / "f").st_mtime_ns) == (
        atime, mtime)
    again.stop()
    other = fresh(mounter, backend)  # from the sidecar
    assert (os.stat(other.path / "f").st_atime_ns, os.stat(other.path / "f").st_mtime_ns) == (
        atime, mtime)
    assert os.stat(other.path / "g").st_atime_ns == atime


def test_flock_is_local_and_atime_is_mtime(mounter: MountFactory, backend: Backend) -> None:
    import fcntl

    m = mounter(backend)
    p = m.path / "locked"
    p.write_bytes(b"x")
    with open(p, "rb") as a, open(p, "rb") as b:
        fcntl.flock(a, fcntl.LOCK_EX)
        with pytest.raises(BlockingIOError):
            fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(a, fcntl.LOCK_UN)
        a.read()
    st = os.stat(p)
    assert st.st_atime_ns == st.st_mtime_ns


def fill(disk: Path) -> Path:
    """Fill the file system of ``disk`` up to the last block; returns the filler file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


@pytest.mark.root
def test_a_change_that_cannot_be_saved_leaves_the_mount_as_it_was(
        small_tmpfs: Path, mounter: MountFactory, file_backend: Backend) -> None:
    """With the cache disk full, SQLite cannot commit an unlink, a rename, an rmdir, a
    create or a mkdir: each fails with ENOSPC and changes nothing, in memory either (no
    phantom journal entry that would make every flush fail), and the mount goes on
    once there is room."""
    m = mounter(file_backend, "--export-delay", "3600", cache=small_tmpfs / "cache")
    (m.path / "f").write_bytes(b"kept")
    (m.path / "d").mkdir()
    assert m.flush()["ok"]
    filler = fill(small_tmpfs)
    attempts = [lambda: (m.path / "f").unlink(), lambda: os.rename(m.path / "f", m.path / "g"),
                lambda: os.rename(m.path / "f", m.path / "d" / "f"),
                lambda: (m.path / "d").rmdir(), lambda: (m.path / "new").write_bytes(b""),
                lambda: (m.path / "e").mkdir()]
    for i, attempt in enumerate(attempts):
        with pytest.raises(OSError) as info:
            attempt()
        assert info.value.errno == errno.ENOSPC, f"attempt {i}: {info.value}"
    filler.unlink()
    assert sorted(os.listdir(m.path)) == [".openfiles-lost+found-test", "d", "f"]
    assert os.listdir(m.path / "d") == []
    assert (m.path / "f").read_bytes() == b"kept"
    assert m.flush()["ok"]
    assert file_backend.keys() == [".openfiles-meta/d.meta", "f"]
    os.rename(m.path / "f", m.path / "d" / "f")
    assert m.flush()["ok"]
    assert file_backend.keys() == [".openfiles-meta/d.meta", "d/f"]
