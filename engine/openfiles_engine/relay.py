"""Mutation events: the engine's side of its NATS relay (``--events``, issue 15).

The NATS client is asyncio, which the engine may not import, so it runs in a
child process, ``openfiles events`` (``openfiles_csi.relay``), spoken to in the
lines of :mod:`openfiles_contracts.event` over its stdin and stdout. This
module starts it (again, after 1 s doubling to 30 s, whenever it exits),
sends it an event for each change of ours that reached the bucket
(:meth:`Relay.announce`, called by the exporter; never blocks, never raises),
and applies the events of other mounts of the volume:

- a clean file at the event's key gets ``validated = 0``: its next open asks
  the bucket (a HEAD) whatever happens to the rest;
- the nearest listed directory above the key is listed again at once
  (:meth:`Lister.ensure`): the merge rules of ``state/listing.py`` then drop a
  changed file's cached bytes and attributes, remove a deleted one and add a
  new one, and leave a dirty or journalled file alone (its export meets the
  conditional PUT and, if need be, lost+found);
- the kernel is told (entry and inode invalidation), so ``stat``, ``ls`` and
  ``open`` ask the engine instead of the kernel's cache.

Events of our own (same ``origin``) are ignored. While the relay is not
connected nothing is sent (``dropped`` counts it) and the metadata TTL bounds
staleness as without events; when it connects again after an outage, every
directory and file is due for revalidation at its next use, since events
were missed. Status: :meth:`Relay.status`.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import trio

from openfiles_contracts import event as wire
from openfiles_engine.bucket.store import StoreError
from openfiles_engine.config import EventsConfig
from openfiles_engine.state.inode import LONG_AGO, ROOT
from openfiles_engine.state.listing import Lister
from openfiles_engine.state.tree import Tree

log = logging.getLogger(__name__)

RESTART_MIN = 1.0
RESTART_MAX = 30.0
"""Seconds between restarts of a relay that exited (doubling from RESTART_MIN)."""
OUTBOX = 10000
"""Events waiting for the relay's stdin; more are dropped (and counted)."""


def relay_command() -> list[str]:
    """The relay's argv: this interpreter's ``openfiles events`` (no settings in it)."""
    return [sys.executable, "-m", "openfiles_cli", "events"]


