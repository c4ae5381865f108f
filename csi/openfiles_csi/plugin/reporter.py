"""The node's export state, sent to the API server: one report per staged volume, and Events.

Every ``interval`` seconds the reporter asks the mounter for the running engines and
each engine's control socket for ``status`` (short deadlines, in parallel). For each
volume it applies the report (report.py) only when something changed, or when
``heartbeat`` seconds have passed (so a report older than a few heartbeats means a
node plugin that stopped). A volume no longer staged whose cache the mounter keeps
(its ``stranded`` markers: dirty data an unstage could not export, files in
lost+found) keeps a report built from the marker (report.kept_spec), until the marker
goes (the next stage here serves that cache). Volumes the mounter lists in neither
way lose their report; NodeUnstage settles it at once through :meth:`Reporter.forget`.

Events, each about the volume's OpenFilesVolume (or its claim when it has none):
one per conflict (``Conflict``, naming the path and where the local version went),
and for export errors at most one per ``error_every`` seconds per volume
(``ExportFailed``); and one when the node starts keeping a volume's cache
(``DataStranded`` naming the node and the dirty bytes, or ``LostFoundKept``). A
conflict is announced once: the last announced count is the report's ``conflicts``,
read back after a plugin restart; so is a kept cache (the report's ``strandedSince``).

Nothing here raises out of :meth:`Reporter.run`: API and engine failures are logged
and retried at the next tick. Credentials never reach a report or an Event
(report.clean masks the registered secrets; engine texts hold none to begin with).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from openfiles_csi import jsonline
from openfiles_csi.plugin import report
from openfiles_csi.plugin.errors import CsiError
from openfiles_csi.plugin.kube import KubeClient
from openfiles_csi.plugin.mounterclient import MounterClient

log = logging.getLogger(__name__)


@dataclass
class _Volume:
    target: report.Target | None = None
    sent: dict[str, Any] | None = None
    sent_at: float = 0.0
    announced: int | None = None
    """Conflicts already announced by Events (None: not read back yet)."""
    error_event_at: float = 0.0
    pending_events: list[tuple[str, str, bool]] = field(default_factory=list)


class Reporter:
    def __init__(self, node: str, namespace: str, mounter: MounterClient, kube: KubeClient,
                 interval: float = 2.0, heartbeat: float = 60.0, error_every: float = 300.0,
                 engine_timeout: float = 2.0) -> None:
        self.node = node
        self.namespace = namespace
        self.mounter = mounter
        self.kube = kube
        self.interval = interval
        self.heartbeat = heartbeat
        self.error_every = error_every
        self.engine_timeout = engine_timeout
        self._volumes: dict[str, _Volume] = {}
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        """Report until cancelled."""
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("report: tick failed; retrying in %gs", self.interval)
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        """Read every engine once and send what changed."""
        async with self._lock:  # a NodeUnstage's forget() never races a report back in
            await self._tick()

    async def _tick(self) -> None:
        try:
            mounts, markers = await self.mounter.listing()
        except CsiError as exc:
            log.warning("report: mounter unreachable: %s", exc)
            return
        by_volume: dict[str, dict[str, Any]] = {}
        for mount in mounts:
            # An ephemeral volume and a staged one never share an id; prefer a live engine.
            if mount["volume_id"] not in by_volume or mount.get("alive"):
                by_volume[str(mount["volume_id"])] = mount
        statuses = await asyncio.gather(*(self._status(m) for m in by_volume.values()))
        kept = {str(m["volume_id"]): m for m in markers if m.get("volume_id") not in by_volume}
        work: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]] = [
            (v, s, None) for v, s in zip(by_volume, statuses, strict=True)]
        work += [(v, None, marker) for v, marker in kept.items()]
        for volume_id, status, marker in work:
            try:
                await self._report(volume_id, status, marker)
            except Exception as exc:
                log.warning("report: volume %s: %s", volume_id, report.clean(str(exc)))
        for volume_id in set(self._volumes) - set(by_volume) - set(kept):
            await self._forget(volume_id)

    async def forget(self, volume_id: str, kept: dict[str, Any] | None = None) -> None:
        """The volume is unstaged here: remove this node's report of ``volume_id``, or,
        when the mounter kept its cache (``kept``: the unstage reply's ``stranded``
        marker), turn it into the report of the kept cache and post its Event."""
        async with self._lock:
            if kept is None:
                await self._forget(volume_id)
                return
            try:
                await self._report(volume_id, None, kept)
            except Exception as exc:  # the next tick reports it from the mounter's list
                log.warning("report: volume %s: %s", volume_id, report.clean(str(exc)))

    async def _forget(self, volume_id: str) -> None:
        try:
            await self.kube.delete_report(self.namespace, report.report_name(self.node, volume_id))
        except Exception as exc:
            log.warning("report: removing the report of %s: %s", volume_id, exc)
            return  # the next tick tries again
        self._volumes.pop(volume_id, None)

    async def _status(self, mount: dict[str, Any]) -> dict[str, Any] | None:
        if not mount.get("alive"):
            return None
        try:
            answer = await jsonline.arequest(mount["control_socket"], {"op": "status"},
                                             self.engine_timeout)
        except jsonline.PeerError:
            return None
        status = answer.get("status") if answer.get("ok") else None
        return status if isinstance(status, dict) else None

    async def _report(self, volume_id: str, status: dict[str, Any] | None,
                      marker: dict[str, Any] | None = None) -> None:
        vol = self._volumes.setdefault(volume_id, _Volume())
        name = report.report_name(self.node, volume_id)
        if vol.target is None:
            vol.target = report.target_of(await self.kube.find_pv(volume_id))
        if vol.sent is None:
            existing = await self.kube.read_report(self.namespace, name)
            if existing is not None:
                vol.sent = dict(existing.get("spec") or {})
                vol.announced = int(vol.sent.get("conflicts", 0))
        now = time.time()
        if marker is not None:
            spec = report.kept_spec(self.node, volume_id, vol.target, marker, vol.sent)
            event = report.kept_event(vol.sent, spec, self.node)
            if event is not None:
                vol.pending_events.append((*event, True))
        else:
            spec = report.report_spec(self.node, volume_id, vol.target, status, vol.sent, now)
        if status is not None:
            self._queue_events(vol, status, now)
        if report.changed(vol.sent, spec) or now - vol.sent_at >= self.heartbeat:
            spec["reportTime"] = report.rfc3339(now)
            labels = {report.HANDLE_LABEL: report.handle_hash(volume_id),
                      "app.kubernetes.io/managed-by": "openfiles-csi-node"}
            await self.kube.apply_report(self.namespace, name, labels, spec)
            vol.sent, vol.sent_at = spec, now
        await self._post_events(vol, now)

    def _queue_events(self, vol: _Volume, status: dict[str, Any], now: float) -> None:
        total = int(status.get("conflicts") or 0)
        announced = vol.announced if vol.announced is not None else 0
        for conflict in status.get("recent_conflicts") or []:
            if int(conflict["seq"]) > announced:
                vol.pending_events.append(
                    ("Conflict", report.conflict_message(self.node, conflict), True))
        vol.announced = max(total, announced)
        error = status.get("last_export_error")
        if error and now - vol.error_event_at >= self.error_every:
            vol.error_event_at = now
            vol.pending_events.append(
                ("ExportFailed", report.export_error_message(self.node, str(error)), True))

    async def _post_events(self, vol: _Volume, now: float) -> None:
        subject = vol.target.subject if vol.target else None
        if subject is None:
            if vol.pending_events:
                log.info("report: %d Events dropped: the volume has no claim or "
                         "OpenFilesVolume", len(vol.pending_events))
            vol.pending_events.clear()
            return
        while vol.pending_events:
            reason, message, warning = vol.pending_events[0]
            body = report.event_body(subject, self.node, reason, message, warning, now)
            await self.kube.post_event(subject.namespace, body)
            vol.pending_events.pop(0)
