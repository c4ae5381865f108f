"""The FUSE handlers of open files, and the state and helpers every handler shares.

:class:`OpenFileHandlers` is the base of
:class:`~openfiles_engine.fuse.operations.Operations`, which adds the handlers on
names, attributes and xattrs. This module holds the handlers
on an open file's contents (open, read, write, flush, release, fsync), the
table of open handles, and what both modules need: finding a node, marking it
dirty, truncating it, and dropping it once no lookup or handle holds it.

Every handler reads as validate -> act -> persist. What is needed to finish an
export after a crash is committed to SQLite before a handler returns.
"""

from __future__ import annotations

import errno
import os
import platform
import re
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pyfuse3
import trio

from openfiles_engine.cache.datafile import DataFiles
from openfiles_engine.config import MountConfig
from openfiles_engine.export.exporter import Exporter
from openfiles_engine.fuse.entry import entry
from openfiles_engine.fuse.errors import fail, handler
from openfiles_engine.read import Downloader, Readahead
from openfiles_engine.state.inode import Node
from openfiles_engine.state.journal import Journal
from openfiles_engine.state.listing import Lister
from openfiles_engine.state.tree import Tree

DIRECT_WRITES = tuple(int(n) for n in
                      re.findall(r"\d+", platform.release())[:2]) >= (6, 18)
"""Write-only handles bypass the page cache only on kernels from 6.18 on, which drop
the cached pages a direct write makes stale (``_open_handle``); older ones keep
the cached write path."""
SPACE_RESERVE = 2 * 2**20
"""Bytes kept free on the cache disk for SQLite: data writes fail first."""


@dataclass
class Handle:
    ino: int
    writer: bool = False
    append: bool = False
    """Opened ``O_APPEND``: every append goes to the end the engine holds (``write``)."""
    kernel_end: int = -1
    """Where the kernel puts this handle's next append after one was moved (``write``)."""
    ra: Readahead = field(default_factory=Readahead)


async def _beside_fsync(fd: int, body: Callable[[], Awaitable[None]]) -> None:
    """Run ``body`` while a worker thread fsyncs ``fd`` (then closed); return once both
    have ended. An error comes out as itself, the body's first (not inside an
    ExceptionGroup: the handler turns it into its errno)."""
    errors: dict[str, Exception] = {}

    async def run(name: str, call: Callable[[], Awaitable[object]]) -> None:
        try:
            await call()
        except Exception as exc:
            errors[name] = exc

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "sync", partial(trio.to_thread.run_sync, os.fsync, fd))
            nursery.start_soon(run, "body", body)
    finally:
        os.close(fd)
    if errors:
        raise errors.get("body") or errors["sync"]