class Relay:
    """The volume's event link: publishes our changes, applies the peers'."""

    def __init__(self, cfg: EventsConfig, source_url: str, fsid: str, tree: Tree,
                 lister: Lister, notify: Callable[[int, str | None], None],
                 command: list[str] | None = None) -> None:
        self.cfg = cfg
        self.subject = wire.subject(source_url)
        self.fsid = fsid
        self.tree = tree
        self.lister = lister
        self.notify = notify
        self.command = command or relay_command()
        self.origin = secrets.token_hex(8)
        """This engine run's id: events carrying it are our own."""
        self.connected = False
        self.ever_connected = False
        self.error: str | None = "not connected yet"
        self.published = 0
        self.received = 0
        self.dropped = 0
        self.relists = 0
        self.restarts = 0
        self._send, self._outbox = trio.open_memory_channel[wire.Event](OUTBOX)
        self._stale: dict[int, set[str]] = {}
        self._wake = trio.Event()

    # our changes -> NATS
    def announce(self, key: str, etag: str | None, gone: bool) -> None:
        """Publish that ``key`` now has ``etag`` (or is ``gone``); never blocks."""
        if not self.connected:
            self.dropped += 1  # the peers' TTL covers it
            return
        event = wire.Event(key, None if gone else etag, gone, self.fsid, self.origin)
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.dropped += 1

    # NATS -> our cache
    def apply(self, event: wire.Event) -> None:
        """Mark what a peer's event makes stale; the listing runs in :meth:`_refresh`."""
        if event.origin == self.origin:
            return
        self.received += 1
        node = self.tree.find(event.key) if event.key else None
        if node is not None and node.kind == "file" and not node.dirty and \
                (event.gone or event.etag != node.etag):
            node.validated = 0.0  # the next open asks the bucket, whatever happens below
        # The nearest directory above the key that the tree knows: listing it brings
        # the key (or the first new directory on the way to it) in.
        parts = event.key.split("/") if event.key else []
        parent = self.tree.get(ROOT)
        name = parts[0] if parts else ""
        for i, part in enumerate(parts[:-1]):
            child = self.tree.child(parent.ino, part) if parent is not None else None
            if child is None or child.kind != "dir":
                break
            parent, name = child, parts[i + 1]
        if parent is None or not parent.listed or parent.lost:
            return  # never listed: its first lookup lists it anyway
        parent.listed = LONG_AGO  # a lookup before the refresh lists it too
        self._stale.setdefault(parent.ino, set()).add(name)
        self._wake.set()

    async def _refresh(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            stale, self._stale = self._stale, {}
            for ino, names in stale.items():
                node = self.tree.get(ino)
                if node is None or node.kind != "dir":
                    continue
                try:
                    await self.lister.ensure(node, 0.0)
                except StoreError as exc:
                    log.info("event: listing %r failed (the TTL applies): %s",
                             self.tree.path(node), exc)
                    continue
                self.relists += 1
                self.notify(ino, None)
                for name in names:
                    if name:
                        self.notify(ino, name)

    def _resync(self) -> None:
        """Events were missed while disconnected: everything is due at its next use."""
        for node in self.tree.nodes.values():
            if node.kind == "dir":
                node.listed = min(node.listed, LONG_AGO)
            else:
                node.validated = 0.0

    def _state(self, connected: bool, error: str | None) -> None:
        if connected and not self.connected:
            if self.ever_connected:
                log.info("events: connected again; revalidating what may have changed")
                self._resync()
            else:
                log.info("events: connected (%s)", self.subject)
            self.ever_connected = True
        elif not connected and self.connected:
            log.warning("events: disconnected, the metadata TTL applies: %s", error)
        self.connected, self.error = connected, (None if connected else error)

    # the relay process
    def _env(self) -> dict[str, str]:
        # The store's credentials stay with the engine: the relay needs NATS's only.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OPENFILES_NATS_", "AWS_", "GOOGLE_", "AZURE_"))}
        c = self.cfg
        env.update(wire.RelaySettings(c.url, self.subject, c.user, c.password, c.token,
                                      c.creds, c.ca).env())
        return env

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                  ) -> None:
        """Keep a relay running until cancelled; file operations never wait for it."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._refresh)
            task_status.started()
            delay = RESTART_MIN
            while True:
                started = trio.current_time()
                error = await self._run_once()
                self._state(False, error)
                self.restarts += 1
                if trio.current_time() - started > RESTART_MAX:
                    delay = RESTART_MIN  # it ran well for a while: not a crash loop
                log.warning("events: relay stopped (%s); restarting in %.0f s", error, delay)
                await trio.sleep(delay)
                delay = min(delay * 2, RESTART_MAX)

    async def _run_once(self) -> str:
        """Run one relay process until it exits; returns why it stopped."""
        try:
            proc = await trio.lowlevel.open_process(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self._env())
        except OSError as exc:
            return f"cannot start the relay: {exc}"
        assert proc.stdin is not None and proc.stdout is not None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._feed, proc.stdin)
                await self._read(proc.stdout)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await proc.stdin.aclose()
                with trio.move_on_after(3):
                    await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        return f"relay exited with status {proc.returncode}"

    async def _feed(self, stdin: trio.abc.SendStream) -> None:
        async for event in self._outbox:
            try:
                await stdin.send_all(wire.encode_line({"publish": event.as_dict()}))
                self.published += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.dropped += 1
                return

    async def _read(self, stdout: trio.abc.ReceiveStream) -> None:
        buf = b""
        while True:
            chunk = await stdout.receive_some(65536)
            if not chunk:
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            if len(buf) > wire.MAX_LINE:
                log.warning("events: the relay sent an over-long line; dropped")
                buf = b""
            for line in lines:
                self._line(line)

    def _line(self, line: bytes) -> None:
        try:
            doc = wire.decode_line(line)
        except wire.EventError as exc:
            log.warning("events: ignoring a line from the relay: %s", exc)
            return
        if "event" in doc:
            self.apply(doc["event"])
        elif "state" in doc:
            self._state(doc["state"] == "connected", doc["error"])

    def status(self) -> dict[str, Any]:
        """The ``events`` object of the engine's status (no credentials in it)."""
        return {"url": self.cfg.url, "subject": self.subject, "connected": self.connected,
                "error": self.error, "published": self.published, "received": self.received,
                "dropped": self.dropped, "relists": self.relists, "restarts": self.restarts}
