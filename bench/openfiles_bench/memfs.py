"""The FUSE ceiling of the benchmark: a trivial in-memory pyfuse3 file system.

Run as ``python -m openfiles_bench.memfs MOUNTPOINT``. It serves files
and directories held in Python memory, with no store and no disk behind them,
so whatever a workload costs on it is the cost of FUSE and pyfuse3 alone. The
benchmark uses it as the upper bound a pyfuse3 file system can reach on this
machine.

Contract:
- It is mounted when MOUNTPOINT shows up as a ``fuse`` mount in
  ``/proc/self/mountinfo``.
- SIGTERM or SIGINT unmounts it and exits 0. Nothing is kept: data lives only
  as long as the process.
- It supports what the workloads need (lookup, getattr, setattr for size and
  times, readdir, mkdir, create, open, read, write, unlink, rmdir, statfs) and
  answers ENOSYS to everything else.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import stat
import time
from dataclasses import dataclass, field

import pyfuse3
import trio


@dataclass
class Node:
    """One inode: a directory (``children``) or a regular file (``data[:size]``).

    ``data`` grows by doubling, so that appending 1 GiB in 1 MiB writes copies
    it about twice, not once per 1/8 growth as a plain bytearray would.
    """

    mode: int
    data: bytearray = field(default_factory=bytearray)
    size: int = 0
    children: dict[bytes, int] = field(default_factory=dict)
    mtime_ns: int = field(default_factory=time.time_ns)


def _resize(node: Node, size: int) -> None:
    """Set the file's length; new bytes read as zeros."""
    if size > len(node.data):
        node.data.extend(bytes(max(size, 2 * len(node.data)) - len(node.data)))
    elif size < node.size:
        node.data[size : node.size] = bytes(node.size - size)
    if size == 0:
        node.data = bytearray()
    node.size = size


class MemoryFS(pyfuse3.Operations):
    """A tree of :class:`Node` kept in a dict by inode number.

    Inodes are never reused, and forgotten inodes of unlinked files stay in
    the dict: the benchmark's runs are short, so lookup counts are not tracked.
    """

    def __init__(self, timeout: float, writeback: bool) -> None:
        super().__init__()
        # Same kernel attribute/entry cache lifetime as the other FUSE anchors
        # (rclone's --attr-timeout default, libfuse's default) so stat rates compare.
        self.timeout = timeout
        self.enable_writeback_cache = writeback
        self.nodes: dict[int, Node] = {pyfuse3.ROOT_INODE: Node(mode=stat.S_IFDIR | 0o755)}
        self.next_inode = pyfuse3.ROOT_INODE + 1

    def _node(self, inode: int) -> Node:
        try:
            return self.nodes[inode]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    def _attr(self, inode: int) -> pyfuse3.EntryAttributes:
        node = self._node(inode)
        attr = pyfuse3.EntryAttributes()
        attr.st_ino = inode
        attr.st_mode = node.mode
        attr.st_nlink = 2 if stat.S_ISDIR(node.mode) else 1
        attr.st_uid = os.getuid()
        attr.st_gid = os.getgid()
        attr.st_size = node.size
        attr.st_blksize = 1 << 20
        attr.st_blocks = (node.size + 511) // 512
        attr.st_atime_ns = attr.st_mtime_ns = attr.st_ctime_ns = node.mtime_ns
        attr.entry_timeout = self.timeout
        attr.attr_timeout = self.timeout
        return attr

    def _add(self, parent_inode: int, name: bytes, mode: int) -> int:
        parent = self._node(parent_inode)
        if name in parent.children:
            raise pyfuse3.FUSEError(errno.EEXIST)
        inode = self.next_inode
        self.next_inode += 1
        self.nodes[inode] = Node(mode=mode)
        parent.children[name] = inode
        return inode

    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent = self._node(parent_inode)
        if name == b".":
            return self._attr(parent_inode)
        if name not in parent.children:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attr(parent.children[name])

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attr(inode)

    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        node = self._node(inode)
        if fields.update_size:
            _resize(node, attr.st_size)
        if fields.update_mode:
            node.mode = stat.S_IFMT(node.mode) | stat.S_IMODE(attr.st_mode)
        if fields.update_mtime:
            node.mtime_ns = attr.st_mtime_ns
        return self._attr(inode)

    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        self._node(inode)
        return inode

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        # Offsets are positions in the sorted names; stable while nobody writes.
        names = sorted(self._node(fh).children)
        for index in range(start_id, len(names)):
            name = names[index]
            attr = self._attr(self._node(fh).children[name])
            if not pyfuse3.readdir_reply(token, name, attr, index + 1):
                return

    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        return self._attr(self._add(parent_inode, name, stat.S_IFDIR | (mode & 0o7777)))

    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        inode = self._add(parent_inode, name, stat.S_IFREG | (mode & 0o7777))
        return pyfuse3.FileInfo(fh=inode), self._attr(inode)

    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self._node(inode)
        if flags & os.O_TRUNC:
            _resize(node, 0)
        # keep_cache=False: every open drops the kernel's page cache of the
        # file, so reads measure FUSE round trips. (The benchmark also drops
        # it before each read, for every target alike.)
        return pyfuse3.FileInfo(fh=inode, keep_cache=False)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        node = self._node(fh)
        return bytes(memoryview(node.data)[off : min(off + size, node.size)])

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        node = self._node(fh)
        end = off + len(buf)
        if end > node.size:
            _resize(node, end)
        node.data[off:end] = buf
        return len(buf)

    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        parent = self._node(parent_inode)
        inode = parent.children.pop(name, None)
        if inode is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        _resize(self.nodes[inode], 0)

    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        parent = self._node(parent_inode)
        inode = parent.children.get(name)
        if inode is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if self.nodes[inode].children:
            raise pyfuse3.FUSEError(errno.ENOTEMPTY)
        del parent.children[name]

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        data = pyfuse3.StatvfsData()
        data.f_bsize = data.f_frsize = 4096
        data.f_blocks = data.f_bfree = data.f_bavail = 1 << 30
        data.f_files = data.f_ffree = data.f_favail = 1 << 30
        data.f_namemax = 255
        return data


async def _serve(early: list[int]) -> None:
    async with trio.open_nursery() as nursery:

        async def stop_on_signal(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                                 ) -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                task_status.started()
                async for _ in signals:
                    pyfuse3.terminate()
                    return

        await nursery.start(stop_on_signal)
        if not early:  # a signal that came while mounting: unmount without serving
            await pyfuse3.main()
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    """Mount the in-memory file system at MOUNTPOINT until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="bench_memfs", description=__doc__.splitlines()[0])
    parser.add_argument("mountpoint")
    parser.add_argument("--timeout", type=float, default=1.0, help="attr/entry cache seconds")
    parser.add_argument("--writeback", action="store_true", help="kernel writeback cache")
    args = parser.parse_args(argv)
    ops = MemoryFS(timeout=args.timeout, writeback=args.writeback)
    options = set(pyfuse3.default_options) | {"fsname=openfiles-bench-memfs"}
    # SIGTERM (the bench's death signal) may come as soon as the mount exists, before
    # trio listens: it must still unmount, not kill the process and leave a dead mount.
    early: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda n, _frame: early.append(n))
    pyfuse3.init(ops, args.mountpoint, options)
    try:
        trio.run(_serve, early)
    finally:
        pyfuse3.close(unmount=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
