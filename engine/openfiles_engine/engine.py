"""One mounted volume: wires store, cache, tree, FUSE, export and control together.

Lifecycle: open the store and cache -> clear a stale mount -> mount -> serve
until SIGTERM/SIGINT or an external unmount -> export dirty files (bounded by
``unmount_timeout``) -> unmount. Pending exports and renames left by a crash
are finished by the export loop right after the next mount (files dirty from a
previous run are due at once, whatever the export delay), or without a mount by
:meth:`Engine.flush_only` (``openfiles mount --flush-only``).
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import resource
import secrets
import signal
import time
from typing import Any

import pyfuse3
import trio

from openfiles_engine.bucket.asyncstore import AsyncStore
from openfiles_engine.bucket.store import Store, StoreError
from openfiles_engine.cache.datafile import DataFiles
from openfiles_engine.cache.eviction import evictable
from openfiles_engine.config import ConfigError, MountConfig
from openfiles_engine.control import serve
from openfiles_engine.export.exporter import Exporter
from openfiles_engine.export.lostfound import LostFound
from openfiles_engine.fuse.errors import FUSE_LATENCY
from openfiles_engine.fuse.operations import Operations
from openfiles_engine.mountpoint import prepare, raise_read_ahead
from openfiles_engine.read import Downloader
from openfiles_engine.relay import Relay
from openfiles_engine.state.db import StateDB
from openfiles_engine.state.inode import LONG_AGO, Node
from openfiles_engine.state.journal import Journal
from openfiles_engine.state.listing import Lister
from openfiles_engine.state.tree import Defaults, Tree

log = logging.getLogger(__name__)

EVICT_INTERVAL = 2.0
"""Seconds between sweeps for expired and over-the-bound clean data."""
EVICT_CHECK_INTERVAL = 0.1
"""Seconds: how often a read that fetched data may check the size bound."""


def _raise_fd_limit() -> None:
    """Data files stay open between requests; allow many (soft limit up to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


class Engine:
    def __init__(self, cfg: MountConfig, store: Store) -> None:
        self.cfg = cfg
        os.makedirs(cfg.cache_dir, mode=0o700, exist_ok=True)
        _raise_fd_limit()
        self._lockfile = open(os.path.join(cfg.cache_dir, "lock"), "w")
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"cache dir {cfg.cache_dir} is in use by another engine") from None
        self.db = StateDB(os.path.join(cfg.cache_dir, "meta.sqlite"))
        known = self.db.setting("source")
        if known is not None and known != store.url:
            raise ConfigError(f"cache dir {cfg.cache_dir} belongs to {known}, not {store.url}")
        self.db.set_setting("source", store.url)
        token = self.db.setting("fence_token") or secrets.token_hex(8)
        self.db.set_setting("fence_token", token)
        # Fences name their maker, so a replay after a crash knows its own (fence.py).
        store.fence_owner = (token, self.db.bump("runs"))
        store.read_only = cfg.read_only
        self.store = AsyncStore(store)
        self.data = DataFiles(os.path.join(cfg.cache_dir, "data"))
        defaults = Defaults(cfg.uid, cfg.gid, cfg.file_mode, cfg.dir_mode)
        self.tree = Tree(self.db, defaults, cfg.fsid)
        for ino in self.data.inodes():
            if ino not in self.tree.nodes:
                # The bytes of an orphan (``Tree.orphans``, dropped from the tree), or
                # ones fetched for a listed entry whose row a crash left unwritten
                # (StateDB.save with ``later``; its inode number is never given again).
                self.data.drop(ino)
        for node in self.tree.nodes.values():
            if node.listed:
                # Due again: a listing saved by an engine that died may lack the new
                # prefixes whose confirmations were still running (state/listing.py).
                node.listed = min(node.listed, LONG_AGO)
            if node.dirty:
                # last_write is monotonic and in memory (0.0 here): on a node up for less
                # than the export delay it would hold a previous run's files back.
                node.last_write = -math.inf
            if node.data_dirty and node.kind == "file":
                self.data.settle(node.ino, node.size)
        self.journal = Journal(self.db)
        send, self._receive = trio.open_memory_channel[tuple[int, "str | None"]](10000)
        self._send = send
        self.lostfound = LostFound(self.tree, self.notify)
        self.exporter = Exporter(self.tree, self.store, self.data, self.journal,
                                 self.lostfound, cfg.policy)
        self.lister = Lister(self.tree, self.store, self.journal.pending,
                             on_change=lambda n: self.notify(n.ino, None),
                             on_gone=lambda n: self.fs.gone(n),
                             replayed=lambda: self.journal.replayed + self.exporter.exports)
        self.downloader = Downloader(self.tree, self.store, self.data, self.journal)
        self.downloader.after_fetch = self._evict_if_over
        self.downloader.window_cap = lambda: cfg.policy.cache_size // 4
        self.fs = Operations(cfg, self.tree, self.data, self.lister, self.downloader,
                             self.exporter, self.journal, self.notify)
        self.relay: Relay | None = None
        if cfg.events is not None:
            self.relay = Relay(cfg.events, store.url, cfg.fsid, self.tree, self.lister,
                               self.notify)
            self.exporter.announce = self.relay.announce
        self._stop = trio.Event()
        self._signalled: list[int] = []
        """SIGTERM/SIGINT received: the first stops the engine, the next ends the process."""
        self._last_evict_check = 0.0
        self._last_evict_misses = 0
        self._started = time.monotonic()

    def notify(self, ino: int, name: str | None) -> None:
        try:
            self._send.send_nowait((ino, name))
        except trio.WouldBlock:
            log.warning("kernel invalidation queue full; dropping one")

    # control socket
    def status(self) -> dict[str, Any]:
        dirty = self.exporter.dirty()
        now = time.monotonic()
        # A file dirty since before this engine started has no last write in memory: its
        # age counts from the start (a lower bound).
        oldest = max((now - max(n.last_write, self._started) for n in dirty), default=0.0)
        error = self.exporter.last_error
        lost_files, lost_bytes = self.lostfound.held()
        return {
            "dirty_files": len(dirty),
            "dirty_bytes": sum(n.size for n in dirty if n.data_dirty),
            "pending_exports": len(dirty) + len(self.journal),
            "conflicts": self.lostfound.count,
            "lostfound_files": lost_files,
            "lostfound_bytes": lost_bytes,
            "cache_bytes": sum(n.cached_bytes() for n in self.tree.nodes.values()
                               if n.kind == "file"),
            "hit_ratio": self.downloader.stats.hit_ratio,
            "hit_bytes": self.downloader.stats.hit_bytes,
            "miss_bytes": self.downloader.stats.miss_bytes,
            "fetched_bytes": self.downloader.stats.fetched_bytes,
            "dropped_bytes": self.downloader.stats.dropped_bytes,
            "held_bytes": self.downloader.held_bytes,
            "export_errors": self.exporter.errors,
            "last_export_error": error,
            "last_export_error_time": self.exporter.last_error_time if error else None,
            "oldest_dirty_seconds": round(oldest, 1),
            "journal_entries": len(self.journal),
            "recent_conflicts": list(self.lostfound.recent),
            "conditional_writes": self.store.sync.conditional,
            "policy": self.cfg.policy.as_dict(),
            "s3_latency": self.store.latency.as_dict(),
            "fuse_latency": FUSE_LATENCY.as_dict(),
            "source": self.store.sync.url,
            "hidden_keys": len(self.lister.hidden),
            "events": self.relay.status() if self.relay is not None else None,
            "pid": os.getpid(),
        }

    async def dispatch(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "status":
            return {"ok": True, "status": self.status()}
        if op == "flush":
            timeout = float(req.get("timeout", 30))
            with trio.move_on_after(timeout) as scope:
                try:
                    await self.exporter.flush()
                except StoreError as exc:
                    return {"ok": False, "error": str(exc)}
            if scope.cancelled_caught:
                return {"ok": False, "error": f"flush timed out after {timeout} s"}
            return {"ok": True}
        if op == "policy":
            values = {k: v for k, v in req.items() if k != "op"}
            try:
                self.cfg.policy.update(values)
            except ConfigError as exc:
                return {"ok": False, "error": str(exc)}
            self.exporter.wake()
            return {"ok": True, "policy": self.cfg.policy.as_dict()}
        return {"ok": False, "error": f"unknown op {op!r}"}

    # background work
    async def _evict_loop(self) -> None:
        while True:
            self.evict()
            await trio.sleep(EVICT_INTERVAL)

    def _evict_if_over(self) -> None:
        # Summing over every node costs O(files): do it a few times a second, or
        # sooner when the reads since the last check could have passed the bound.
        now = time.monotonic()
        fetched = self.downloader.stats.fetched_bytes - self._last_evict_misses
        if now - self._last_evict_check < EVICT_CHECK_INTERVAL and \
                fetched < self.cfg.policy.cache_size // 8:
            return
        self._last_evict_check = now
        self._last_evict_misses = self.downloader.stats.fetched_bytes
        if sum(n.cached_bytes() for n in self.tree.nodes.values()
               if n.kind == "file" and not n.dirty) > self.cfg.policy.cache_size:
            self.evict()

    def evict(self) -> int:
        """Drop clean cached data over the size bound or past the TTL; returns bytes freed."""
        policy = self.cfg.policy
        freed = 0
        for node in evictable(self.tree.nodes.values(), policy.cache_size, policy.cache_ttl,
                              time.time()):
            if node.ino in self.downloader.filling:
                continue  # becoming dirty: it needs every byte
            before = node.cached_bytes()
            if node.opens and node.read_pos:
                self._trim(node)  # being read: free what lies behind the reader
            else:
                self.data.drop(node.ino)
                node.ranges, node.full = [], node.size == 0
            freed += before - node.cached_bytes()
            self.tree.save(node)
        return freed

    def _trim(self, node: Node) -> None:
        ranges = node.ranges if not node.full else [[0, node.size]]
        keep = [[max(s, node.read_pos), e] for s, e in ranges if e > node.read_pos]
        if node.read_pos > 0:
            self.data.punch(node.ino, 0, node.read_pos)
        node.ranges, node.full = keep, False

    async def _fuse_main(self) -> None:
        await pyfuse3.main()
        self._stop.set()  # unmounted from outside

    async def _signals(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                       ) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            task_status.started()
            async for signum in signals:
                log.info("signal %d: exporting and unmounting", signum)
                self._signalled.append(signum)  # the next one ends the process
                self._stop.set()
                return

    def _catch_early_signals(self) -> None:
        """Record SIGTERM/SIGINT until trio listens (from before the mount exists).

        Python's default would kill the process with the mount in place: a dead
        mount, and no final export. A second signal ends the process, as the
        first did before.
        """
        def record(signum: int, _frame: object) -> None:
            if self._signalled:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            self._signalled.append(signum)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, record)

    async def run(self, *, ready: trio.Event | None = None) -> int:
        """Mount, serve until told to stop, export, unmount. Returns an exit status."""
        cfg = self.cfg
        prepare(cfg.mountpoint)
        options = set(pyfuse3.default_options) | {"fsname=openfiles", "subtype=openfiles"}
        if cfg.read_only:
            options.add("ro")
        if cfg.allow_other:
            options.add("allow_other")
        self._catch_early_signals()
        pyfuse3.init(self.fs, cfg.mountpoint, options)
        status = 0
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self._signals)  # from here on trio takes the signals
                if self._signalled:
                    log.info("signal %d while mounting: exporting and unmounting",
                             self._signalled[0])
                    self._stop.set()
                nursery.start_soon(self._fuse_main)
                nursery.start_soon(invalidator, self.tree, self._receive)
                await nursery.start(serve, cfg.control_socket, self.dispatch)
                if not cfg.read_only:
                    await nursery.start(self.exporter.run)
                nursery.start_soon(self._evict_loop)
                if self.relay is not None:
                    await nursery.start(self.relay.run)
                self.downloader.nursery = nursery
                self.lister.nursery = nursery
                # In a thread: stat() on our own mount needs this thread to answer it.
                await trio.to_thread.run_sync(raise_read_ahead, cfg.mountpoint)
                log.info("mounted %s at %s", self.store.sync.url, cfg.mountpoint)
                if ready is not None:
                    ready.set()
                await self._stop.wait()
                status = await self._final_export()
                nursery.cancel_scope.cancel()
        finally:
            pyfuse3.close(unmount=True)
            self.data.close_all()
            self.db.close()
            self._lockfile.close()
        return status

    async def flush_only(self) -> dict[str, Any]:
        """Export what the cache holds without mounting, then close; for a dead engine's cache.

        Replays the journal and exports every dirty file, for at most ``unmount_timeout``;
        with 0 it sends nothing to the store and only counts.
        Returns what is left: ``dirty_files``, ``dirty_bytes``, ``pending_exports`` (all 0
        when everything reached the bucket), ``conflicts`` (files moved to lost+found),
        ``lostfound_files`` and ``lostfound_bytes`` (what lost+found holds: only this
        cache has it) and ``error`` (null, or why something is left; never a secret).
        """
        error: str | None = "not exported: --unmount-timeout is 0"  # counts only
        try:
            if self.cfg.unmount_timeout > 0:
                error = None
                with trio.move_on_after(self.cfg.unmount_timeout) as scope:
                    try:
                        await self.exporter.flush()
                    except StoreError as exc:
                        error = str(exc)
                if scope.cancelled_caught:
                    error = f"export timed out after {self.cfg.unmount_timeout:g} s"
            status = self.status()
        finally:
            self.data.close_all()
            self.db.close()
            self._lockfile.close()
        left = {k: status[k] for k in ("dirty_files", "dirty_bytes", "pending_exports",
                                       "conflicts", "lostfound_files", "lostfound_bytes")}
        return {**left, "error": error}

    async def _final_export(self) -> int:
        if self.cfg.read_only:
            return 0
        with trio.CancelScope(shield=True), trio.move_on_after(self.cfg.unmount_timeout) as sc:
            try:
                await self.exporter.flush()
                return 0
            except StoreError as exc:
                log.error("unmount: export incomplete (%s); dirty files stay in the cache "
                          "and are exported at the next mount", exc)
                return 1
        if sc.cancelled_caught:
            log.error("unmount: export timed out after %.0f s; dirty files stay in the cache",
                      self.cfg.unmount_timeout)
        return 1


async def invalidator(tree: Tree, receive: trio.MemoryReceiveChannel[tuple[int, str | None]],
                      ) -> None:
    """Tell the kernel about changes made behind its back (never from inside a handler)."""
    async for ino, name in receive:
        try:
            if name is None:
                await trio.to_thread.run_sync(pyfuse3.invalidate_inode, ino, False)
            else:
                await trio.to_thread.run_sync(pyfuse3.invalidate_entry, ino, os.fsencode(name))
        except OSError:
            pass  # the kernel had not cached it