class OpenFileHandlers(pyfuse3.Operations):
    """Open, read, write, flush, release, fsync; the handle table and the shared helpers."""

    # No writeback cache: with it the kernel keeps its own i_size for cached
    # inodes and never takes the bucket's size after a remote change, which
    # breaks close-to-open consistency (measured; see docs/SEMANTICS.md).
    enable_writeback_cache = False

    def __init__(self, cfg: MountConfig, tree: Tree, data: DataFiles, lister: Lister,
                 downloader: Downloader, exporter: Exporter, journal: Journal,
                 notify: Callable[[int, str | None], None]) -> None:
        super().__init__()
        self.cfg = cfg
        self.tree = tree
        self.data = data
        self.lister = lister
        self.downloader = downloader
        self.exporter = exporter
        self.journal = journal
        self.notify = notify
        self.handles: dict[int, Handle] = {}
        self.dir_handles: dict[int, tuple[int, list[str]]] = {}
        self._next_fh = 1

    # helpers
    def _entry(self, node: Node) -> Any:
        subdirs = self.tree.subdirs(node.ino) if node.kind == "dir" else 0
        node.told_size = node.size
        return entry(node, self.cfg.policy.metadata_ttl, subdirs)

    def _node(self, ino: int) -> Node:
        node = self.tree.get(ino)
        return node if node is not None else fail(errno.ENOENT)

    async def _dir(self, ino: int, name: str | None = None) -> Node:
        """The directory ``ino``, listed; ``name``: only that entry must be settled
        (a lookup), not the whole directory (``Lister.ensure``)."""
        node = self._node(ino)
        if node.kind != "dir":
            fail(errno.ENOTDIR)
        await self.lister.ensure(node, self.cfg.policy.metadata_ttl, name)
        return node

    def _writable(self, parent: Node | None = None) -> None:
        if self.cfg.read_only:
            fail(errno.EROFS)
        if parent is not None and parent.lost:
            fail(errno.EPERM)  # lost+found only gives files back, it takes none

    def _truncate(self, node: Node, size: int) -> None:
        """Set the size (the caller fetched the bytes first unless ``size`` is 0)."""
        if not size:
            node.full, node.ranges = True, []
        self.exporter.streams.stop(node.ino, "truncated")
        self.data.invalidate(node.ino)  # no fetched byte may land after this
        self.downloader.changed(node)
        self.data.truncate(node.ino, size)
        node.size = size
        node.mtime_ns = time.time_ns()
        self._mark_dirty(node, data=True)

    def _check_space(self, size: int) -> None:
        """ENOSPC before the cache disk is so full that the metadata cannot be saved."""
        st = os.statvfs(self.cfg.cache_dir)
        if st.f_bavail * st.f_frsize < size + SPACE_RESERVE:
            fail(errno.ENOSPC)

    def _mark_dirty(self, node: Node, data: bool) -> None:
        """Every change of a node ends here: bumps its change counter (see ``Node.changes``)."""
        node.mark_dirty(data=data)
        node.ctime_ns = time.time_ns()

    def _release_node(self, node: Node) -> None:
        if node.parent == 0 and node.lookups <= 0 and node.opens <= 0:
            self.tree.remove(node)
            # In a transaction (a listing finding objects gone) only once it commits:
            # a rollback puts the node back, and its data file must still be there.
            self.tree.db.after_commit(partial(self._forget_local, node.ino))

    def _forget_local(self, ino: int) -> None:
        self.data.drop(ino)
        self.lister.forget(ino)
        self.downloader.forget(ino)
        self.exporter.forget(ino)

    def gone(self, node: Node) -> None:
        """The bucket no longer has ``node`` (listing or revalidation found out)."""
        parent, name = node.parent, node.name
        # Entries before their directory (``descendants`` lists parents first).
        for child in [*reversed(self.tree.descendants(node)), node]:
            self.tree.detach(child)
            self._release_node(child)
        self.notify(parent, name)

    def _open_handle(self, node: Node, writer: bool, flags: int) -> Any:
        """A handle on ``node`` opened with ``flags``; a write-only one bypasses the
        kernel's page cache.

        Its writes then cost the writing process no copy into new page-cache pages
        (up to 2 s of kernel time per GiB on this VM; docs/ENGINE.md, "Write-only
        handles"). A write-only handle can neither read nor be mapped, so nothing is
        lost. Readers stay coherent: every write sets a new mtime, and the kernel drops
        a file's cached pages when it finds the mtime changed (libfuse's
        ``auto_inval_data``; a write marks the kernel's attributes stale), and the
        kernel drops the written range of every cached page itself since the fix of
        2025 that 6.18 has (``DIRECT_WRITES``): before it, a reader that mapped the
        file could keep old pages.
        """
        fh = self._next_fh
        self._next_fh += 1
        self.handles[fh] = Handle(node.ino, writer, bool(flags & os.O_APPEND))
        node.opens += 1
        node.writers += writer
        # Not for a set-user/group-ID file: only the cached write path makes the kernel
        # clear those bits on a write (direct writes leave it to the server).
        direct = (flags & os.O_ACCMODE == os.O_WRONLY and DIRECT_WRITES
                  and not node.mode & (stat.S_ISUID | stat.S_ISGID))
        return pyfuse3.FileInfo(fh=fh, direct_io=direct)

    # open files
    @handler
    async def open(self, inode: int, flags: int, ctx: Any) -> Any:
        node = self._node(inode)
        if flags & os.O_ACCMODE != os.O_RDONLY:
            self._writable()
        seen = node.etag
        if not await self.lister.revalidate(node, self.cfg.policy.metadata_ttl):
            fail(errno.ENOENT)
        info = self._open_node(node, flags)
        if node.etag != seen:
            # Another version: the kernel drops its pages of the old one now. It would
            # keep them when size and mtime (whole seconds on Azure) look the same.
            info.keep_cache = False
        return info

    def _open_node(self, node: Node, flags: int) -> Any:
        """A handle on ``node`` for ``flags`` (open, or a create of an existing name)."""
        writer = flags & os.O_ACCMODE != os.O_RDONLY
        if writer:
            self._writable()
        if flags & os.O_TRUNC and node.kind == "file":  # libfuse turns on atomic_o_trunc
            self._truncate(node, 0)
            self.tree.save(node)
        return self._open_handle(node, writer, flags)

    @handler
    # pyfuse3 replies with any buffer (it takes PyObject_GetBuffer); its stub says bytes.
    async def read(self, fh: int, off: int, size: int) -> bytes | memoryview:  # type: ignore[override]
        handle = self.handles[fh]
        return await self.downloader.read(self._node(handle.ino), off, size, handle.ra)

    @handler
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        handle = self.handles[fh]
        node = self._node(handle.ino)
        if not (node.full and node.data_dirty):  # the data file must hold it exactly
            await self.downloader.fill(node)
        if handle.append and off != node.size and off in (node.told_size, handle.kernel_end):
            # Without a writeback cache the file system places appends (libfuse's
            # documentation of open): the kernel's offset is the size its last lookup
            # gave, and the open after that lookup may have found another version in
            # the bucket. Its size (and a read-write handle's pages) are then wrong:
            # it is told to drop them, once per gap. Only an append is moved: a write
            # elsewhere through such a handle (a mapped page written back) stays put.
            if handle.kernel_end != off:
                self.notify(node.ino, None)
            handle.kernel_end = off + len(buf)
            off = node.size
        self._check_space(len(buf))
        self.downloader.changed(node)
        written = self.data.write(node.ino, off, buf)
        node.size = max(node.size, off + written)
        node.mtime_ns = time.time_ns()
        node.last_access = time.time()
        first = not node.data_dirty
        before = node.data_change
        self._mark_dirty(node, data=True)
        self.exporter.streams.wrote(node, off, buf[:written] if written < len(buf) else buf,
                                    before)
        if first:
            self.tree.save(node)
        else:
            node.unsaved = True  # the size and mtime are committed at flush/close
        return written

    @handler
    async def flush(self, fh: int) -> None:
        node = self._node(self.handles[fh].ino)
        if node.unsaved:
            self.tree.save(node)

    @handler
    async def release(self, fh: int) -> None:
        handle = self.handles.pop(fh)
        node = self._node(handle.ino)
        node.opens -= 1
        node.writers -= handle.writer
        if node.writers <= 0:
            self.exporter.streams.closed(node.ino)
        if node.opens <= 0:
            self.downloader.closed(node)
        if node.unsaved:
            self.tree.save(node)
        self._release_node(node)
        if node.dirty and handle.writer:
            self.exporter.wake()  # the delay that applies may have just become shorter

    @handler
    async def fsync(self, fh: int, datasync: bool) -> None:
        node = self._node(self.handles[fh].ino)
        # The data file's sync (its writes went through the page cache) runs in a
        # worker thread beside the export, which reads the same pages: a big file's
        # sync no longer holds up the event loop, nor its upload.
        async def save_and_export() -> None:
            self.tree.save(node)
            self.tree.db.sync()
            await self.exporter.export(node)

        await _beside_fsync(self.data.fsync_fd(node.ino), save_and_export)
        if node.lost:
            fail(errno.EIO)  # the bucket changed underneath: our copy is in lost+found
