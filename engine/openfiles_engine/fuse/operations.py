"""The pyfuse3 Operations: names, attributes and xattrs, on top of the open-file handlers.

:class:`Operations` (the object pyfuse3 serves) adds to
:class:`~openfiles_engine.fuse.openfile.OpenFileHandlers` (open, read, write,
flush, release, fsync, and the state and helpers every handler shares) the
handlers on the namespace: lookups and attributes, directories, creating
and removing entries, rename, xattrs and statfs.

Every handler reads as validate -> act -> persist. What is needed to finish an
export after a crash is committed to SQLite before a handler returns.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Sequence
from typing import Any

import pyfuse3

from openfiles_engine.bucket.layout import KEY_MAX, META_DIR, META_SUFFIX, is_reserved, join
from openfiles_engine.fuse import rename, xattr
from openfiles_engine.fuse.entry import checked_name, existing_name
from openfiles_engine.fuse.errors import fail, handler
from openfiles_engine.fuse.openfile import OpenFileHandlers
from openfiles_engine.state.inode import ROOT, Node
from openfiles_engine.state.journal import versions

EXPLICIT_MTIME_NS = 2 * 10**9
"""A time set further than this from now was set on purpose (a sidecar keeps it)."""
MKNOD_KINDS = {stat.S_IFREG: "file", stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket",
               stat.S_IFCHR: "chardev", stat.S_IFBLK: "blockdev"}


class Operations(OpenFileHandlers):
    """Every pyfuse3 handler of one mount; :class:`~openfiles_engine.engine.Engine` serves it."""

    # helpers
    @staticmethod
    def _group(parent: Node, ctx: Any) -> int:
        """The group of a new entry: the directory's if it is set-group-ID (as on ext4)."""
        return parent.gid if parent.mode & stat.S_ISGID else int(ctx.gid)

    def _new_key(self, parent: Node, name: str) -> str:
        if parent.ino == ROOT and is_reserved(name):
            fail(errno.EPERM)
        key = join(self.tree.path(parent), name)
        if len(f"{META_DIR}/{key}{META_SUFFIX}".encode()) > KEY_MAX:
            fail(errno.ENAMETOOLONG)
        return key

    def _touch_dir(self, node: Node) -> None:
        """An entry of a directory was added or removed: a new mtime.

        The directory is kept in the bucket even if it becomes empty (it gets a
        sidecar). Its new mtime reaches the bucket when the directory is exported
        anyway: if it is dirty (an export in flight exports it again) or has no
        sidecar yet, not for every entry of an exported one (docs/SEMANTICS.md).
        """
        self.tree.will_change(node)
        node.mtime_ns = node.ctime_ns = time.time_ns()
        if node.ino == ROOT or node.lost:
            return
        if node.dirty:
            node.mark_dirty(data=False)  # an export in flight must not mark it clean
        elif not node.sidecar:
            node.custom = True
            node.mark_dirty(data=False)
            self.tree.save(node)  # only when the flags change: one commit per create

    # lookups and attributes
    @handler
    async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> Any:
        text = existing_name(name)
        parent = await self._dir(parent_inode, text if text not in (".", "..") else None)
        if text == "..":
            node = self._node(parent.parent or ROOT)
        elif text == ".":
            node = parent
        else:
            found = self.tree.child(parent.ino, text)
            node = found if found is not None else fail(errno.ENOENT)
        node.lookups += 1
        return self._entry(node)

    @handler
    async def getattr(self, inode: int, ctx: Any = None) -> Any:
        return self._entry(self._node(inode))

    @handler
    async def setattr(self, inode: int, attr: Any, fields: Any, fh: int | None, ctx: Any) -> Any:
        node = self._node(inode)
        self._writable()
        if fields.update_size:
            if node.kind != "file":
                fail(errno.EINVAL)
            if attr.st_size and not (node.full and node.data_dirty):
                await self.downloader.fill(node)
            self._truncate(node, attr.st_size)
        if fields.update_mode:
            node.mode = attr.st_mode & 0o7777
            self._mark_dirty(node, data=False)
        if fields.update_uid:
            node.uid = attr.st_uid
            self._mark_dirty(node, data=False)
        if fields.update_gid:
            node.gid = attr.st_gid
            self._mark_dirty(node, data=False)
        if fields.update_mtime:
            node.mtime_ns = attr.st_mtime_ns
            # The kernel's writeback cache stamps "now" itself; only a time set on
            # purpose (touch -d, cp -p, tar) is worth a sidecar.
            if abs(attr.st_mtime_ns - time.time_ns()) > EXPLICIT_MTIME_NS:
                node.explicit_mtime = True
            self._mark_dirty(node, data=False)
        if fields.update_atime:
            # Stored whenever it is set; only a time set on purpose (touch -a -d,
            # cp -p, tar) makes a sidecar on its own. Reads never move it.
            node.atime_ns = attr.st_atime_ns
            if abs(attr.st_atime_ns - time.time_ns()) > EXPLICIT_MTIME_NS:
                node.explicit_atime = True
            self._mark_dirty(node, data=False)
        self.tree.save(node)
        return self._entry(node)

    @handler
    async def readlink(self, inode: int, ctx: Any) -> bytes:
        node = self._node(inode)
        return os.fsencode(node.target) if node.kind == "symlink" else fail(errno.EINVAL)

    @handler
    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, count in inode_list:
            node = self.tree.get(ino)
            if node is not None:
                node.lookups -= count
                self._release_node(node)

    # directories
    @handler
    async def opendir(self, inode: int, ctx: Any) -> int:
        await self._dir(inode)
        fh = self._next_fh
        self._next_fh += 1
        # One sorted snapshot per opendir: readdir comes back many times for a big
        # directory, and offsets must stay stable between those calls.
        self.dir_handles[fh] = (inode, self.tree.names(inode))
        return fh

    @handler
    async def releasedir(self, fh: int) -> None:
        self.dir_handles.pop(fh, None)

    @handler
    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        ino, names = self.dir_handles[fh]
        for i in range(start_id, len(names)):
            child = self.tree.child(ino, names[i])
            if child is None:
                continue
            if not pyfuse3.readdir_reply(token, os.fsencode(names[i]), self._entry(child), i + 1):
                break
            child.lookups += 1

    @handler
    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: Any) -> Any:
        parent = await self._dir(parent_inode)
        self._writable(parent)
        text = checked_name(name)
        self._new_key(parent, text)
        if self.tree.child(parent.ino, text) is not None:
            fail(errno.EEXIST)
        with self.tree.db.transaction():
            # A set-group-ID directory hands its group and its setgid bit down.
            node = self.tree.add(parent.ino, text, "dir",
                                 mode=mode & 0o7777 | parent.mode & stat.S_ISGID, uid=ctx.uid,
                                 gid=self._group(parent, ctx), custom=True, listed=time.time())
            self._mark_dirty(node, data=False)
            self.tree.save(node)
            self._touch_dir(parent)
        self.exporter.wake()
        node.lookups += 1
        return self._entry(node)

    @handler
    async def rmdir(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        parent = await self._dir(parent_inode)
        self._writable()
        node = self.tree.child(parent.ino, existing_name(name)) or fail(errno.ENOENT)
        if node.kind != "dir":
            fail(errno.ENOTDIR)
        if node is self.tree.lostfound:
            fail(errno.EPERM)
        await self.lister.ensure(node, self.cfg.policy.metadata_ttl)
        if self.tree.names(node.ino):
            fail(errno.ENOTEMPTY)
        await self._remove(parent, node)

    # files
    def _new_file(self, parent: Node, name: str, kind: str, mode: int, ctx: Any,
                  target: str = "", rdev: int = 0) -> Node:
        """A new file, symlink or special node (every kind but a file needs a sidecar)."""
        self._writable(parent)
        self._new_key(parent, name)
        if self.tree.child(parent.ino, name) is not None:
            fail(errno.EEXIST)
        with self.tree.db.transaction():
            node = self.tree.add(parent.ino, name, kind, mode=mode, uid=ctx.uid,
                                 gid=self._group(parent, ctx),
                                 full=True, target=target, custom=kind != "file", rdev=rdev,
                                 size=len(os.fsencode(target)), dirty=True, data_dirty=True,
                                 last_write=time.monotonic())
            self._touch_dir(parent)
        self.data.truncate(node.ino, 0)
        node.lookups += 1
        return node

    async def _remove(self, parent: Node, node: Node) -> None:
        """Unlink or rmdir: the entry goes now, its objects through the journal."""
        self.exporter.streams.stop(node.ino, "unlinked")
        async with self.exporter.lock(node.ino):
            with self.tree.db.transaction():
                self._forget_remote(node)
                self.tree.detach(node)
                self._touch_dir(parent)
        self._release_node(node)
        self.exporter.wake()

    @handler
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: Any) -> Any:
        parent = await self._dir(parent_inode)
        name_ = checked_name(name)
        existing = self.tree.child(parent.ino, name_)
        if existing is not None and not flags & os.O_EXCL:
            # The name appeared (another writer, seen by the listing) between the
            # kernel's lookup and this create: O_CREAT without O_EXCL opens it.
            return self._open_created(existing, flags)
        node = self._new_file(parent, name_, "file", mode & 0o7777, ctx)
        return (self._open_handle(node, True, flags),
                self._entry(node))

    def _open_created(self, node: Node, flags: int) -> Any:
        if node.kind != "file":
            fail(errno.EISDIR if node.kind == "dir" else errno.EEXIST)
        node.lookups += 1  # the kernel counts the entry a create returns
        return self._open_node(node, flags), self._entry(node)

    @handler
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: Any) -> Any:
        # FIFOs, sockets and device nodes are metadata only: a zero-byte object and
        # a sidecar with the kind and rdev (layout.py); the kernel does their I/O.
        kind = MKNOD_KINDS.get(stat.S_IFMT(mode)) or fail(errno.EINVAL)
        parent = await self._dir(parent_inode)
        rdev = rdev if kind in ("chardev", "blockdev") else 0
        return self._entry(self._new_file(parent, checked_name(name), kind, mode & 0o7777, ctx,
                                          rdev=rdev))

    @handler
    async def symlink(self, parent_inode: int, name: bytes, target: bytes, ctx: Any) -> Any:
        parent = await self._dir(parent_inode)
        return self._entry(self._new_file(parent, checked_name(name), "symlink", 0o777, ctx,
                                          target=os.fsdecode(target)))

    @handler
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes, ctx: Any) -> Any:
        fail(errno.EPERM)  # an object has exactly one key: no hard links

    @handler
    async def unlink(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        parent = await self._dir(parent_inode)
        self._writable()
        node = self.tree.child(parent.ino, existing_name(name)) or fail(errno.ENOENT)
        if node.kind == "dir":
            fail(errno.EISDIR)
        await self._remove(parent, node)

    def _forget_remote(self, node: Node) -> None:
        """Journal the removal of ``node``'s objects (call inside a transaction)."""
        if node.lost:
            return
        seen = versions(self.tree, node)  # the deletes are conditional on these
        if node.kind == "dir":
            if node.sidecar:
                self.journal.add("rmdir", self.tree.path(node), seen={"": seen[""]})
        elif node.etag is not None or node.sidecar:
            self.journal.add("delete", self.tree.path(node), seen=seen)

    # rename
    @handler
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: Any) -> None:
        """Move an entry, replacing a target; both hold their exports' locks meanwhile.

        The locks of the moving node, the target and all they hold are taken in
        inode order (no deadlock with another rename). Waiting for one lets the
        tree change (the target's PUT finishing, another rename): the names are
        looked up again once all are held, and everything is redone if they moved.
        """
        self._writable()
        old_dir = await self._dir(parent_inode_old)
        new_dir = await self._dir(parent_inode_new)
        old_name, new_name = existing_name(name_old), checked_name(name_new)
        while True:
            node = self.tree.child(old_dir.ino, old_name) or fail(errno.ENOENT)
            target = await self._rename_target(node, new_dir, new_name, flags)
            if target is node:
                return
            held = self._subtree(node) | self._subtree(target)
            async with contextlib.AsyncExitStack() as stack:
                for ino in sorted(held):
                    await stack.enter_async_context(self.exporter.lock(ino))
                if any(d.ino != ROOT and not d.parent for d in (old_dir, new_dir)):
                    fail(errno.ENOENT)  # a directory was removed while this waited
                if (self.tree.child(old_dir.ino, old_name) is not node
                        or self.tree.child(new_dir.ino, new_name) is not target
                        or self._subtree(node) | self._subtree(target) != held):
                    continue  # the tree changed while this waited: look again
                rename.check(self.tree, node, new_dir, target, flags)
                dst_key = self._new_key(new_dir, new_name)
                for ino in held:  # their keys change: an upload while written is void
                    self.exporter.streams.stop(ino, "renamed")
                with self.tree.db.transaction():
                    if target is not None:
                        self._forget_remote(target)
                        self.tree.detach(target)
                    if rename.journal_move(self.tree, self.journal, node, dst_key):
                        self._mark_dirty(node, data=True)
                    self.tree.move(node, new_dir.ino, new_name)
                    self._touch_dir(old_dir)
                    self._touch_dir(new_dir)
            break
        if target is not None:
            self._release_node(target)
        self.exporter.wake()

    async def _rename_target(self, node: Node, new_dir: Node, name: str,
                             flags: int) -> Node | None:
        """Check a rename of ``node`` to ``name`` in ``new_dir``; list what it moves.

        Returns the entry it replaces (None if none). Raises the FUSE error POSIX
        gives (``ENOTEMPTY`` for a directory target that holds entries).
        """
        self._new_key(new_dir, name)
        target = self.tree.child(new_dir.ino, name)
        rename.check(self.tree, node, new_dir, target, flags)
        if target is not None and target is not node and target.kind == "dir":
            await self.lister.ensure(target, self.cfg.policy.metadata_ttl)
            if self.tree.names(target.ino):
                fail(errno.ENOTEMPTY)
        if node.kind == "dir":
            await rename.import_subtree(self.tree, self.lister, node)
        return target

    def _subtree(self, node: Node | None) -> set[int]:
        """The inodes of ``node`` and everything under it (none for None)."""
        return set() if node is None else {node.ino, *(n.ino for n in self.tree.descendants(node))}

    # extended attributes
    @handler
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: Any) -> None:
        node = self._node(inode)
        self._writable()
        xattr.put(node, name, value)
        self._mark_dirty(node, data=False)
        self.tree.save(node)

    @handler
    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        # ENOTSUP, not ENODATA, for ACLs and security labels: `ls -l` then stops
        # asking for them after the first file of the mount (two FUSE calls per
        # listing instead of two per entry).
        value = self._node(inode).xattrs.get(xattr.checked_name(name))
        return value if value is not None else fail(pyfuse3.ENOATTR)

    @handler
    async def listxattr(self, inode: int, ctx: Any) -> Sequence[bytes]:
        return [os.fsencode(k) for k in self._node(inode).xattrs]

    @handler
    async def removexattr(self, inode: int, name: bytes, ctx: Any) -> None:
        node = self._node(inode)
        self._writable()
        if node.xattrs.pop(xattr.checked_name(name), None) is None:
            fail(pyfuse3.ENOATTR)
        self._mark_dirty(node, data=False)
        self.tree.save(node)

    @handler
    async def statfs(self, ctx: Any) -> Any:
        st = os.statvfs(self.cfg.cache_dir)
        out = pyfuse3.StatvfsData()
        for field_name in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                           "f_files", "f_ffree", "f_favail"):
            setattr(out, field_name, getattr(st, field_name))
        out.f_namemax = 255
        return out
